//! Zero-config start: a TestIO token alone gives a tenant, an admin who can sign in, and a syncing connection.

use serde_json::{Value, json};
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
    let login = app.post("/v1/auth/login", json!({ "email": created.email, "password": created.password })).await;
    assert_eq!(login.status(), 200);
    let access = login.json::<Value>().await.unwrap()["tokens"]["access_token"].as_str().unwrap().to_owned();
    let connection: Value = app
        .get_as(&format!("/v1/tenants/{}/testio-connection", created.tenant_id), &access)
        .await
        .json()
        .await
        .unwrap();
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
    assert!(app.audit_actions(created.tenant_id.0).await.contains(&("bootstrap.create".into(), "success".into())));
}

#[tokio::test]
async fn a_refused_token_stops_the_bootstrap_and_creates_nothing() {
    let sim = Simulator::start().await;
    let app = spawn_app_with(|s| s.testio_allowed_base_urls = sim.base_url.clone()).await;
    let mut settings = tests::app::test_settings(&app.db);
    settings.testio_token = Some("unknown-token".into());
    settings.testio_base_url = sim.base_url.clone();
    settings.testio_allowed_base_urls = sim.base_url.clone();
    let err = api::bootstrap::run(&settings).await.err().expect("a refused token must fail");
    assert!(format!("{err:#}").contains("401"), "{err:#}");
    let db = app.db.connect_superuser().await;
    assert!(!entity::users::any(&db).await.unwrap());
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
    let db = app.db.connect_superuser().await;
    assert!(!entity::users::any(&db).await.unwrap());
}
