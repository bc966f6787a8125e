//! The audit log's hash chain (migration `m20261202_000014_audit_chain`): sealing settled events after the fact, and
//! verifying a tenant's chain.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, FromQueryResult};
use uuid::Uuid;

use crate::db::stmt;
use crate::{PlatformAuditTxn, TenantId, TenantTxn};

/// Events sealed per transaction.
pub const SEAL_BATCH: i32 = 2_000;

/// What one sealing pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sealed {
    pub tenants: usize,
    pub events: u64,
}

#[derive(FromQueryResult)]
struct Pending {
    tenant_id: Uuid,
    settled: String,
}

#[derive(FromQueryResult)]
struct Batch {
    sealed: i32,
    settled: String,
}

/// A transaction id (`xid8` as text) as a number.
fn xid(text: &str) -> u64 {
    text.parse().unwrap_or(0)
}

/// Seals every settled event not sealed yet, tenant by tenant, [`SEAL_BATCH`] at a time, each batch in its own
/// transaction (the tenant's chain head locked, so concurrent sealers take turns); then records how far every tenant
/// is sealed, so that the next pass looks only at newer events.
#[tracing::instrument(skip_all)]
pub async fn seal_pending(db: &DatabaseConnection) -> Result<Sealed, DbErr> {
    let since: String = db
        .query_one_raw(stmt("SELECT sealed_below::text FROM audit_chain_progress", []))
        .await?
        .map(|row| row.try_get_by_index::<String>(0))
        .transpose()?
        .unwrap_or_else(|| "0".to_owned());
    let pending = Pending::find_by_statement(stmt(
        "SELECT tenant_id, settled::text AS settled FROM audit_chain_pending($1::xid8)",
        [since.into()],
    ))
    .all(db)
    .await?;
    let mut done = Sealed::default();
    // How far every tenant is sealed: at most what the pending tenants were listed against, and at most what each
    // tenant's last batch could seal (a sealer sees other sealers' transactions as still running).
    let mut sealed_below = pending.first().map(|p| xid(&p.settled));
    for tenant in &pending {
        loop {
            let txn = TenantTxn::begin(db, TenantId(tenant.tenant_id)).await?;
            let batch = Batch::find_by_statement(stmt(
                "SELECT sealed, settled::text AS settled FROM audit_chain_seal($1, $2)",
                [tenant.tenant_id.into(), SEAL_BATCH.into()],
            ))
            .one(txn.conn())
            .await?
            .ok_or_else(|| DbErr::RecordNotFound("audit_chain_seal returned no row".to_owned()))?;
            txn.commit().await?;
            done.events += u64::try_from(batch.sealed).unwrap_or(0);
            if batch.sealed < SEAL_BATCH {
                sealed_below = sealed_below.map(|s| s.min(xid(&batch.settled)));
                break;
            }
        }
        done.tenants += 1;
    }
    if let Some(below) = sealed_below {
        db.execute_raw(stmt(
            "UPDATE audit_chain_progress SET sealed_below = $1::text::xid8 WHERE sealed_below < $1::text::xid8",
            [below.to_string().into()],
        ))
        .await?;
    }
    Ok(done)
}

/// The verdict on a tenant's chain.
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct Verification {
    /// Every sealed event is there, unaltered, in its place, and nothing was slipped into the sealed history.
    pub intact: bool,
    /// Sealed events checked.
    pub checked: i64,
    /// What is wrong, when something is.
    pub problem: Option<String>,
    /// The position of the first broken link.
    pub broken_seq: Option<i64>,
    /// The first event found altered, deleted or inserted.
    pub broken_event: Option<Uuid>,
    /// Events written but not sealed yet (the worker seals them within seconds).
    pub unsealed: i64,
    /// The chain's last position and hash (publish them elsewhere to anchor the log).
    pub head_seq: i64,
    pub head_hash: Option<Vec<u8>>,
    pub sealed_at: Option<DateTime<Utc>>,
}

const VERIFY: &str = "SELECT intact, checked, problem, broken_seq, broken_event, unsealed, head_seq, head_hash, \
                      sealed_at FROM audit_chain_verify($1)";

async fn verify_in(conn: &impl ConnectionTrait, tenant: Uuid) -> Result<Verification, DbErr> {
    Verification::find_by_statement(stmt(VERIFY, [tenant.into()]))
        .one(conn)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("audit_chain_verify returned no row".to_owned()))
}

/// Verifies the chain of the transaction's tenant.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn verify(txn: &TenantTxn) -> Result<Verification, DbErr> {
    verify_in(txn.conn(), txn.tenant_id().0).await
}

/// Verifies the chain of any tenant (the platform's own and deleted tenants' included), for the platform review.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
pub async fn verify_platform(txn: &PlatformAuditTxn, tenant: TenantId) -> Result<Verification, DbErr> {
    verify_in(txn.conn(), tenant.0).await
}

/// How many days each plan keeps its audit events; `other`: the platform's own log and deleted tenants'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub free_days: i32,
    pub pro_days: i32,
    pub enterprise_days: i32,
    pub other_days: i32,
}

/// Events purged per transaction.
pub const PURGE_BATCH: i32 = 2_000;

#[derive(FromQueryResult)]
struct Due {
    tenant_id: Uuid,
    cutoff: DateTime<Utc>,
}

#[derive(FromQueryResult)]
struct Purged {
    purged: i32,
    first_seq: i64,
}

/// Purges, tenant by tenant, the sealed events older than the tenant's plan keeps them, [`PURGE_BATCH`] at a time,
/// each batch in a transaction that also records it in the tenant's log (`audit_log.purge`, by `system`); the
/// chain's new start is anchored on the last purged event, so the log still verifies. Returns the events purged per
/// tenant.
#[tracing::instrument(skip_all)]
pub async fn purge_expired(db: &DatabaseConnection, retention: Retention) -> Result<Vec<(TenantId, u64)>, DbErr> {
    let due = Due::find_by_statement(stmt(
        "SELECT tenant_id, cutoff FROM audit_retention_due($1, $2, $3, $4)",
        [
            retention.free_days.into(),
            retention.pro_days.into(),
            retention.enterprise_days.into(),
            retention.other_days.into(),
        ],
    ))
    .all(db)
    .await?;
    let mut out = Vec::new();
    for tenant in due {
        let id = TenantId(tenant.tenant_id);
        let mut total = 0u64;
        loop {
            let txn = TenantTxn::begin(db, id).await?;
            let batch = Purged::find_by_statement(stmt(
                "SELECT purged, first_seq FROM audit_purge($1, $2, $3)",
                [tenant.tenant_id.into(), tenant.cutoff.into(), PURGE_BATCH.into()],
            ))
            .one(txn.conn())
            .await?
            .ok_or_else(|| DbErr::RecordNotFound("audit_purge returned no row".to_owned()))?;
            if batch.purged > 0 {
                let event = super::Event::new(super::AuditAction::AuditLogPurge, super::Actor::system())
                    .on(tenant.tenant_id)
                    .metadata(serde_json::json!({
                        "purged": batch.purged,
                        "before": tenant.cutoff,
                        "chain_starts_at": batch.first_seq,
                    }));
                super::record(&txn, event, &super::Origin::default()).await?;
            }
            txn.commit().await?;
            total += u64::try_from(batch.purged).unwrap_or(0);
            if batch.purged < PURGE_BATCH {
                break;
            }
        }
        out.push((id, total));
    }
    Ok(out)
}
