//! The API and the worker refuse to start as a role that could escape row-level security.

use api::startup::Application;
use tests::TestDatabase;
use tests::app::test_settings;
use tests::database::{BYPASSRLS_PROBE_ROLE, url_for};

async fn api_start_error(db: &TestDatabase, url: String) -> String {
    let mut settings = test_settings(db);
    settings.database_url = url.into();
    match Application::build(settings).await {
        Ok(_) => panic!("the API started with an unsafe role"),
        Err(e) => format!("{e:#}"),
    }
}

async fn worker_start_error(db: &TestDatabase, url: String) -> String {
    let mut settings = tests::sync::worker_settings(db);
    settings.database_url = url.into();
    match worker::Worker::build(&settings, tokio_util::sync::CancellationToken::new()).await {
        Ok(_) => panic!("the worker started with an unsafe role"),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test]
async fn the_api_refuses_to_start_as_a_superuser() {
    let db = TestDatabase::migrated().await;
    let err = api_start_error(&db, db.superuser_url()).await;
    assert!(err.contains("refusing to start") && err.contains("is a superuser"), "{err}");
}

#[tokio::test]
async fn the_api_refuses_to_start_as_the_owner_of_the_tables() {
    let db = TestDatabase::migrated().await;
    let err = api_start_error(&db, db.owner_url()).await;
    assert!(err.contains("owns tables") && err.contains("tenant_users"), "{err}");
}

#[tokio::test]
async fn the_api_refuses_to_start_as_a_role_with_bypassrls() {
    let db = TestDatabase::migrated().await;
    let err = api_start_error(&db, url_for(BYPASSRLS_PROBE_ROLE, &db.name)).await;
    assert!(err.contains("has BYPASSRLS"), "{err}");
}

#[tokio::test]
async fn the_api_refuses_to_start_when_a_tenant_table_lacks_forced_rls() {
    use sea_orm::ConnectionTrait;
    let db = TestDatabase::migrated().await;
    let owner = db.connect_owner().await;
    owner.execute_unprepared("ALTER TABLE audit_logs NO FORCE ROW LEVEL SECURITY").await.unwrap();
    let err = api_start_error(&db, db.runtime_url()).await;
    assert!(err.contains("without forced row-level security (audit_logs)"), "{err}");
}

#[tokio::test]
async fn the_api_starts_as_the_runtime_role() {
    let db = TestDatabase::migrated().await;
    let app = Application::build(test_settings(&db)).await.expect("the runtime role must be accepted");
    assert!(app.port() > 0);
}

#[tokio::test]
async fn the_worker_refuses_the_same_unsafe_roles_and_accepts_the_runtime_role() {
    let db = TestDatabase::migrated().await;
    assert!(worker_start_error(&db, db.superuser_url()).await.contains("is a superuser"));
    assert!(worker_start_error(&db, db.owner_url()).await.contains("owns tables"));
    assert!(worker_start_error(&db, url_for(BYPASSRLS_PROBE_ROLE, &db.name)).await.contains("has BYPASSRLS"));

    let stop = tokio_util::sync::CancellationToken::new();
    let worker = worker::Worker::build(&tests::sync::worker_settings(&db), stop.clone())
        .await
        .expect("the runtime role must be accepted");
    stop.cancel();
    worker.run().await.expect("the worker stops cleanly when cancelled");
}

#[tokio::test]
async fn the_api_refuses_to_start_when_the_role_may_create_temporary_tables() {
    use sea_orm::ConnectionTrait;
    let db = TestDatabase::migrated().await;
    let superuser = db.superuser().await;
    superuser.execute_unprepared(&format!("GRANT TEMPORARY ON DATABASE \"{}\" TO PUBLIC", db.name)).await.unwrap();
    let err = api_start_error(&db, db.runtime_url()).await;
    assert!(err.contains("refusing to start") && err.contains("may create temporary tables"), "{err}");
}
