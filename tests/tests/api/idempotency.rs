//! `Idempotency-Key` on the POST routes that create things: a retry gets the first answer and creates nothing, another
//! request under the same key is 422, duplicates sent at once wait for the first, a failure is not remembered, keys
//! are per caller and expire after 24 hours, and the stored answer (an API key's secret) is not readable in the
//! database.

use std::collections::{HashMap, HashSet};

use rand::{RngExt, SeedableRng};
use reqwest::Method;
use serde_json::{Value, json};
use tests::{TestApp, spawn_app, spawn_app_with};

/// `POST path` as `token` with `body` and, if given, an `Idempotency-Key`: (status, replayed, body).
async fn post(app: &TestApp, token: &str, path: &str, key: Option<&str>, body: Value) -> (u16, bool, Value) {
    let mut request = app.client.request(Method::POST, app.url(path)).bearer_auth(token).json(&body);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let replayed = response.headers().get("idempotency-replayed").is_some_and(|v| v == "true");
    (status, replayed, response.json().await.unwrap_or(Value::Null))
}

fn keys_path(tenant: uuid::Uuid) -> String {
    format!("/v1/tenants/{tenant}/api-keys")
}

#[tokio::test]
async fn a_retry_gets_the_first_answer_and_creates_nothing_and_another_request_under_the_key_is_422() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;
    let path = keys_path(tenant);
    let body = json!({"name": "CI", "role": "viewer"});

    let (status, replayed, first) = post(&app, &ann.access_token, &path, Some("key-1"), body.clone()).await;
    assert_eq!((status, replayed), (201, false));
    // The same request, members in another order: the same answer, secret included, and nothing new.
    let reordered = json!({"role": "viewer", "name": "CI"});
    let (status, replayed, again) = post(&app, &ann.access_token, &path, Some("key-1"), reordered).await;
    assert_eq!((status, replayed), (201, true));
    assert_eq!(again, first);
    let keys = format!("SELECT count(*) FROM api_keys WHERE tenant_id = '{tenant}'");
    assert_eq!(app.db.count(&keys).await, 1);
    assert_eq!(app.db.count("SELECT count(*) FROM audit_logs WHERE action = 'api_key.create'").await, 1);

    // Another body under the same key: 422, nothing created.
    let (status, _, problem) =
        post(&app, &ann.access_token, &path, Some("key-1"), json!({"name": "CD", "role": "viewer"})).await;
    assert_eq!(status, 422);
    assert_eq!(problem["code"], "idempotency_key_reused");
    assert_eq!(app.db.count(&keys).await, 1);
    // The key on another route is another request too.
    let other = post(
        &app,
        &ann.access_token,
        &format!("/v1/tenants/{tenant}/invitations"),
        Some("key-1"),
        json!({"email": "bob@example.com", "role": "member"}),
    )
    .await;
    assert_eq!(other.0, 422);
    // Without a key, every request creates.
    for _ in 0..2 {
        assert_eq!(post(&app, &ann.access_token, &path, None, body.clone()).await.0, 201);
    }
    assert_eq!(app.db.count(&keys).await, 3);

    // The secret shown once is not stored in clear, nor is the key itself.
    let secret = first["secret"].as_str().unwrap();
    let stored = app
        .db
        .count(&format!(
            "SELECT count(*) FROM idempotency_keys WHERE position(convert_to('{secret}', 'UTF8') in body) > 0
                OR key = 'key-1'"
        ))
        .await;
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn duplicates_sent_at_once_wait_for_the_first_and_get_its_answer() {
    let app = spawn_app_with(|s| s.database_max_connections = 10).await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;
    let path = format!("/v1/tenants/{tenant}/invitations");
    let body = json!({"email": "bob@example.com", "role": "member"});
    let answers = futures_util::future::join_all(
        (0..8).map(|_| post(&app, &ann.access_token, &path, Some("invite-bob"), body.clone())),
    )
    .await;
    let created: Vec<&(u16, bool, Value)> = answers.iter().filter(|a| a.0 == 201).collect();
    assert_eq!(created.len(), 8, "{answers:?}");
    assert_eq!(created.iter().filter(|a| !a.1).count(), 1, "exactly one did the work");
    let first = &created[0].2;
    assert!(created.iter().all(|a| &a.2 == first), "every answer is the first's");
    assert_eq!(app.db.count("SELECT count(*) FROM invitations").await, 1);
    assert_eq!(app.db.count("SELECT count(*) FROM audit_logs WHERE action = 'invitation.create'").await, 1);
    assert_eq!(app.outbox.to("bob@example.com").len(), 1, "one mail");
}

