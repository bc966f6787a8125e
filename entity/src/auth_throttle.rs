//! Failed-login throttling, shared by every API instance through Postgres. Keys are `email:<address>` and
//! `ip:<address>`; after `threshold` failures within the window a key is locked, for longer with each further failure.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

/// How long the most locked of `keys` stays locked, if any is.
#[tracing::instrument(skip_all)]
pub async fn locked_for(db: &impl ConnectionTrait, keys: &[String]) -> Result<Option<Duration>, DbErr> {
    if keys.is_empty() {
        return Ok(None);
    }
    let placeholders: Vec<String> = (1..=keys.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT extract(epoch FROM max(locked_until) - now())::float8 AS secs FROM auth_throttle \
         WHERE key IN ({}) AND locked_until > now()",
        placeholders.join(", ")
    );
    let values: Vec<sea_orm::Value> = keys.iter().map(|k| k.clone().into()).collect();
    let row = db.query_one_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, values)).await?;
    let secs: Option<f64> = match row {
        Some(row) => row.try_get("", "secs")?,
        None => None,
    };
    Ok(secs.filter(|s| *s > 0.0).map(|s| Duration::from_secs_f64(s.ceil())))
}

/// Policy for one kind of key.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Failures within `window` before the key locks.
    pub threshold: i32,
    pub window: Duration,
    /// First lock; doubles with each further failure, up to `max_lock`.
    pub base_lock: Duration,
    pub max_lock: Duration,
}

/// Counts a failure for `key` and locks it once the policy's threshold is reached.
#[tracing::instrument(skip_all)]
pub async fn record_failure(db: &impl ConnectionTrait, key: &str, policy: Policy) -> Result<(), DbErr> {
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        r#"
        INSERT INTO auth_throttle AS t (key, failures, window_started_at) VALUES ($1, 1, now())
        ON CONFLICT (key) DO UPDATE SET
            failures = CASE WHEN t.window_started_at < now() - make_interval(secs => $2) THEN 1 ELSE t.failures + 1 END,
            window_started_at = CASE WHEN t.window_started_at < now() - make_interval(secs => $2)
                                     THEN now() ELSE t.window_started_at END
        "#,
        [key.into(), policy.window.as_secs_f64().into()],
    ))
    .await?;
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        r#"
        UPDATE auth_throttle SET locked_until = now() + make_interval(secs =>
            least($4::float8, $3::float8 * power(2, failures - $2)))
        WHERE key = $1 AND failures >= $2
        "#,
        [
            key.into(),
            policy.threshold.into(),
            policy.base_lock.as_secs_f64().into(),
            policy.max_lock.as_secs_f64().into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Forgets the failures of `key` (after a successful login).
#[tracing::instrument(skip_all)]
pub async fn reset(db: &impl ConnectionTrait, key: &str) -> Result<(), DbErr> {
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "DELETE FROM auth_throttle WHERE key = $1",
        [key.into()],
    ))
    .await
    .map(|_| ())
}
