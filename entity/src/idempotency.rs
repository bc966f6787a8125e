//! Idempotency keys (migration 18): a POST that creates something and carries an `Idempotency-Key` claims the key in
//! the transaction that does the work ([`claim`]) and stores its answer there before committing ([`record`]). The
//! key and what the request created therefore commit together or not at all:
//!
//! - a retry after a success finds the stored answer and is given it again, creating nothing;
//! - a retry after a failure (nothing committed, so no key) runs anew;
//! - a concurrent duplicate's `INSERT` waits on the first request's row (the primary key) until that transaction
//!   ends, then finds its answer, or the key free if it rolled back;
//! - the same key with another request is told apart by the request's hash ([`Claimed::Mismatch`]).
//!
//! Keys are scoped to the tenant (row-level security) and the caller (`principal`), and stored only as a SHA-256
//! hash. A row older than [`TTL`] is ignored and replaced; the worker purges them (`purge_expired`).

use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};

use crate::TenantTxn;
use crate::db::stmt;

/// How long an answer is kept for retries.
pub const TTL_HOURS: i64 = 24;

/// One request's claim on a key.
#[derive(Debug, Clone)]
pub struct Claim<'a> {
    /// Who sends it: `user:<id>` or `api_key:<id>`.
    pub principal: &'a str,
    /// SHA-256 of the client's key, hex.
    pub key_hash: &'a str,
    /// The operation (`create_api_key`, ...): a key reused on another operation is a mismatch too.
    pub operation: &'a str,
    /// SHA-256 of the request (operation, path and canonical body).
    pub request_hash: [u8; 32],
}

/// A stored answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub status: u16,
    /// Headers to send again (`Location`, ...), as name/value pairs.
    pub headers: Vec<(String, String)>,
    /// The body as stored (sealed by the caller).
    pub body: Vec<u8>,
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// The key is this request's: do the work, then [`record`] the answer in the same transaction.
    New,
    /// The key was used by the same request, whose answer this is: send it again, do nothing.
    Replay(Stored),
    /// The key was used by another request (another body, path or operation).
    Mismatch,
}

#[derive(FromQueryResult)]
struct Row {
    operation: String,
    request_hash: Vec<u8>,
    status: Option<i16>,
    headers: serde_json::Value,
    body: Option<Vec<u8>>,
    fresh: bool,
}

/// Claims `claim`'s key in `txn` (see the module documentation). Waits while another transaction holds the same key.
pub async fn claim(txn: &TenantTxn, claim: &Claim<'_>) -> Result<Claimed, DbErr> {
    let tenant = txn.tenant_id().0;
    for _ in 0..3 {
        let inserted = txn
            .conn()
            .query_one_raw(stmt(
                "INSERT INTO idempotency_keys (tenant_id, principal, key, operation, request_hash)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, principal, key) DO NOTHING RETURNING true",
                [
                    tenant.into(),
                    claim.principal.into(),
                    claim.key_hash.into(),
                    claim.operation.into(),
                    claim.request_hash.to_vec().into(),
                ],
            ))
            .await?;
        if inserted.is_some() {
            return Ok(Claimed::New);
        }
        // The row is committed (a conflicting INSERT waits for the other transaction's end): read it.
        let row = Row::find_by_statement(stmt(
            &format!(
                "SELECT operation, request_hash, status, headers, body,
                        created_at > now() - interval '{TTL_HOURS} hours' AS fresh
                   FROM idempotency_keys WHERE tenant_id = $1 AND principal = $2 AND key = $3"
            ),
            [tenant.into(), claim.principal.into(), claim.key_hash.into()],
        ))
        .one(txn.conn())
        .await?;
        let Some(row) = row else { continue };
        if !row.fresh {
            txn.conn()
                .execute_raw(stmt(
                    &format!(
                        "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND principal = $2 AND key = $3
                           AND created_at <= now() - interval '{TTL_HOURS} hours'"
                    ),
                    [tenant.into(), claim.principal.into(), claim.key_hash.into()],
                ))
                .await?;
            continue;
        }
        if row.operation != claim.operation || row.request_hash != claim.request_hash {
            return Ok(Claimed::Mismatch);
        }
        let (Some(status), Some(body)) = (row.status, row.body) else {
            return Err(DbErr::Custom("an idempotency key was committed without its answer".to_owned()));
        };
        let headers = serde_json::from_value(row.headers).unwrap_or_default();
        return Ok(Claimed::Replay(Stored { status: u16::try_from(status).unwrap_or(500), headers, body }));
    }
    Err(DbErr::Custom("an idempotency key kept changing hands".to_owned()))
}

/// Stores the answer to the request that claimed the key, in its transaction (before it commits).
pub async fn record(txn: &TenantTxn, principal: &str, key_hash: &str, answer: &Stored) -> Result<(), DbErr> {
    let headers = serde_json::to_value(&answer.headers).unwrap_or_default();
    txn.conn()
        .execute_raw(stmt(
            "UPDATE idempotency_keys SET status = $4, headers = $5, body = $6
              WHERE tenant_id = $1 AND principal = $2 AND key = $3",
            [
                txn.tenant_id().0.into(),
                principal.into(),
                key_hash.into(),
                i16::try_from(answer.status).unwrap_or(500).into(),
                headers.into(),
                answer.body.clone().into(),
            ],
        ))
        .await?;
    Ok(())
}

/// Deletes up to `max_rows` expired keys of every tenant; how many.
pub async fn purge_expired(db: &impl ConnectionTrait, max_rows: i32) -> Result<i64, DbErr> {
    let row = db
        .query_one_raw(stmt(
            &format!("SELECT idempotency_keys_purge(interval '{TTL_HOURS} hours', $1) AS purged"),
            [max_rows.into()],
        ))
        .await?;
    row.map(|r| r.try_get::<i64>("", "purged")).transpose().map(Option::unwrap_or_default)
}