#[tokio::test]
async fn a_failed_request_is_not_remembered_and_keys_are_per_caller() {
    let app = spawn_app_with(|s| {
        tests::app::unlimited_plans(&mut s.plans);
        s.plans.free_api_keys = 1;
    })
    .await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;
    let path = keys_path(tenant);
    let body = json!({"name": "CI", "role": "viewer"});
    let blocker = app.create_api_key(&ann, tenant, "first", "viewer").await;
    // Over the plan's limit: 402, and the key is not spent on it.
    assert_eq!(post(&app, &ann.access_token, &path, Some("k"), body.clone()).await.0, 402);
    let revoked = app.delete_api_key(&ann, tenant, blocker["api_key"]["id"].as_str().unwrap()).await;
    assert_eq!(revoked.status(), 204);
    let (status, replayed, _) = post(&app, &ann.access_token, &path, Some("k"), body.clone()).await;
    assert_eq!((status, replayed), (201, false), "the retry ran anew");

    // The same key from another member is that member's own.
    let bob = app.add_member(&ann, tenant, "bob@example.com", "admin").await;
    let revoke_all = app.db.superuser().await;
    sea_orm::ConnectionTrait::execute_unprepared(revoke_all, "UPDATE api_keys SET revoked_at = now()").await.unwrap();
    let (status, replayed, _) = post(&app, &bob.access_token, &path, Some("k"), body).await;
    assert_eq!((status, replayed), (201, false));
}

#[tokio::test]
async fn a_tenant_created_with_a_key_is_found_again_by_the_retry() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let body = json!({"name": "Acme", "slug": "acme"});
    let (status, _, first) = post(&app, &ann.access_token, "/v1/tenants", Some("t-1"), body.clone()).await;
    assert_eq!(status, 201);
    let (status, replayed, again) = post(&app, &ann.access_token, "/v1/tenants", Some("t-1"), body).await;
    assert_eq!((status, replayed), (201, true));
    assert_eq!(again, first);
    assert_eq!(app.db.count("SELECT count(*) FROM tenants WHERE slug = 'acme'").await, 1);
    let other = post(&app, &ann.access_token, "/v1/tenants", Some("t-1"), json!({"name": "B", "slug": "b"})).await;
    assert_eq!(other.0, 422);
    assert_eq!(app.db.count("SELECT count(*) FROM tenants WHERE slug = 'b'").await, 0);
    // Another user's same key creates that user's own tenant.
    let bob = app.register("bob@example.com").await;
    let (status, _, bobs) =
        post(&app, &bob.access_token, "/v1/tenants", Some("t-1"), json!({"name": "B", "slug": "b"})).await;
    assert_eq!(status, 201);
    assert_ne!(bobs["id"], first["id"]);
    // Past 24 hours the answer is gone but the tenant the key made is not: the key is spent, nothing is created.
    let superuser = app.db.superuser().await;
    sea_orm::ConnectionTrait::execute_unprepared(
        superuser,
        "UPDATE idempotency_keys SET created_at = now() - interval '25 hours'",
    )
    .await
    .unwrap();
    let late =
        post(&app, &ann.access_token, "/v1/tenants", Some("t-1"), json!({"name": "Acme", "slug": "acme-2"})).await;
    assert_eq!((late.0, late.2["code"].as_str()), (422, Some("idempotency_key_reused")));
    assert_eq!(app.db.count("SELECT count(*) FROM tenants WHERE slug = 'acme-2'").await, 0);
}

