use std::time::{Duration, Instant};

use serde_json::Value;
use tests::proxy::TcpProxy;
use tests::{spawn_app, spawn_app_with};

#[tokio::test]
async fn livez_answers_ok() {
    let app = spawn_app().await;
    let response = app.get("/livez").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "ok");
}

#[tokio::test]
async fn readyz_reports_every_check_ok_on_a_migrated_database() {
    let app = spawn_app().await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["migrations"], "ok");
    assert_eq!(body["checks"]["role"], "ok");
}

#[tokio::test]
async fn readyz_fails_while_a_migration_is_pending() {
    use migration::MigratorTrait;
    let app = spawn_app().await;
    let owner = app.db.connect_owner().await;
    migration::Migrator::down(&owner, Some(1)).await.unwrap();

    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "service_unavailable");
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["migrations"], "1 pending");
}

#[tokio::test]
async fn readyz_fails_during_a_database_outage_and_recovers_without_a_restart() {
    use secrecy::ExposeSecret;
    let proxy = TcpProxy::to_postgres().await;
    let app = spawn_app_with(|s| s.database_url = proxy.route(s.database_url.expose_secret()).into()).await;
    assert_eq!(app.get("/readyz").await.status(), 200);

    proxy.cut();
    let started = Instant::now();
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    assert_eq!(response.headers()["retry-after"], "5");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "service_unavailable");
    assert_eq!(body["checks"]["database"], "unreachable");
    assert!(started.elapsed() < Duration::from_secs(5), "an outage must be reported quickly");
    // Liveness does not depend on the database.
    assert_eq!(app.get("/livez").await.status(), 200);

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if app.get("/readyz").await.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the API did not recover after the database came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_a_sane_client_id_is_echoed() {
    let app = spawn_app().await;
    let generated = app.get("/livez").await;
    let id = generated.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "generated ids are UUIDs, got {id}");

    let echoed = app.client.get(app.url("/livez")).header("x-request-id", "client-abc.123").send().await.unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "client-abc.123");

    for hostile in ["has spaces", &"x".repeat(200), "quote\"d"] {
        let replaced = app.client.get(app.url("/livez")).header("x-request-id", hostile).send().await.unwrap();
        let id = replaced.headers()["x-request-id"].to_str().unwrap();
        assert_ne!(id, hostile);
        assert!(uuid::Uuid::parse_str(id).is_ok());
    }
}
