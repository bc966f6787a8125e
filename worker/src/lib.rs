//! The sync worker: keeps each tenant's mirror of its TestIO data (products, tests, bugs) up to date.
//!
//! It connects as the runtime role (and refuses an unsafe role exactly as the API does), claims due tenants with
//! expiring leases so that any number of workers can run side by side ([`entity::sync::schedule`]), and runs the sync
//! algorithm of [`sync`] against the client of the [`testio`] crate. SIGTERM stops it between requests: the running
//! syncs record an interrupted run and hand their tenant back as due at once.

pub mod billing;
pub mod metrics;
pub mod runner;
pub mod sync;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use common::settings::{LogFormat, secret};
use common::token_cipher::TokenKeys;
use entity::db::PoolSettings;
use entity::sync::schedule;
use entity::sync_runs::SyncTrigger;
use entity::{TenantId, TenantTxn, audit, mirror};
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;

use crate::runner::{Finished, Intervals, Runner, default_worker_name};
use crate::sync::SyncSettings;
use testio::allowlist::AllowedBaseUrls;
use testio::client::{ClientSettings, TestioClient};

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
    /// Longest a statement of the worker may run before Postgres cancels it, in milliseconds (0: no limit).
    #[arg(long, env = "WORKER_STATEMENT_TIMEOUT_MS", default_value_t = 120_000)]
    pub statement_timeout_ms: u64,
    /// Longest a transaction of the worker may sit idle before Postgres ends its session, in milliseconds (0: no
    /// limit).
    #[arg(long, env = "WORKER_IDLE_IN_TRANSACTION_TIMEOUT_MS", default_value_t = 300_000)]
    pub idle_in_transaction_timeout_ms: u64,
    /// Log format: `json` or `pretty`. The level comes from `RUST_LOG`.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
    /// Keys that decrypt stored TestIO tokens, `kid:base64key,...` (the API's setting of the same name).
    #[arg(long, env = "TESTIO_TOKEN_KEYS", hide_env_values = true, value_parser = secret)]
    pub token_keys: Option<SecretString>,
    /// This process's name in leases and sync runs; unique per process (default: host, pid and a random suffix).
    #[arg(long, env = "WORKER_NAME")]
    pub name: Option<String>,
    /// Tenants synced at once by this process.
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 4)]
    pub concurrency: usize,
    /// Address of the worker's metrics port (`GET /metrics`, `GET /livez`), `host:port`; empty: none. Give each worker
    /// on one host its own port.
    #[arg(long, env = "WORKER_METRICS_ADDR", default_value = "127.0.0.1:9464")]
    pub metrics_addr: String,
    /// How often the per-tenant freshness and audit-chain gauges are read from the database, in seconds.
    #[arg(long, env = "WORKER_METRICS_INTERVAL_SECS", default_value_t = 15)]
    pub metrics_interval_secs: u64,
    /// How often to look for due tenants, in milliseconds.
    #[arg(long, env = "WORKER_POLL_INTERVAL_MS", default_value_t = 1000)]
    pub poll_interval_ms: u64,
    /// How often to seal new audit events into the tenants' hash chains, in milliseconds (0: never).
    #[arg(long, env = "AUDIT_SEAL_INTERVAL_MS", default_value_t = 5000)]
    pub audit_seal_interval_ms: u64,
    /// The plans' limits (sync intervals, mirrored products, audit retention).
    #[command(flatten)]
    pub plans: common::settings::PlanSettings,
    /// How to reach Stripe (webhook events are applied, and subscriptions reconciled, from what it says).
    #[command(flatten)]
    pub stripe: common::settings::StripeSettings,
    /// How often to look for Stripe events to apply when there were none, in milliseconds.
    #[arg(long, env = "BILLING_POLL_INTERVAL_MS", default_value_t = 1000)]
    pub billing_poll_interval_ms: u64,
    /// Days the platform's own audit events (sign-ins, registrations) and deleted tenants' are kept.
    #[arg(long, env = "AUDIT_RETENTION_OTHER_DAYS", default_value_t = 365, value_parser = clap::value_parser!(i32).range(1..))]
    pub audit_retention_other_days: i32,
    /// How often to purge expired audit events (and idempotency keys older than 24 hours), in seconds (0: never).
    #[arg(long, env = "AUDIT_RETENTION_CHECK_SECS", default_value_t = 3600)]
    pub audit_retention_check_secs: u64,
    /// Lease on a tenant, in seconds; renewed on every write, taken over by another worker once expired.
    #[arg(long, env = "SYNC_LEASE_SECS", default_value_t = 300)]
    pub lease_secs: i64,
    /// `per_page` of test list requests.
    #[arg(long, env = "SYNC_PAGE_SIZE", default_value_t = 50)]
    pub page_size: usize,
    /// Consecutive pages of already mirrored, unchanged tests after which the newest-first scan of a product stops.
    #[arg(long, env = "SYNC_STOP_AFTER_QUIET_PAGES", default_value_t = 1)]
    pub stop_after_quiet_pages: usize,
    /// Pages of one product's history read per run; the backfill resumes in the next run.
    #[arg(long, env = "SYNC_MAX_PAGES_PER_PRODUCT", default_value_t = 500)]
    pub max_pages_per_product: usize,
    /// Test ids per bug request (halved on 524).
    #[arg(long, env = "SYNC_BUG_BATCH_SIZE", default_value_t = 15)]
    pub bug_batch_size: usize,
    /// Requests of one tenant in flight at once.
    #[arg(long, env = "SYNC_TENANT_CONCURRENCY", default_value_t = 2)]
    pub tenant_concurrency: usize,
    /// Time in which every product's whole list is re-read by the rolling verification, in seconds; each run
    /// re-reads its share (at least one page per product). `verified_through` is at most this old, plus an interval.
    #[arg(long, env = "SYNC_VERIFY_CYCLE_SECS", default_value_t = 86400)]
    pub verify_cycle_secs: u64,
    /// Tests that ended within this many days have their bugs read every run (customers accept and reject bugs then);
    /// older tests' bugs are re-read as their part of the list is verified.
    #[arg(long, env = "SYNC_BUG_REVIEW_DAYS", default_value_t = 30)]
    pub bug_review_days: u64,
    /// Requests to TestIO in flight at once, all tenants of this process together.
    #[arg(long, env = "TESTIO_MAX_CONCURRENT_REQUESTS", default_value_t = 8)]
    pub max_concurrent_requests: usize,
    /// Timeout of one TestIO request, in seconds.
    #[arg(long, env = "TESTIO_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// Attempts per TestIO request on transient failures.
    #[arg(long, env = "TESTIO_MAX_ATTEMPTS", default_value_t = 4)]
    pub max_attempts: u32,
    /// Cap of the first backoff after a transient failure, in milliseconds (doubled per attempt; each wait is drawn
    /// uniformly below the cap).
    #[arg(long, env = "TESTIO_BACKOFF_BASE_MS", default_value_t = 200)]
    pub backoff_base_ms: u64,
    /// Longest `Retry-After` waited for, in seconds; longer ones end the run (retried at the next).
    #[arg(long, env = "TESTIO_MAX_RETRY_AFTER_SECS", default_value_t = 120)]
    pub max_retry_after_secs: u64,
    /// Comma-separated base URLs a connection may use (the API's setting of the same name; give both the same value).
    /// A connection stored with a base URL outside the list is not synced: it is marked `base_url_not_allowed`.
    #[arg(long, env = "TESTIO_ALLOWED_BASE_URLS", default_value = "https://api.test.io/")]
    pub allowed_base_urls: String,
}