#[tokio::test]
async fn keys_expire_after_24_hours_and_the_worker_purges_them() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;
    let path = keys_path(tenant);
    let body = json!({"name": "CI", "role": "viewer"});
    assert_eq!(post(&app, &ann.access_token, &path, Some("old"), body.clone()).await.0, 201);
    assert_eq!(post(&app, &ann.access_token, &path, Some("fresh"), body.clone()).await.0, 201);
    let superuser = app.db.superuser().await;
    let age =
        "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = encode(sha256('old'), 'hex')";
    assert_eq!(sea_orm::ConnectionTrait::execute_unprepared(superuser, age).await.unwrap().rows_affected(), 1);
    // An expired key is free again: the request runs anew.
    let (status, replayed, _) = post(&app, &ann.access_token, &path, Some("old"), body.clone()).await;
    assert_eq!((status, replayed), (201, false));
    assert_eq!(app.db.count(&format!("SELECT count(*) FROM api_keys WHERE tenant_id = '{tenant}'")).await, 3);
    // The purge (the worker's, as the runtime role) removes what is older than 24 hours, in every tenant, only that.
    sea_orm::ConnectionTrait::execute_unprepared(superuser, &age.replace("'old'", "'fresh'")).await.unwrap();
    let runtime = app.db.connect_runtime().await;
    assert_eq!(entity::idempotency::purge_expired(&runtime, 100).await.unwrap(), 1);
    assert_eq!(app.db.count("SELECT count(*) FROM idempotency_keys").await, 1);
}

#[tokio::test]
async fn a_malformed_key_is_400_and_changes_nothing() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;
    let url = app.url(&keys_path(tenant));
    let body = json!({"name": "CI", "role": "viewer"});
    for bad in ["", "has space", &"k".repeat(256), "tab\tkey"] {
        let response = app
            .client
            .post(&url)
            .bearer_auth(&ann.access_token)
            .header("idempotency-key", bad)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{bad:?}");
        assert_eq!(response.headers()["content-type"], "application/problem+json");
    }
    let twice = app
        .client
        .post(&url)
        .bearer_auth(&ann.access_token)
        .header("idempotency-key", "a")
        .header("idempotency-key", "b")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), 400);
    assert_eq!(app.db.count("SELECT count(*) FROM api_keys").await, 0);
}

/// Random requests, sent at once, drawn from a few keys (or none) and a few bodies: each key ends up with exactly one
/// body that won (its answers all identical), the others under it are 422, and what was created is one key per
/// winning idempotency key plus one per request without a key.
#[tokio::test]
async fn property_random_concurrent_retries_create_exactly_once_per_key() {
    let app = spawn_app_with(|s| s.database_max_connections = 8).await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;
    let path = keys_path(tenant);
    let seed: u64 = rand::rng().random();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let requests: Vec<(Option<String>, String)> = (0..40)
        .map(|_| {
            let key = (rng.random_range(0..6) > 0).then(|| format!("key-{}", rng.random_range(0..5)));
            (key, format!("name-{}", rng.random_range(0..2)))
        })
        .collect();
    let answers = futures_util::future::join_all(requests.iter().map(|(key, name)| {
        post(&app, &ann.access_token, &path, key.as_deref(), json!({"name": name, "role": "viewer"}))
    }))
    .await;
    let mut winners: HashMap<&str, (&str, &Value)> = HashMap::new();
    let mut without_key = 0;
    for ((key, name), (status, _, body)) in requests.iter().zip(&answers) {
        let Some(key) = key else {
            assert_eq!(*status, 201, "seed {seed}");
            without_key += 1;
            continue;
        };
        match status {
            201 => {
                let (won_name, won_body) = *winners.entry(key).or_insert((name, body));
                assert_eq!((won_name, won_body), (name.as_str(), body), "seed {seed}: two answers under {key}");
            }
            422 => assert_eq!(body["code"], "idempotency_key_reused", "seed {seed}"),
            other => panic!("seed {seed}: {other} {body}"),
        }
    }
    // Every 422 lost to a winner with another body.
    for ((key, name), (status, _, _)) in requests.iter().zip(&answers) {
        if let (Some(key), 422) = (key, status) {
            assert_ne!(winners.get(key.as_str()).map(|w| w.0), Some(name.as_str()), "seed {seed}");
        }
    }
    let created = app.db.count(&format!("SELECT count(*) FROM api_keys WHERE tenant_id = '{tenant}'")).await;
    assert_eq!(created as usize, winners.len() + without_key, "seed {seed}");
    let ids: HashSet<&Value> = winners.values().map(|w| &w.1["api_key"]["id"]).collect();
    assert_eq!(ids.len(), winners.len(), "seed {seed}");
}
