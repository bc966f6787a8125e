//! The worker's metrics port: sync runs by outcome and duration, TestIO requests by status, and the gauges the
//! collector reads from the database (per-tenant lag and `verified_through` age, the audit chain's lag).

use std::time::{Duration, Instant};

use tests::metrics::{count, sample};
use tests::sync::SyncFixture;
use tests::testio_sim::Shape;
use tokio_util::sync::CancellationToken;

const TINY: Shape = Shape { products: 1, tests_per_product: 3, bugs_per_test: 1 };

#[tokio::test]
async fn the_worker_serves_its_sync_testio_and_freshness_metrics_on_its_own_port() {
    let f = SyncFixture::connected(TINY).await;
    let mut settings = f.worker_settings();
    settings.metrics_addr = "127.0.0.1:0".to_owned();
    settings.metrics_interval_secs = 1;
    // The chain is sealed by the test, so that the lag is seen first.
    settings.audit_seal_interval_ms = 0;
    let stop = CancellationToken::new();
    let worker = worker::Worker::build(&settings, stop.clone()).await.unwrap();
    let port = worker.metrics_port().expect("a metrics port");
    let handle = tokio::spawn(worker.run());
    let http = reqwest::Client::new();
    let scrape = || async {
        let response = http.get(format!("http://127.0.0.1:{port}/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    };
    let tenant = f.tenant.to_string();
    let lag = [("tenant_id", tenant.as_str())];

    // The connection's first run succeeds; the collector then reports the tenant's lag.
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = scrape().await;
        if sample(&text, "sync_lag_seconds", &lag).is_some() {
            break text;
        }
        assert!(Instant::now() < deadline, "no sync_lag_seconds for the tenant:\n{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(count(&text, "sync_runs_total", &[("outcome", "succeeded")]) >= 1.0);
    assert!(count(&text, "sync_run_duration_seconds_count", &[("outcome", "succeeded")]) >= 1.0);
    assert!(count(&text, "testio_requests_total", &[("status", "200")]) >= 3.0, "products, tests, bugs");
    let lag_seconds = sample(&text, "sync_lag_seconds", &lag).unwrap();
    assert!((0.0..60.0).contains(&lag_seconds), "{lag_seconds}");
    assert!(sample(&text, "sync_verified_through_age_seconds", &lag).is_some(), "a full first pass verifies");
    assert!(sample(&text, "sync_overdue_seconds", &lag).is_some());
    assert!(count(&text, "sync_tenants", &[("state", "connected")]) >= 1.0);
    assert!(sample(&text, "db_pool_connections", &[("state", "idle")]).is_some(), "the worker's pool");
    // Connecting and the run wrote audit events that nobody sealed: the chain lags.
    let unsealed = sample(&text, "audit_chain_unsealed_events", &[]).unwrap();
    assert!(unsealed >= 1.0, "{unsealed}");

    let runtime = f.app.db.connect_runtime().await;
    entity::audit::chain::seal_pending(&runtime).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape().await;
        if sample(&text, "audit_chain_unsealed_events", &[]) == Some(0.0) {
            assert_eq!(sample(&text, "audit_chain_lag_seconds", &[]), Some(0.0));
            break;
        }
        assert!(Instant::now() < deadline, "the sealed chain still lags:\n{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let live = http.get(format!("http://127.0.0.1:{port}/livez")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    stop.cancel();
    handle.await.unwrap().unwrap();
    assert!(
        http.get(format!("http://127.0.0.1:{port}/livez")).send().await.is_err(),
        "the port closes with the worker"
    );
}

#[tokio::test]
async fn a_metrics_address_that_cannot_be_bound_stops_the_worker_at_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let db = tests::TestDatabase::migrated().await;
    let mut settings = tests::sync::worker_settings(&db);
    settings.metrics_addr = taken.local_addr().unwrap().to_string();
    let error = worker::Worker::build(&settings, CancellationToken::new()).await.err().expect("built on a taken port");
    assert!(format!("{error:#}").contains("WORKER_METRICS_ADDR"), "{error:#}");
}
