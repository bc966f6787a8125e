//! Prometheus metrics of both binaries, through the `metrics` facade and `metrics-exporter-prometheus`.
//!
//! One recorder per process, installed on first use ([`handle`]); `/metrics` of the API and of the worker's metrics
//! port render it ([`render`]). Histograms of durations (every metric ending in `_seconds`) have fixed buckets from
//! 1 ms to 5 min, so that `histogram_quantile` works across replicas. Gauges not set for [`GAUGE_IDLE`] are dropped
//! from the output: a deleted tenant's lag does not linger.
//!
//! The names are listed in the README ("Metrics") and drawn by `docs/grafana-dashboard.json`.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;

/// Buckets of every `*_seconds` histogram.
pub const DURATION_BUCKETS: [f64; 16] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// How long a gauge that is no longer set stays in the output.
pub const GAUGE_IDLE: Duration = Duration::from_secs(600);

/// How often the histograms' buffers are drained.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed as the global one on first use. (Should another recorder be installed already,
/// as when tests run several components in one process, this one still renders what it was given.)
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new().idle_timeout(MetricKindMask::GAUGE, Some(GAUGE_IDLE));
        let builder = match builder.set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &DURATION_BUCKETS) {
            Ok(builder) => builder,
            Err(e) => {
                tracing::warn!(error = %e, "histogram buckets refused; durations are summaries");
                PrometheusBuilder::new()
            }
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was installed already; this one stays empty");
        }
        // Histograms buffer their samples until drained: drained here every few seconds, whether anyone scrapes or
        // not, so the buffers cannot grow between scrapes.
        let drained = handle.clone();
        let spawned = std::thread::Builder::new().name("metrics-upkeep".to_owned()).spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                drained.run_upkeep();
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "the metrics upkeep thread did not start; histograms drain on scrapes only");
        }
        handle
    })
}

/// The Prometheus text exposition of everything recorded so far (after draining the histograms' buffers).
pub fn render() -> String {
    let handle = handle();
    handle.run_upkeep();
    handle.render()
}

/// `db_pool_connections{state="in_use"|"idle"}` and `db_pool_max_connections`, as the pool is now.
pub fn pool_gauges(db: &sea_orm::DatabaseConnection) {
    if db.get_database_backend() != sea_orm::DbBackend::Postgres {
        return;
    }
    let pool = db.get_postgres_connection_pool();
    let (size, idle) = (pool.size(), u32::try_from(pool.num_idle()).unwrap_or(u32::MAX));
    metrics::gauge!("db_pool_connections", "state" => "in_use").set(f64::from(size.saturating_sub(idle)));
    metrics::gauge!("db_pool_connections", "state" => "idle").set(f64::from(idle));
    metrics::gauge!("db_pool_max_connections").set(f64::from(pool.options().get_max_connections()));
}
