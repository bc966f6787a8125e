//! `/v1/tenants/{tenant_id}/testio-connection`: checked before saved, sealed at rest, never shown, owner/admin only.

use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use tests::sync::SyncFixture;
use tests::testio_sim::Shape;

const TINY: Shape = Shape { products: 1, tests_per_product: 2, bugs_per_test: 1 };

#[tokio::test]
async fn a_saved_connection_shows_only_the_last_four_characters_and_is_sealed_at_rest() {
    let f = SyncFixture::connected(TINY).await;
    let response = f.app.get_connection(&f.owner, f.tenant).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(!text.contains(&f.token), "the token leaked: {text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["token_last4"], "0001");
    assert_eq!(body["status"], "active");
    assert_eq!(body["base_url"], f.sim.base_url);
    assert_eq!(body["last_run"]["status"], "queued");
    assert!(body["next_sync_at"].is_string());

    let db = f.app.db.superuser().await;
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT encode(token_ciphertext, 'escape') AS c, token_key_id FROM testio_connections",
        ))
        .await
        .unwrap()
        .unwrap();
    assert!(!row.try_get::<String>("", "c").unwrap().contains("token-acme"), "stored in clear");
    assert_eq!(row.try_get::<String>("", "token_key_id").unwrap(), "test-k1");
    let audit = f.app.audit_log(f.tenant).await;
    assert!(audit.has("testio_connection.create", "success"), "{audit:?}");
}

#[tokio::test]
async fn a_token_testio_refuses_is_not_saved() {
    let f = SyncFixture::connected(TINY).await;
    let before: Value = f.app.get_connection(&f.owner, f.tenant).await.json().await.unwrap();
    let response = f.connect(f.tenant, "not-a-known-token").await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "validation_failed");
    assert_eq!(body["errors"][0]["field"], "token");
    let after: Value = f.app.get_connection(&f.owner, f.tenant).await.json().await.unwrap();
    assert_eq!(before["updated_at"], after["updated_at"]);
    assert_eq!(after["token_last4"], "0001");
}

#[tokio::test]
async fn testio_being_down_gives_502_and_changes_nothing() {
    let dead = "http://127.0.0.1:9/customer/v2/";
    let f = SyncFixture::connected_allowing(TINY, &[dead]).await;
    let response = f.app.put_connection(&f.owner, f.tenant, json!({ "token": f.token, "base_url": dead })).await;
    assert_eq!(response.status(), 502);
    assert_eq!(response.json::<Value>().await.unwrap()["code"], "upstream_unavailable");
    let after: Value = f.app.get_connection(&f.owner, f.tenant).await.json().await.unwrap();
    assert_eq!(after["base_url"], f.sim.base_url);
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_named() {
    let f = SyncFixture::connected(TINY).await;
    let cases = [
        (json!({ "token": "short" }), "token"),
        (json!({ "token": "has spaces in it" }), "token"),
        (json!({ "token": f.token, "base_url": "https://internal.example/" }), "base_url"),
        (json!({ "token": f.token, "base_url": "file:///etc/passwd" }), "base_url"),
        (json!({ "token": f.token, "base_url": "http://u:p@127.0.0.1:1/" }), "base_url"),
    ];
    for (body, field) in cases {
        let response = f.app.put_connection(&f.owner, f.tenant, body.clone()).await;
        assert_eq!(response.status(), 422, "{body}");
        assert_eq!(response.json::<Value>().await.unwrap()["errors"][0]["field"], field, "{body}");
    }
    let missing = f.app.put_connection(&f.owner, f.tenant, json!({})).await;
    assert_eq!(missing.status(), 422, "a missing token is a validation error");
}

#[tokio::test]
async fn only_owners_and_admins_manage_the_connection() {
    let f = SyncFixture::connected(TINY).await;
    let member = f.app.add_member(&f.owner, f.tenant, "member@example.com", "member").await;
    let admin = f.app.add_member(&f.owner, f.tenant, "admin@example.com", "admin").await;
    assert_eq!(f.app.get_connection(&member, f.tenant).await.status(), 403);
    let put = f.app.put_connection(&member, f.tenant, json!({ "token": f.token })).await;
    assert_eq!(put.status(), 403);
    assert_eq!(f.app.get_connection(&admin, f.tenant).await.status(), 200);
}

#[tokio::test]
async fn deleting_the_connection_stops_syncing_and_keeps_the_mirror() {
    let f = SyncFixture::connected(TINY).await;
    f.sync(false).await;
    let deleted = f.app.delete_connection(&f.owner, f.tenant).await;
    assert_eq!(deleted.status(), 204);
    assert_eq!(f.app.get_connection(&f.owner, f.tenant).await.status(), 404);
    assert_eq!(f.app.delete_connection(&f.owner, f.tenant).await.status(), 404);
    let due = entity::sync::schedule::due_at(f.app.db.superuser().await, entity::TenantId(f.tenant)).await.unwrap();
    assert_eq!(due, None, "taken off the schedule");
    assert_eq!(f.mirror().await.tests.len(), 2);
    let requested = f.app.post_sync_run(&f.owner, f.tenant, json!({})).await;
    assert_eq!(requested.status(), 409);
    assert!(f.app.audit_log(f.tenant).await.has("testio_connection.delete", "success"));
}
