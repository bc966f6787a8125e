//! Attempt throttling, shared by every API instance through Postgres (`auth_throttle`).
//!
//! An attempt (a sign-in, a password check, a registration) is [`admit`]ted under several limits at once, each a key
//! with its [`Policy`]: the attempt is counted under every key **before** the expensive work, in one atomic statement
//! (the `auth_throttle_admit` function), or refused under all of them without counting anything when any key is
//! locked. Counting first is what makes a limit hold under concurrency: forty parallel wrong passwords against a limit
//! of five are five password checks and thirty-five refusals, never fourteen checks. The attempt that reaches a key's
//! threshold locks the key at once (for `base_lock`, doubling with each further attempt, at most `max_lock`). A
//! success then [`settle`]s: it clears the keys that stand for the caller's own failures and [`forgive`]s one attempt
//! on shared keys, which also lifts a lock that the attempt itself had set.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DbErr};

use crate::db::stmt;
use crate::tenancy::{Db, conn};

/// The rule of one kind of key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Attempts within `window` that lock the key (the one reaching it is still let through).
    pub threshold: i32,
    pub window: Duration,
    /// First lock; doubles with each further attempt after the lock, up to `max_lock`.
    pub base_lock: Duration,
    pub max_lock: Duration,
}

/// A key and the policy it is counted under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub key: String,
    pub policy: Policy,
}

impl Limit {
    pub fn new(key: impl Into<String>, policy: Policy) -> Self {
        Self { key: key.into(), policy }
    }

    fn as_json(&self) -> serde_json::Value {
        serde_json::json!({
            "key": self.key,
            "threshold": self.policy.threshold.max(1),
            "window_secs": self.policy.window.as_secs_f64(),
            "base_secs": self.policy.base_lock.as_secs_f64(),
            "max_secs": self.policy.max_lock.as_secs_f64(),
        })
    }
}

/// Counts an attempt under every limit, or under none. `Some(wait)`: refused, some key stays locked that long.
#[tracing::instrument(skip_all)]
pub async fn admit(db: &impl Db, limits: &[Limit]) -> Result<Option<Duration>, DbErr> {
    let db = conn(db);
    if limits.is_empty() {
        return Ok(None);
    }
    let json = serde_json::Value::Array(limits.iter().map(Limit::as_json).collect());
    let row =
        again_on_conflict(|| db.query_one_raw(stmt("SELECT auth_throttle_admit($1) AS wait", [json.clone().into()])))
            .await?;
    let wait: Option<f64> = match row {
        Some(row) => row.try_get("", "wait")?,
        None => None,
    };
    Ok(wait.map(|secs| Duration::from_secs_f64(secs.max(1.0).ceil())))
}

/// After a success: forgets every attempt counted under `clear` (they were the caller's own) and takes back one attempt
/// under each of `forgive` (see [`forgive`]), in one statement.
#[tracing::instrument(skip_all)]
pub async fn settle(db: &impl Db, clear: &[&str], forgive: &[Limit]) -> Result<(), DbErr> {
    let db = conn(db);
    let clear = serde_json::Value::Array(clear.iter().map(|k| serde_json::Value::from(*k)).collect());
    let forgive = serde_json::Value::Array(forgive.iter().map(Limit::as_json).collect());
    // In key order, like the admission.
    again_on_conflict(|| {
        db.execute_raw(stmt("SELECT auth_throttle_settle($1, $2)", [clear.clone().into(), forgive.clone().into()]))
    })
    .await
    .map(|_| ())
}

/// Runs `statement` (one statement, outside a transaction) again when Postgres broke a deadlock by ending it: the
/// throttle's rows are few and hot (one account signing in from many clients at once), and the functions lock them
/// in key order, but a row deleted by one settling and inserted again by an admission can still leave two statements
/// waiting on each other now and then. At most three attempts.
async fn again_on_conflict<T, F>(mut statement: impl FnMut() -> F) -> Result<T, DbErr>
where
    F: std::future::Future<Output = Result<T, DbErr>>,
{
    let mut attempt = 1;
    loop {
        match statement().await {
            Err(e) if attempt < 3 && crate::db::is_retryable_conflict(&e) => {
                tracing::debug!(error = %e, attempt, "throttle statement ended by a deadlock; again");
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// Takes back one attempt counted under each of `limits` (it succeeded, or was never made), and the lock it set if the
/// count falls below the threshold again. For shared keys (a client address) whose other attempts must stay counted.
#[tracing::instrument(skip_all)]
pub async fn forgive(db: &impl Db, limits: &[Limit]) -> Result<(), DbErr> {
    if limits.is_empty() {
        return Ok(());
    }
    settle(db, &[], limits).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_is_sent_with_its_whole_policy_and_a_threshold_of_at_least_one() {
        let policy = Policy {
            threshold: 0,
            window: Duration::from_secs(900),
            base_lock: Duration::from_secs(30),
            max_lock: Duration::from_secs(900),
        };
        let json = Limit::new("login:a@b.c|::1", policy).as_json();
        assert_eq!(json["threshold"], 1);
        assert_eq!(json["window_secs"], 900.0);
        assert_eq!(json["key"], "login:a@b.c|::1");
    }
}
