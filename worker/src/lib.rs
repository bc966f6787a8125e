//! The sync worker. For now it owns its settings, connects as the runtime role, refuses an unsafe role exactly as the
//! API does, and runs until SIGINT/SIGTERM; the TestIO sync loop is built on this in the sync issue.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use entity::db::PoolSettings;
use sea_orm::DatabaseConnection;
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;

/// Worker settings, from environment variables (or the matching flags).
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Runtime-role connection (not a superuser, NOBYPASSRLS, owns nothing).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_parser = secret,
          default_value = "postgres://testio_app@127.0.0.1:5432/testio_hub")]
    pub database_url: SecretString,
    /// Largest number of pooled database connections.
    #[arg(long, env = "WORKER_DATABASE_MAX_CONNECTIONS", default_value_t = 5)]
    pub database_max_connections: u32,
    /// How long start-up waits for the database to become reachable before giving up, in seconds.
    #[arg(long, env = "DATABASE_STARTUP_TIMEOUT_SECS", default_value_t = 30)]
    pub database_startup_timeout_secs: u64,
    /// Log format: `json` or `pretty`. The level comes from `RUST_LOG`.
    #[arg(long, env = "LOG_FORMAT", default_value = "json")]
    pub log_format: String,
}

fn secret(s: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(s))
}

/// A worker whose database role has been checked.
pub struct Worker {
    db: DatabaseConnection,
}

impl Worker {
    /// Connects and checks the role; fails (the binary exits non-zero) if the role could escape row-level security.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let pool = PoolSettings {
            max_connections: settings.database_max_connections,
            acquire_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
        };
        let db = entity::db::connect(settings.database_url.expose_secret(), &pool)
            .await
            .context("Failed to configure the database pool")?;
        entity::role_check::verify_at_startup(&db, Duration::from_secs(settings.database_startup_timeout_secs)).await?;
        Ok(Self { db })
    }

    /// Runs until `shutdown` is cancelled, then closes the pool.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!("worker started; no sync jobs are defined yet");
        shutdown.cancelled().await;
        tracing::info!("worker stopping");
        self.db.close().await.context("Failed to close the database pool")?;
        Ok(())
    }
}

/// Cancels the returned token on SIGINT or SIGTERM.
pub fn shutdown_on_signals() -> anyhow::Result<CancellationToken> {
    let token = CancellationToken::new();
    let child = token.clone();
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("Failed to install the SIGTERM handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = sigterm.recv() => {}
        }
        child.cancel();
    });
    Ok(token)
}
