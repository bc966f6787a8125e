//! What the worker's metrics read across tenants, through `SECURITY DEFINER` functions owned by `testio_search`
//! (migration 18): tenant ids and times, never data.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};
use uuid::Uuid;

use crate::db::stmt;

/// How fresh one tenant's mirror is.
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct Freshness {
    pub tenant_id: Uuid,
    /// When its last successful sync run finished (`None`: never).
    pub last_success_at: Option<DateTime<Utc>>,
    /// Up to when every product's whole list has been re-read and found complete.
    pub verified_through: Option<DateTime<Utc>>,
    /// When it is due for its next sync (`None`: not scheduled).
    pub due_at: Option<DateTime<Utc>>,
}

/// Every tenant with an active TestIO connection, and how fresh its mirror is.
pub async fn sync_freshness(db: &impl ConnectionTrait) -> Result<Vec<Freshness>, DbErr> {
    Freshness::find_by_statement(stmt(
        "SELECT tenant_id, last_success_at, verified_through, due_at FROM ops_sync_freshness()",
        [],
    ))
    .all(db)
    .await
}

/// Audit events not sealed into their tenant's hash chain yet.
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct ChainLag {
    pub unsealed: i64,
    /// When the oldest of them was written.
    pub oldest: Option<DateTime<Utc>>,
}

/// How far the sealing of the audit chains is behind.
pub async fn audit_chain_lag(db: &impl ConnectionTrait) -> Result<ChainLag, DbErr> {
    ChainLag::find_by_statement(stmt("SELECT unsealed, oldest FROM ops_audit_chain_lag()", []))
        .one(db)
        .await
        .map(|lag| lag.unwrap_or(ChainLag { unsealed: 0, oldest: None }))
}
