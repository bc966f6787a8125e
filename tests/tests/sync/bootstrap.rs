//! Zero-config start: a TestIO token alone gives a tenant, an admin who can sign in, and a syncing connection.

use serde_json::Value;
use tests::spawn_app_with;
use tests::sync::{Snapshot, assert_same, build_worker, worker_settings};
use tests::testio_sim::{Account, Shape, Simulator};

#[tokio::test]
async fn a_token_alone_bootstraps_a_tenant_an_admin_and_a_first_sync_once() {
    let sim = Simulator::start().await;
    let app = spawn_app_with(|s| s.testio_allowed_base_urls = sim.base_url.clone()).await;
    sim.add_account(
        "zero-config-token",
        Account::generate(3, Shape { products: 2, tests_per_product: 5, bugs_per_test: 1 }),
    );
    let mut settings = tests::app::test_settings(&app.db);
    settings.testio_token = Some("zero-config-token".into());
    settings.testio_base_url = sim.base_url.clone();
    settings.testio_allowed_base_urls = sim.base_url.clone();

    let created = api::bootstrap::run(&settings).await.unwrap().expect("nothing was bootstrapped");
    let login = app.login(&created.email, &created.password).await;
    let access = login["tokens"]["access_token"].as_str().unwrap().to_owned();
    let connection: Value = app.get_connection(&access, created.tenant_id.0).await.json().await.unwrap();
    assert_eq!(connection["token_last4"], "oken");
    assert_eq!(connection["last_run"]["status"], "queued");

    let mut worker_settings = worker_settings(&app.db);
    worker_settings.allowed_base_urls = sim.base_url.clone();
    let worker = build_worker(&worker_settings).await;
    let finished = worker.sync_tenant(created.tenant_id, false).await.unwrap();
    assert_eq!(finished.run.unwrap().status, entity::sync_runs::SyncStatus::Succeeded);
    let mut account = Account::default();
    sim.modify("zero-config-token", |a| account = a.clone());
    assert_same(&Snapshot::of_mirror(&app.db, created.tenant_id.0).await, &Snapshot::of_account(&account));

    assert!(api::bootstrap::run(&settings).await.unwrap().is_none(), "a second start must not bootstrap again");
    assert!(app.audit_log(created.tenant_id.0).await.has("bootstrap.create", "success"));
}

#[tokio::test]
async fn a_refused_token_stops_the_bootstrap_and_creates_nothing() {
    let sim = Simulator::start().await;
    let app = spawn_app_with(|s| s.testio_allowed_base_urls = sim.base_url.clone()).await;
    let mut settings = tests::app::test_settings(&app.db);
    settings.testio_token = Some("unknown-token".into());
    settings.testio_base_url = sim.base_url.clone();
    settings.testio_allowed_base_urls = sim.base_url.clone();
    let err = format!("{:#}", api::bootstrap::run(&settings).await.err().expect("a refused token must fail"));
    let refused = format!("TESTIO_TOKEN was not accepted by {}: TestIO refused the token (401)", sim.base_url);
    assert!(err.contains(&refused), "{err}");
    assert_eq!(sim.requests(), 1, "one check of the token, nothing more");
    assert_nothing_was_created(&app).await;
}

/// No user, no tenant but the platform's, no connection, no audit row: a failed bootstrap leaves no trace.
async fn assert_nothing_was_created(app: &tests::TestApp) {
    let db = &app.db;
    assert!(!entity::users::any(db.superuser().await).await.unwrap());
    assert_eq!(db.count("SELECT count(*) FROM users").await, 0);
    assert_eq!(db.count("SELECT count(*) FROM tenants WHERE id <> '00000000-0000-0000-0000-000000000000'").await, 0);
    assert_eq!(db.count("SELECT count(*) FROM testio_connections").await, 0);
    assert_eq!(db.count("SELECT count(*) FROM sync_runs").await, 0);
    assert_eq!(db.count("SELECT count(*) FROM audit_logs").await, 0);
}

#[tokio::test]
async fn a_base_url_outside_the_allowlist_stops_the_bootstrap_before_the_token_is_sent() {
    let sim = Simulator::start().await;
    sim.add_account(
        "zero-config-token",
        Account::generate(3, Shape { products: 1, tests_per_product: 1, bugs_per_test: 0 }),
    );
    let app = spawn_app_with(|_| {}).await;
    let mut settings = tests::app::test_settings(&app.db);
    settings.testio_token = Some("zero-config-token".into());
    settings.testio_base_url = sim.base_url.clone();
    settings.testio_allowed_base_urls = "https://api.test.io/".into();
    let err = api::bootstrap::run(&settings).await.err().expect("a base URL outside the allowlist must fail");
    assert!(format!("{err:#}").contains("TESTIO_ALLOWED_BASE_URLS"), "{err:#}");
    assert_eq!(sim.requests(), 0, "the token went nowhere");
    assert_nothing_was_created(&app).await;
}