impl Settings {
    pub fn sync(&self) -> SyncSettings {
        SyncSettings {
            page_size: self.page_size.max(1),
            stop_after_quiet_pages: self.stop_after_quiet_pages.max(1),
            max_pages_per_product: self.max_pages_per_product.max(1),
            bug_batch_size: self.bug_batch_size.max(1),
            tenant_concurrency: self.tenant_concurrency.max(1),
            verify_cycle: Duration::from_secs(self.verify_cycle_secs.max(1)),
            bug_review: Duration::from_secs(self.bug_review_days.saturating_mul(86400)),
            lease_secs: self.lease_secs.max(2),
        }
    }

    pub fn client(&self) -> ClientSettings {
        ClientSettings {
            request_timeout: Duration::from_secs(self.request_timeout_secs.max(1)),
            max_attempts: self.max_attempts.max(1),
            backoff_base: Duration::from_millis(self.backoff_base_ms),
            backoff_max: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(self.max_retry_after_secs),
            max_response_bytes: 64 * 1024 * 1024,
            max_concurrent_requests: self.max_concurrent_requests.max(1),
        }
    }

    /// The audit retention of each plan.
    pub fn retention(&self) -> audit::chain::Retention {
        let days = |d: u32| i32::try_from(d).unwrap_or(i32::MAX);
        audit::chain::Retention {
            free_days: days(self.plans.audit_retention_free_days),
            pro_days: days(self.plans.audit_retention_pro_days),
            enterprise_days: days(self.plans.audit_retention_enterprise_days),
            other_days: self.audit_retention_other_days,
        }
    }

    pub fn intervals(&self) -> Intervals {
        Intervals {
            free: Duration::from_secs(self.plans.interval_free_secs),
            pro: Duration::from_secs(self.plans.interval_pro_secs),
            enterprise: Duration::from_secs(self.plans.interval_enterprise_secs),
        }
    }
}

