//! A worker process killed mid-page (SIGKILL) leaves no partial page and no duplicate, and the next run, by another
//! worker once the lease has expired, completes the mirror. A worker told to stop (SIGTERM) records an interrupted run
//! and hands the tenant back as due at once.
//!
//! The worker runs in a real child process: this test binary re-executed to run only [`child_worker_process`].

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sea_orm::ConnectionTrait;
use tests::sync::{SyncFixture, assert_same};
use tests::testio_sim::{Faults, Shape};

const CHILD_MODE: &str = "TESTIO_HUB_CHILD_WORKER";

/// Not a test of its own: the body of the child process (`sync` syncs one tenant, `loop` runs the worker loop until
/// a signal). Skipped unless the parent test sets the environment.
#[tokio::test]
#[ignore = "run as a child process by the crash tests"]
async fn child_worker_process() {
    let Ok(mode) = std::env::var(CHILD_MODE) else { return };
    let mut settings = tests::sync::worker_settings_for(&std::env::var("CHILD_DATABASE_URL").unwrap());
    settings.allowed_base_urls = std::env::var("CHILD_ALLOWED_BASE_URLS").unwrap();
    settings.name = Some(format!("child-{mode}"));
    settings.lease_secs = 2;
    let shutdown = worker::shutdown_on_signals().unwrap();
    let worker = worker::Worker::build(&settings, shutdown).await.unwrap();
    match mode.as_str() {
        "sync" => {
            let tenant: uuid::Uuid = std::env::var("CHILD_TENANT").unwrap().parse().unwrap();
            worker.sync_tenant(entity::TenantId(tenant), false).await.unwrap();
        }
        _ => worker.run().await.unwrap(),
    }
}

fn spawn_child(f: &SyncFixture, mode: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["crash::child_worker_process", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_MODE, mode)
        .env("CHILD_DATABASE_URL", f.app.db.runtime_url())
        .env("CHILD_ALLOWED_BASE_URLS", &f.allowed_base_urls)
        .env("CHILD_TENANT", f.tenant.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn scalar(f: &SyncFixture, sql: &str) -> i64 {
    let db = f.app.db.connect_superuser().await;
    let row = db.query_one_raw(sea_orm::Statement::from_string(sea_orm::DbBackend::Postgres, sql)).await.unwrap();
    row.unwrap().try_get::<i64>("", "n").unwrap()
}

async fn wait_until(f: &SyncFixture, sql: &str, at_least: i64) {
    for _ in 0..600 {
        if scalar(f, sql).await >= at_least {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {sql} >= {at_least}");
}

#[tokio::test]
async fn a_worker_killed_mid_page_loses_nothing_committed_and_the_next_run_completes_the_mirror() {
    let f = SyncFixture::connected(Shape { products: 1, tests_per_product: 400, bugs_per_test: 2 }).await;
    // Slow pages: the kill lands while a page is being read or written.
    f.sim.set_faults(Faults { delay: Some(Duration::from_millis(40)), ..Default::default() });
    let mut child = spawn_child(&f, "sync");
    wait_until(&f, "SELECT count(*) AS n FROM testio_tests", 100).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let stored = scalar(&f, "SELECT count(*) AS n FROM testio_tests").await;
    assert!(stored < 400, "the kill came too late to prove anything");
    assert_eq!(stored % 50, 0, "a partial page of the first scan was committed ({stored} tests)");
    assert_eq!(scalar(&f, "SELECT count(*) AS n FROM sync_runs WHERE status = 'running'").await, 1);

    // The dead worker's lease expires; another worker takes the tenant over and finishes.
    f.sim.set_faults(Faults::default());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let run = f.sync(false).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_same(&f.mirror().await, &f.truth());
    assert_eq!(scalar(&f, "SELECT count(*) AS n FROM sync_runs WHERE status = 'interrupted'").await, 1);
    assert_eq!(
        scalar(&f, "SELECT count(*) - count(DISTINCT (tenant_id, testio_id)) AS n FROM testio_tests").await,
        0,
        "duplicates"
    );
}

#[tokio::test]
async fn sigterm_stops_a_sync_between_requests_and_hands_the_tenant_back() {
    let f = SyncFixture::connected(Shape { products: 1, tests_per_product: 400, bugs_per_test: 1 }).await;
    f.sim.set_faults(Faults { delay: Some(Duration::from_millis(40)), ..Default::default() });
    let mut child = spawn_child(&f, "loop");
    wait_until(&f, "SELECT count(*) AS n FROM testio_tests", 50).await;
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert!(status.success(), "the worker did not exit cleanly: {status:?}");

    assert_eq!(scalar(&f, "SELECT count(*) AS n FROM sync_runs WHERE status = 'interrupted'").await, 1);
    let free_and_due = format!(
        "SELECT count(*) AS n FROM tenants WHERE id = '{}' AND sync_lease_owner IS NULL AND sync_due_at <= now()",
        f.tenant
    );
    assert_eq!(scalar(&f, &free_and_due).await, 1, "the tenant must be released and due at once");
    f.sim.set_faults(Faults::default());
    let run = f.sync(false).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_same(&f.mirror().await, &f.truth());
}

#[tokio::test]
async fn a_database_outage_mid_sync_keeps_what_was_committed_and_the_next_run_completes() {
    use secrecy::ExposeSecret;
    let f = SyncFixture::connected(Shape { products: 1, tests_per_product: 400, bugs_per_test: 1 }).await;
    f.sim.set_faults(Faults { delay: Some(Duration::from_millis(30)), ..Default::default() });
    let proxy = tests::proxy::TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let mut settings = f.worker_settings();
    let mut via_proxy = url::Url::parse(settings.database_url.expose_secret()).unwrap();
    via_proxy.set_port(Some(proxy.port)).unwrap();
    settings.database_url = via_proxy.to_string().into();
    settings.lease_secs = 2;
    let worker = tests::sync::build_worker(&settings).await;
    let tenant = entity::TenantId(f.tenant);
    let sync = tokio::spawn(async move { worker.sync_tenant(tenant, false).await });
    wait_until(&f, "SELECT count(*) AS n FROM testio_tests", 100).await;
    proxy.cut();
    let outcome = sync.await.unwrap();
    assert!(outcome.is_err(), "a sync that lost its database must not report success");
    let kept = scalar(&f, "SELECT count(*) AS n FROM testio_tests").await;
    assert!(kept >= 100 && kept % 50 == 0, "committed pages are kept whole: {kept}");

    proxy.restore();
    f.sim.set_faults(Faults::default());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let run = f.sync(false).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_same(&f.mirror().await, &f.truth());
}
