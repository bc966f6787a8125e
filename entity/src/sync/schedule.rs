//! When each tenant syncs next, and which worker holds it now. The columns live on `tenants` (a global table) because a
//! worker must find due tenants before it can bind a transaction to one of them.
//!
//! A worker *claims* due tenants with `FOR UPDATE SKIP LOCKED` and writes a lease (its name and an expiry). It renews
//! the lease inside every transaction that writes mirror data; the renewal is also the fence: once another worker has
//! taken over an expired lease, the old holder's renewal touches no row and its transaction is rolled back, so two
//! workers never write one tenant's mirror at once.

use sea_orm::{ConnectionTrait, DbErr};

use crate::db::stmt;
use crate::tenancy::conn;
use crate::tenants::Plan;
use crate::{Db, TenantId, TenantTxn};

/// A tenant claimed by this worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claimed {
    pub tenant_id: TenantId,
    pub plan: Plan,
    /// The due time when claimed: on release, a different value means someone rescheduled the tenant meanwhile.
    pub due_at: Option<chrono::DateTime<chrono::Utc>>,
}

fn claimed(row: &sea_orm::QueryResult) -> Result<Claimed, DbErr> {
    Ok(Claimed {
        tenant_id: TenantId(row.try_get("", "id")?),
        plan: row.try_get("", "plan")?,
        due_at: row.try_get("", "sync_due_at")?,
    })
}

/// Makes the transaction's tenant due now (a connection was saved, or a sync was requested), together with the
/// tenant work that asked for it.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn schedule_now(txn: &TenantTxn) -> Result<(), DbErr> {
    let sql = "UPDATE tenants SET sync_due_at = now() WHERE id = $1";
    txn.conn().execute_raw(stmt(sql, [txn.tenant_id().0.into()])).await.map(|_| ())
}

/// Takes the transaction's tenant off the schedule (no connection, or TestIO refused the token).
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn unschedule(txn: &TenantTxn) -> Result<(), DbErr> {
    let sql = "UPDATE tenants SET sync_due_at = NULL WHERE id = $1";
    txn.conn().execute_raw(stmt(sql, [txn.tenant_id().0.into()])).await.map(|_| ())
}

/// The tenant's next sync time, if scheduled.
pub async fn due_at(db: &impl Db, tenant: TenantId) -> Result<Option<chrono::DateTime<chrono::Utc>>, DbErr> {
    let row = conn(db).query_one_raw(stmt("SELECT sync_due_at FROM tenants WHERE id = $1", [tenant.0.into()])).await?;
    match row {
        Some(row) => row.try_get("", "sync_due_at"),
        None => Ok(None),
    }
}

/// Claims up to `limit` active tenants that are due and not leased by a live worker, for `lease_secs`.
#[tracing::instrument(skip_all)]
pub async fn claim_due(db: &impl Db, worker: &str, lease_secs: i64, limit: u64) -> Result<Vec<Claimed>, DbErr> {
    let rows = conn(db)
        .query_all_raw(stmt(
            // A materialized CTE: a locking sub-select inside UPDATE ... FROM may be run more than once by the
            // planner and then claim more rows than LIMIT.
            "WITH due AS MATERIALIZED (
                 SELECT id FROM tenants
                  WHERE active AND sync_due_at <= now()
                    AND (sync_lease_expires_at IS NULL OR sync_lease_expires_at < now())
                  ORDER BY sync_due_at
                  LIMIT $3
                  FOR UPDATE SKIP LOCKED)
             UPDATE tenants t
                SET sync_lease_owner = $1, sync_lease_expires_at = now() + make_interval(secs => $2)
               FROM due
              WHERE t.id = due.id
          RETURNING t.id, t.plan, t.sync_due_at",
            [worker.into(), (lease_secs as f64).into(), (limit as i64).into()],
        ))
        .await?;
    rows.iter().map(claimed).collect()
}

/// Claims one tenant whether or not it is due (the `worker sync` command), unless a live worker holds it.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
pub async fn claim_one(
    db: &impl Db,
    tenant: TenantId,
    worker: &str,
    lease_secs: i64,
) -> Result<Option<Claimed>, DbErr> {
    let row = conn(db)
        .query_one_raw(stmt(
            "UPDATE tenants
                SET sync_lease_owner = $2, sync_lease_expires_at = now() + make_interval(secs => $3)
              WHERE id = $1
                AND (sync_lease_owner IS NULL OR sync_lease_owner = $2 OR sync_lease_expires_at < now())
          RETURNING id, plan, sync_due_at",
            [tenant.0.into(), worker.into(), (lease_secs as f64).into()],
        ))
        .await?;
    row.as_ref().map(claimed).transpose()
}

/// Extends this worker's lease from inside a tenant transaction. `false` means another worker holds the tenant now:
/// the caller must roll back and stop.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn renew(txn: &TenantTxn, worker: &str, lease_secs: i64) -> Result<bool, DbErr> {
    heartbeat(txn, txn.tenant_id(), worker, lease_secs).await
}

/// Extends this worker's lease (also as a heartbeat while requests run between writes); whether the lease is still
/// this worker's.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
pub async fn heartbeat(db: &impl Db, tenant: TenantId, worker: &str, lease_secs: i64) -> Result<bool, DbErr> {
    let result = conn(db)
        .execute_raw(stmt(
            "UPDATE tenants SET sync_lease_expires_at = now() + make_interval(secs => $3)
              WHERE id = $1 AND sync_lease_owner = $2",
            [tenant.0.into(), worker.into(), (lease_secs as f64).into()],
        ))
        .await?;
    Ok(result.rows_affected() == 1)
}

/// Gives the tenant back. `next_due`: when it should sync again (`None`: not until something reschedules it). A due
/// time that is no longer the one claimed was set by someone else meanwhile (a token replaced, a sync requested) and
/// is kept.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
pub async fn release(
    db: &impl Db,
    tenant: TenantId,
    worker: &str,
    claimed_due: Option<chrono::DateTime<chrono::Utc>>,
    next_due: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<(), DbErr> {
    conn(db)
        .execute_raw(stmt(
            "UPDATE tenants
            SET sync_lease_owner = NULL, sync_lease_expires_at = NULL,
                sync_due_at = CASE WHEN sync_due_at IS DISTINCT FROM $3 THEN sync_due_at ELSE $4 END
          WHERE id = $1 AND sync_lease_owner = $2",
            [tenant.0.into(), worker.into(), claimed_due.into(), next_due.into()],
        ))
        .await
        .map(|_| ())
}