/// A worker whose database role has been checked.
pub struct Worker {
    runner: Arc<Runner>,
    concurrency: usize,
    poll: Duration,
    /// How often to seal audit events; `None`: never.
    seal_every: Option<Duration>,
    /// How often to purge expired audit events; `None`: never.
    purge_every: Option<Duration>,
    retention: audit::chain::Retention,
    /// Stripe and the plans, when `STRIPE_SECRET_KEY` is set.
    billing: Option<(::billing::StripeClient, entity::plans::Catalog)>,
    billing_poll: Duration,
    /// The metrics port, bound at build and served while the worker runs.
    metrics: Option<metrics::MetricsListener>,
    metrics_every: Duration,
}

impl Worker {
    /// Connects and checks the role; fails (the binary exits non-zero) if the role could escape row-level security
    /// or the token keys or the allowed base URLs do not parse.
    pub async fn build(settings: &Settings, shutdown: CancellationToken) -> anyhow::Result<Self> {
        if settings.max_pages_per_product <= settings.stop_after_quiet_pages {
            anyhow::bail!(
                "SYNC_MAX_PAGES_PER_PRODUCT ({}) must exceed SYNC_STOP_AFTER_QUIET_PAGES ({}), or the backfill never moves",
                settings.max_pages_per_product,
                settings.stop_after_quiet_pages
            );
        }
        let keys = TokenKeys::from_config(settings.token_keys.as_ref()).context("Failed to read TESTIO_TOKEN_KEYS")?;
        if !keys.is_configured() {
            tracing::warn!("TESTIO_TOKEN_KEYS is not set: no stored TestIO token can be decrypted, so nothing syncs");
        }
        let allowlist = settings
            .allowed_base_urls
            .parse::<AllowedBaseUrls>()
            .map_err(anyhow::Error::msg)
            .context("Failed to read TESTIO_ALLOWED_BASE_URLS")?;
        let pool = PoolSettings {
            max_connections: settings.database_max_connections,
            acquire_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_millis(settings.statement_timeout_ms),
            idle_in_transaction_timeout: Duration::from_millis(settings.idle_in_transaction_timeout_ms),
        };
        let db = entity::db::connect(settings.database_url.expose_secret(), &pool)
            .await
            .context("Failed to configure the database pool")?;
        common::role_check::verify_at_startup(&db, Duration::from_secs(settings.database_startup_timeout_secs)).await?;
        let client = TestioClient::new(settings.client(), shutdown.clone())?;
        let runner = Runner {
            db,
            client,
            keys,
            allowlist,
            settings: settings.sync(),
            intervals: settings.intervals(),
            plans: settings.plans.catalog(),
            name: settings.name.clone().unwrap_or_else(default_worker_name),
            shutdown,
        };
        Ok(Self {
            runner: Arc::new(runner),
            concurrency: settings.concurrency.max(1),
            poll: Duration::from_millis(settings.poll_interval_ms.max(10)),
            seal_every: (settings.audit_seal_interval_ms > 0)
                .then(|| Duration::from_millis(settings.audit_seal_interval_ms.max(10))),
            purge_every: (settings.audit_retention_check_secs > 0)
                .then(|| Duration::from_secs(settings.audit_retention_check_secs)),
            retention: settings.retention(),
            billing: ::billing::StripeClient::from_settings(&settings.stripe)?
                .map(|client| (client, settings.plans.catalog())),
            billing_poll: Duration::from_millis(settings.billing_poll_interval_ms.max(10)),
            metrics: match settings.metrics_addr.trim() {
                "" => None,
                addr => Some(metrics::MetricsListener::bind(addr)?),
            },
            metrics_every: Duration::from_secs(settings.metrics_interval_secs.max(1)),
        })
    }

    /// Re-reads every billed tenant's subscription from Stripe and fixes what drifted (the `billing-reconcile`
    /// command).
    pub async fn reconcile_billing(&self) -> anyhow::Result<billing::Reconciled> {
        let (stripe, plans) = self.billing.as_ref().context("STRIPE_SECRET_KEY is not set")?;
        billing::reconcile(&self.runner.db, stripe, plans).await
    }

    /// Applies the due Stripe events, one after another, until none is due (tests and operators).
    pub async fn apply_billing_events(&self) -> anyhow::Result<usize> {
        let (stripe, plans) = self.billing.as_ref().context("STRIPE_SECRET_KEY is not set")?;
        billing::apply_due(&self.runner.db, stripe, plans).await
    }

