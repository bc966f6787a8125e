//! Request rate limits shared by every API replica (migration 18): one generic-cell-rate-algorithm bucket per key in
//! the unlogged table `rate_limits`, taken by `rate_limit_take` in one statement.

use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};

use crate::db::stmt;

/// What the bucket said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromQueryResult)]
pub struct Decision {
    pub allowed: bool,
    /// Requests left in the bucket now.
    pub remaining: i32,
    /// Milliseconds until the bucket is full again.
    pub reset_ms: i64,
    /// When refused: milliseconds until a request would be admitted.
    pub retry_after_ms: i64,
}

/// One bucket to take from: its key, refill per minute and burst.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub key: String,
    pub per_minute: u32,
    pub burst: u32,
}

/// Takes one request from each of `buckets` in one statement (each is counted, whatever the others say), in the order
/// given, which callers keep the same for all requests (so that two statements never wait on each other's rows).
pub async fn take_all(db: &impl ConnectionTrait, buckets: &[Bucket]) -> Result<Vec<Decision>, DbErr> {
    let keys: Vec<String> = buckets.iter().map(|b| b.key.clone()).collect();
    let rates: Vec<i32> = buckets.iter().map(|b| i32::try_from(b.per_minute).unwrap_or(i32::MAX)).collect();
    let bursts: Vec<i32> = buckets.iter().map(|b| i32::try_from(b.burst).unwrap_or(i32::MAX)).collect();
    Decision::find_by_statement(stmt(
        "SELECT d.allowed, d.remaining, d.reset_ms, d.retry_after_ms
           FROM unnest($1::text[], $2::int[], $3::int[]) WITH ORDINALITY AS b(key, per_minute, burst, ord),
                LATERAL rate_limit_take(b.key, b.per_minute, b.burst) d
          ORDER BY b.ord",
        [keys.into(), rates.into(), bursts.into()],
    ))
    .all(db)
    .await
}

/// Deletes buckets that have refilled completely (the same as absent); how many.
pub async fn purge_full(db: &impl ConnectionTrait) -> Result<u64, DbErr> {
    Ok(db.execute_raw(stmt("DELETE FROM rate_limits WHERE tat < now()", [])).await?.rows_affected())
}
