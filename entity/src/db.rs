//! Connecting to Postgres as the runtime role, and telling an outage apart from a bug.

use std::time::Duration;

use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, RuntimeErr, TransactionTrait,
};

/// How long a pooled connection may sit idle and still be handed out without a ping. A busy server reuses its
/// connections within milliseconds and never pings; a quiet one pays one round trip on a request that has no
/// throughput to lose.
pub const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// Pool settings shared by the API and the worker.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// How long a request waits for a pooled connection before it is answered 503.
    pub acquire_timeout: Duration,
    pub connect_timeout: Duration,
    /// Longest a statement may run before Postgres cancels it (SQLSTATE 57014); zero: no limit.
    pub statement_timeout: Duration,
    /// Longest a transaction may sit idle (opened, nothing sent) before Postgres ends the session, so a stuck client
    /// cannot hold row locks; zero: no limit.
    pub idle_in_transaction_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(3),
            statement_timeout: Duration::from_secs(30),
            idle_in_transaction_timeout: Duration::from_secs(60),
        }
    }
}

impl PoolSettings {
    /// The session settings of every connection of the pool, sent in the startup packet (no round trip of its own).
    fn startup_options(&self) -> [(&'static str, String); 3] {
        [
            ("search_path", "public, pg_temp".to_owned()),
            ("statement_timeout", self.statement_timeout.as_millis().to_string()),
            ("idle_in_transaction_session_timeout", self.idle_in_transaction_timeout.as_millis().to_string()),
        ]
    }
}

/// Opens a lazily connecting pool: the process starts (and `/readyz` can report the outage) even while Postgres is
/// down.
///
/// A checkout is not tested with a round trip of its own (sqlx's `test_before_acquire` would add one to every
/// statement or transaction): a connection used in the last [`PING_IF_IDLE_FOR`] is handed out as it is, one that sat
/// idle longer is pinged first. Connections killed by a restart of Postgres have sat idle at least as long as the
/// restart took, so they are nearly always caught by that test; the rest fail on their first statement at once, and
/// [`begin`] (every transaction, so every tenant request) and [`retry_if_dead`] (reads outside one) try again on
/// another connection.
///
/// Every connection's `statement_timeout` and `idle_in_transaction_session_timeout` come from `settings`, and its
/// `search_path` is pinned to `public, pg_temp`, all in the startup packet (no extra round trip), so
/// a role or database setting cannot point unqualified names elsewhere. `pg_temp` is named last on purpose: left
/// out, Postgres looks up tables and types in it *first*, so a temporary table would shadow the real one; last, a
/// temporary object can never hide a real one.
///
/// The password of `url` is handed to the driver on its own: sea-orm records its connect options, URL included, in a
/// trace-level span, and a password must not reach a log at any level.
pub async fn connect(url: &str, settings: &PoolSettings) -> Result<DatabaseConnection, DbErr> {
    let (url, password) = split_password(url)?;
    let mut options = ConnectOptions::new(url);
    let startup = settings.startup_options();
    if let Some(password) = password {
        options.map_sqlx_postgres_opts(move |pg| pg.password(&password));
    }
    options
        .max_connections(settings.max_connections)
        .min_connections(0)
        .connect_timeout(settings.connect_timeout)
        .acquire_timeout(settings.acquire_timeout)
        .test_before_acquire_if_idle_for(PING_IF_IDLE_FOR)
        .connect_lazy(true)
        .sqlx_logging(false)
        .record_stmt_in_spans(false)
        .map_sqlx_postgres_opts(move |pg| pg.options(startup.clone()));
    Database::connect(options).await
}

/// `url` without its password, and the password (percent-decoded).
fn split_password(url: &str) -> Result<(String, Option<String>), DbErr> {
    let invalid = || DbErr::Custom("DATABASE_URL is not a valid postgres:// URL".to_owned());
    let mut parsed = url::Url::parse(url).map_err(|_| invalid())?;
    let Some(password) = parsed.password() else {
        return Ok((url.to_owned(), None));
    };
    let password = percent_encoding::percent_decode_str(password).decode_utf8().map_err(|_| invalid())?.into_owned();
    parsed.set_password(None).map_err(|()| invalid())?;
    Ok((parsed.to_string(), Some(password)))
}

/// A Postgres statement with bound values (for the hand-written SQL of this crate).
pub(crate) fn stmt(sql: &str, values: impl IntoIterator<Item = sea_orm::Value>) -> sea_orm::Statement {
    sea_orm::Statement::from_sql_and_values(sea_orm::DbBackend::Postgres, sql, values)
}

/// Begins a transaction. When the pooled connection it was given turns out to be dead (Postgres restarted, or a proxy
/// dropped it), `BEGIN` fails at once and nothing has run yet, so it is sent again on another connection: a request
/// does not fail for a connection the pool could have replaced. Each failure discards its connection, so after as
/// many attempts as the pool holds connections a further failure means Postgres itself is unreachable.
///
/// While it waits for a pooled connection (and its `BEGIN`), the gauge `db_pool_waiting` counts it.
pub async fn begin(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let _waiting = Waiting::enter();
    retry_if_dead(db, || db.begin()).await
}

/// One transaction waiting to begin, in the `db_pool_waiting` gauge while it lives.
struct Waiting;

impl Waiting {
    fn enter() -> Self {
        metrics::gauge!("db_pool_waiting").increment(1.0);
        Self
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        metrics::gauge!("db_pool_waiting").decrement(1.0);
    }
}

/// Runs `attempt` (a statement that is safe to run again: a read, or the first statement of a transaction) again while
/// it fails on a dead pooled connection, at most as many times as the pool holds connections.
pub async fn retry_if_dead<T, F>(db: &DatabaseConnection, mut attempt: impl FnMut() -> F) -> Result<T, DbErr>
where
    F: std::future::Future<Output = Result<T, DbErr>>,
{
    let retries = match db.get_database_backend() {
        DbBackend::Postgres => db.get_postgres_connection_pool().options().get_max_connections(),
        _ => 0,
    };
    let mut failures = 0;
    loop {
        match attempt().await {
            Err(err) if failures < retries && is_dead_connection(&err) => {
                failures += 1;
                tracing::info!(error = %err, "a pooled connection was dead; trying another");
            }
            result => return result,
        }
    }
}

/// True when `err` is the failure of a statement on a connection that the server has closed (a restart, a proxy),
/// as opposed to a failure to get a connection at all (Postgres is down: [`is_unavailable`]) or a fault of the
/// statement.
pub fn is_dead_connection(err: &DbErr) -> bool {
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            !matches!(**e, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed) && sqlx_unavailable(e)
        }
        _ => false,
    }
}