    /// The port of the metrics listener, if there is one.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(metrics::MetricsListener::port)
    }

    /// This process's name in leases and sync runs.
    pub fn name(&self) -> &str {
        &self.runner.name
    }

    /// Runs until the shutdown token is cancelled, then closes the pool.
    pub async fn run(mut self) -> anyhow::Result<()> {
        tracing::info!(worker = %self.runner.name, "worker started");
        let db = self.runner.db.clone();
        let shutdown = self.runner.shutdown.clone();
        let metrics_server = self.metrics.take().map(metrics::MetricsListener::serve).transpose()?;
        let collector = tokio::spawn(metrics::collect_loop(db.clone(), self.metrics_every, shutdown.clone()));
        let sealer = self.seal_every.map(|every| tokio::spawn(seal_loop(db.clone(), every, shutdown.clone())));
        let purger = self
            .purge_every
            .map(|every| tokio::spawn(retention_loop(db.clone(), self.retention, every, shutdown.clone())));
        let biller = self.billing.clone().map(|(stripe, plans)| {
            tokio::spawn(billing::events_loop(db.clone(), stripe, plans, self.billing_poll, shutdown))
        });
        self.runner.run_loop(self.concurrency, self.poll).await?;
        for task in [sealer, purger, biller, Some(collector)].into_iter().flatten() {
            let _ = task.await;
        }
        if let Some(server) = metrics_server {
            server.stop(true).await;
        }
        tracing::info!("worker stopping");
        db.close().await.context("Failed to close the database pool")?;
        Ok(())
    }

    /// Syncs one tenant now (the `sync` command), unless another worker is syncing it.
    pub async fn sync_tenant(&self, tenant: TenantId, full: bool) -> anyhow::Result<Finished> {
        let runner = &self.runner;
        let claimed = schedule::claim_one(&runner.db, tenant, &runner.name, runner.settings.lease_secs)
            .await
            .context("Failed to claim the tenant")?
            .with_context(|| format!("tenant {tenant} does not exist or another worker is syncing it right now"))?;
        runner.sync_claimed(claimed, SyncTrigger::Cli, full).await
    }

    /// Drops the tenant's mirrored data (products, tests, bugs, cursors, gaps; sync runs stay as history) and syncs
    /// it again in full (the `reset` command).
    pub async fn reset_tenant(&self, tenant: TenantId) -> anyhow::Result<(mirror::RowCounts, Finished)> {
        let runner = &self.runner;
        let claimed = schedule::claim_one(&runner.db, tenant, &runner.name, runner.settings.lease_secs)
            .await
            .context("Failed to claim the tenant")?
            .with_context(|| format!("tenant {tenant} does not exist or another worker is syncing it right now"))?;
        let txn = TenantTxn::begin(&runner.db, tenant).await.context("Failed to begin the tenant transaction")?;
        let dropped = mirror::reset(&txn).await.context("Failed to drop the mirror")?;
        let event = audit::Event::new(audit::AuditAction::MirrorReset, audit::Actor::system()).on(tenant).metadata(
            serde_json::json!({
                "products": dropped.products, "tests": dropped.tests, "bugs": dropped.bugs, "via": "worker reset",
            }),
        );
        audit::record(&txn, event, &audit::Origin::default()).await.context("Failed to audit the reset")?;
        txn.commit().await.context("Failed to commit the reset")?;
        let finished = runner.sync_claimed(claimed, SyncTrigger::Cli, true).await?;
        Ok((dropped, finished))
    }
}

/// Seals new audit events into the tenants' hash chains every `every`, until `shutdown`. Several workers may run it
/// at once: sealers of one tenant take turns on its chain head.
pub async fn seal_loop(db: sea_orm::DatabaseConnection, every: Duration, shutdown: CancellationToken) {
    loop {
        match audit::chain::seal_pending(&db).await {
            Ok(done) if done.events > 0 => {
                tracing::debug!(tenants = done.tenants, events = done.events, "sealed audit events")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "Failed to seal audit events"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Purges the audit events older than their tenant's plan keeps them, and idempotency keys older than 24 hours, every
/// `every`, until `shutdown`.
pub async fn retention_loop(
    db: sea_orm::DatabaseConnection,
    retention: audit::chain::Retention,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        match audit::chain::purge_expired(&db, retention).await {
            Ok(purged) => {
                for (tenant, n) in purged.into_iter().filter(|(_, n)| *n > 0) {
                    tracing::info!(tenant_id = %tenant, purged = n, "purged expired audit events");
                }
            }
            Err(e) => tracing::warn!(error = %e, "Failed to purge expired audit events"),
        }
        match entity::rate_limits::purge_full(&db).await {
            Ok(purged) if purged > 0 => tracing::debug!(purged, "purged refilled rate-limit buckets"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "Failed to purge rate-limit buckets"),
        }
        // Idempotency keys older than 24 hours, in batches.
        loop {
            match entity::idempotency::purge_expired(&db, 10_000).await {
                Ok(purged) if purged >= 10_000 => continue,
                Ok(purged) => {
                    if purged > 0 {
                        tracing::info!(purged, "purged expired idempotency keys");
                    }
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Failed to purge expired idempotency keys");
                    break;
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
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
