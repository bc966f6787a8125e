//! The worker's own metrics port (`WORKER_METRICS_ADDR`): `GET /metrics` (Prometheus text, see [`common::metrics`])
//! and `GET /livez`. Besides what the sync, the TestIO client and the billing loop count as they go, a collector
//! reads every `WORKER_METRICS_INTERVAL_SECS` how fresh each tenant's mirror is and how far the audit chains are
//! sealed (through the definer functions of [`entity::ops`]) and sets the gauges:
//!
//! - `sync_lag_seconds{tenant_id}`: since the tenant's last successful sync;
//! - `sync_verified_through_age_seconds{tenant_id}`: since the time up to which its mirror is verified complete;
//! - `sync_overdue_seconds{tenant_id}`: how long it has been due without a worker taking it;
//! - `sync_tenants{state="connected"|"never_synced"}`;
//! - `audit_chain_unsealed_events`, `audit_chain_lag_seconds` (the age of the oldest unsealed event);
//! - the pool's `db_pool_connections{state}` and `db_pool_max_connections`.
//!
//! Every worker of a deployment reports the same database-wide gauges: aggregate them with `max` across instances.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

/// The bound metrics port, served once the worker runs.
pub struct MetricsListener {
    listener: TcpListener,
    port: u16,
}

impl MetricsListener {
    /// Binds `addr` (`host:port`; port 0 picks a free one).
    pub fn bind(addr: &str) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr).with_context(|| format!("Failed to bind WORKER_METRICS_ADDR {addr}"))?;
        let port = listener.local_addr().context("Failed to read the metrics address")?.port();
        Ok(Self { listener, port })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts serving; the handle stops it.
    pub fn serve(self) -> anyhow::Result<ServerHandle> {
        common::metrics::handle();
        let server = HttpServer::new(|| {
            App::new().route("/metrics", web::get().to(scrape)).route(
                "/livez",
                web::get().to(|| async { HttpResponse::Ok().json(serde_json::json!({"status": "ok"})) }),
            )
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(self.listener)
        .context("Failed to listen on the metrics port")?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        tracing::info!(port = self.port, "metrics listening");
        Ok(handle)
    }
}

async fn scrape() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(common::metrics::render())
}

/// Sets the freshness and audit-chain gauges every `every` until `shutdown`.
pub async fn collect_loop(db: DatabaseConnection, every: Duration, shutdown: CancellationToken) {
    loop {
        if let Err(e) = collect(&db).await {
            tracing::warn!(error = %format!("{e:#}"), "could not read the freshness metrics");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// One reading of the gauges (see the module documentation).
pub async fn collect(db: &DatabaseConnection) -> anyhow::Result<()> {
    common::metrics::pool_gauges(db);
    let now = Utc::now();
    let age = |at: DateTime<Utc>| (now - at).num_milliseconds().max(0) as f64 / 1000.0;
    let tenants = entity::ops::sync_freshness(db).await.context("Failed to read ops_sync_freshness")?;
    let mut never = 0_u32;
    for tenant in &tenants {
        let id = tenant.tenant_id.to_string();
        match tenant.last_success_at {
            Some(at) => metrics::gauge!("sync_lag_seconds", "tenant_id" => id.clone()).set(age(at)),
            None => never += 1,
        }
        if let Some(at) = tenant.verified_through {
            metrics::gauge!("sync_verified_through_age_seconds", "tenant_id" => id.clone()).set(age(at));
        }
        let overdue = tenant.due_at.map(age).unwrap_or(0.0);
        metrics::gauge!("sync_overdue_seconds", "tenant_id" => id).set(overdue);
    }
    metrics::gauge!("sync_tenants", "state" => "connected")
        .set(f64::from(u32::try_from(tenants.len()).unwrap_or(u32::MAX)));
    metrics::gauge!("sync_tenants", "state" => "never_synced").set(f64::from(never));
    let lag = entity::ops::audit_chain_lag(db).await.context("Failed to read ops_audit_chain_lag")?;
    metrics::gauge!("audit_chain_unsealed_events").set(lag.unsealed as f64);
    metrics::gauge!("audit_chain_lag_seconds").set(lag.oldest.map(age).unwrap_or(0.0));
    Ok(())
}
