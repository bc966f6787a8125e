//! A worker process killed mid-page (SIGKILL) leaves no partial page and no duplicate, and the next run, by another
//! worker once the lease has expired, completes the mirror. A worker told to stop (SIGTERM) records an interrupted run
//! and hands the tenant back as due at once.
//!
//! The worker runs in a real child process: this test binary re-executed to run only [`child_worker_process`].

use std::process::{Child, Command, Stdio};
use std::time::Duration;

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

/// Faults under which a sync of the fixture's account (one product of 400 tests, pages of 50) stores at most its first
/// four pages: every answer comes `delay` late, and the list answers 500 from offset 200 on, so the page there is
/// split down to single items (a hundred slow requests per page) before anything after it could be stored. The run
/// cannot finish before the test has acted on it.
fn stalls_after_four_pages(f: &SyncFixture, delay: Duration) -> Faults {
    let product = f.sim.read(&f.token, |a| *a.products.keys().next().unwrap()).unwrap();
    Faults {
        delay: Some(delay),
        failing_test_offsets: (200..400).map(|offset| (product, offset)).collect(),
        ..Default::default()
    }
}

/// Every request from now on is held for an hour: whatever the worker does next, it waits for an answer.
fn hold_every_answer() -> Faults {
    Faults { delay: Some(Duration::from_secs(3600)), ..Default::default() }
}

const STORED_TESTS: &str = "SELECT count(*) FROM testio_tests";

/// Waits (on the database's clock, which leases are compared with) until nobody holds the fixture tenant's lease.
async fn wait_for_the_lease_to_expire(f: &SyncFixture) {
    let expired = format!(
        "SELECT count(*) FROM tenants WHERE id = '{}'
            AND (sync_lease_expires_at IS NULL OR sync_lease_expires_at < now())",
        f.tenant
    );
    f.app.db.wait_until_count(&expired, 1).await;
}

#[tokio::test]
async fn a_worker_killed_mid_page_loses_nothing_committed_and_the_next_run_completes_the_mirror() {
    let f = SyncFixture::connected(Shape { products: 1, tests_per_product: 400, bugs_per_test: 2 }).await;
    let db = &f.app.db;
    // Slow pages: the kill lands while a page is being read or written, and before the fifth page.
    f.sim.set_faults(stalls_after_four_pages(&f, Duration::from_millis(40)));
    let mut child = spawn_child(&f, "sync");
    db.wait_until_count(STORED_TESTS, 100).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let stored = db.count(STORED_TESTS).await;
    assert!((100..=200).contains(&stored), "the kill landed in the first four pages ({stored} tests)");
    assert_eq!(stored % 50, 0, "a partial page of the first scan was committed ({stored} tests)");
    assert_eq!(db.count("SELECT count(*) FROM sync_runs WHERE status = 'running'").await, 1);

    // The dead worker's lease expires; another worker takes the tenant over and finishes.
    f.sim.set_faults(Faults::default());
    wait_for_the_lease_to_expire(&f).await;
    let run = f.sync(false).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_same(&f.mirror().await, &f.truth());
    assert_eq!(db.count("SELECT count(*) FROM sync_runs WHERE status = 'interrupted'").await, 1);
    assert_eq!(
        db.count("SELECT count(*) - count(DISTINCT (tenant_id, testio_id)) FROM testio_tests").await,
        0,
        "duplicates"
    );
}

#[tokio::test]
async fn sigterm_stops_a_sync_between_requests_and_hands_the_tenant_back() {
    let f = SyncFixture::connected(Shape { products: 1, tests_per_product: 400, bugs_per_test: 1 }).await;
    let db = &f.app.db;
    f.sim.set_faults(stalls_after_four_pages(&f, Duration::from_millis(40)));
    let mut child = spawn_child(&f, "loop");
    db.wait_until_count(STORED_TESTS, 50).await;
    // The sync is still under way when the signal comes: its next request is never answered.
    f.sim.set_faults(hold_every_answer());
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert!(status.success(), "the worker did not exit cleanly: {status:?}");

    assert_eq!(db.count("SELECT count(*) FROM sync_runs WHERE status = 'interrupted'").await, 1);
    let free_and_due = format!(
        "SELECT count(*) FROM tenants WHERE id = '{}' AND sync_lease_owner IS NULL AND sync_due_at <= now()",
        f.tenant
    );
    assert_eq!(db.count(&free_and_due).await, 1, "the tenant must be released and due at once");
    f.sim.set_faults(Faults::default());
    let run = f.sync(false).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_same(&f.mirror().await, &f.truth());
}

#[tokio::test]
async fn a_database_outage_mid_sync_keeps_what_was_committed_and_the_next_run_completes() {
    let f = SyncFixture::connected(Shape { products: 1, tests_per_product: 400, bugs_per_test: 1 }).await;
    let db = &f.app.db;
    // The sync cannot get past its fourth page before the outage, so the outage is sure to cut it short.
    f.sim.set_faults(stalls_after_four_pages(&f, Duration::from_millis(30)));
    let proxy = tests::proxy::TcpProxy::to_postgres().await;
    let mut settings = f.worker_settings();
    settings.database_url = proxy.route(&f.app.db.runtime_url()).into();
    settings.lease_secs = 2;
    let worker = tests::sync::build_worker(&settings).await;
    let tenant = entity::TenantId(f.tenant);
    let sync = tokio::spawn(async move { worker.sync_tenant(tenant, false).await });
    db.wait_until_count(STORED_TESTS, 100).await;
    proxy.cut();
    let outcome = sync.await.unwrap();
    assert!(outcome.is_err(), "a sync that lost its database must not report success");
    let kept = db.count(STORED_TESTS).await;
    assert!((100..=200).contains(&kept) && kept % 50 == 0, "committed pages are kept whole: {kept}");

    proxy.restore();
    f.sim.set_faults(Faults::default());
    wait_for_the_lease_to_expire(&f).await;
    let run = f.sync(false).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_same(&f.mirror().await, &f.truth());
}