/// True when `err` means "the database cannot be reached right now" (refused, reset, pool timeout, server shutting
/// down or refusing connections) rather than a fault of the query itself.
pub fn is_unavailable(err: &DbErr) -> bool {
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => sqlx_unavailable(e),
        _ => false,
    }
}

/// True when `err` is a statement Postgres cancelled because it ran past `statement_timeout` (57014).
pub fn is_statement_timeout(err: &DbErr) -> bool {
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            matches!(&**e, sqlx::Error::Database(db) if db.code().is_some_and(|code| code == "57014"))
        }
        _ => false,
    }
}

/// True when `err` is Postgres ending the statement's transaction to break a deadlock (40P01) or a serialization
/// failure (40001): the statement did nothing and may simply run again.
pub fn is_retryable_conflict(err: &DbErr) -> bool {
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => match &**e {
            sqlx::Error::Database(db) => db.code().is_some_and(|code| matches!(code.as_ref(), "40P01" | "40001")),
            _ => false,
        },
        _ => false,
    }
}

fn sqlx_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // Class 08: connection exception; 57P01-57P03: admin/crash shutdown, cannot connect now;
            // 53300: too many connections.
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::ConnAcquireErr;
    use std::sync::Arc;

    #[test]
    fn the_password_leaves_the_url_and_is_decoded() {
        let (url, password) = split_password("postgres://app:p%40ss%2Bw@db:5432/hub").unwrap();
        assert_eq!(url, "postgres://app@db:5432/hub");
        assert_eq!(password.as_deref(), Some("p@ss+w"));
        assert_eq!(split_password("postgres://app@db/hub").unwrap(), ("postgres://app@db/hub".to_owned(), None));
        assert!(split_password("not a url").is_err());
    }

    #[test]
    fn pool_and_io_errors_are_outages_but_query_errors_are_not() {
        assert!(is_unavailable(&DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)));
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(is_unavailable(&DbErr::Query(RuntimeErr::SqlxError(Arc::new(io)))));
        assert!(is_unavailable(&DbErr::Exec(RuntimeErr::SqlxError(Arc::new(sqlx::Error::PoolTimedOut)))));
        assert!(!is_unavailable(&DbErr::RecordNotFound("x".into())));
        assert!(!is_unavailable(&DbErr::Query(RuntimeErr::SqlxError(Arc::new(sqlx::Error::RowNotFound)))));
    }

    #[test]
    fn only_a_statement_on_a_closed_connection_is_a_dead_connection() {
        let reset = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(is_dead_connection(&DbErr::Query(RuntimeErr::SqlxError(Arc::new(reset)))));
        let eof = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        assert!(is_dead_connection(&DbErr::Exec(RuntimeErr::SqlxError(Arc::new(eof)))));
        // Getting no connection at all is an outage, not a connection to replace.
        assert!(!is_dead_connection(&DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)));
        assert!(!is_dead_connection(&DbErr::Query(RuntimeErr::SqlxError(Arc::new(sqlx::Error::PoolTimedOut)))));
        let refused = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(!is_dead_connection(&DbErr::Conn(RuntimeErr::SqlxError(Arc::new(refused)))));
        assert!(!is_dead_connection(&DbErr::Query(RuntimeErr::SqlxError(Arc::new(sqlx::Error::RowNotFound)))));
    }
}
