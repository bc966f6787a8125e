//! API keys: shown once, usable as Bearer on their tenant with their own role, revocable at once.

use reqwest::Method;
use serde_json::{Value, json};
use tests::spawn_app;

#[tokio::test]
async fn an_api_key_acts_with_its_role_on_its_tenant_until_revoked() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;
    let keys = format!("/v1/tenants/{tenant}/api-keys");

    let created = app.post_as(&keys, &ann.access_token, json!({ "name": "CI", "role": "viewer" })).await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let prefix = created["api_key"]["prefix"].as_str().unwrap();
    assert!(secret.starts_with(prefix) && prefix.starts_with("thk_"));

    let tenant_path = format!("/v1/tenants/{tenant}");
    assert_eq!(app.get_as(&tenant_path, &secret).await.status(), 200);
    assert_eq!(app.get_as(&format!("{tenant_path}/members"), &secret).await.status(), 200);
    let r = app.call(Method::PATCH, &tenant_path, Some(&secret), Some(json!({ "name": "x" }))).await;
    assert_eq!(r.status(), 403, "a viewer key cannot update the tenant");
    assert_eq!(app.get_as("/v1/me", &secret).await.status(), 403, "keys are for tenant endpoints only");

    let listed: Value = app.get_as(&keys, &ann.access_token).await.json().await.unwrap();
    assert_eq!(listed[0]["name"], "CI");
    assert!(listed[0]["last_used_at"].is_string());
    assert!(!listed.to_string().contains(&secret), "the secret is never shown again");

    let mut wrong = secret.clone();
    wrong.replace_range(wrong.len() - 4.., "AAAA");
    assert_eq!(app.get_as(&tenant_path, &wrong).await.status(), 401);

    let id = created["api_key"]["id"].as_str().unwrap();
    assert_eq!(app.call(Method::DELETE, &format!("{keys}/{id}"), Some(&ann.access_token), None).await.status(), 204);
    assert_eq!(app.get_as(&tenant_path, &secret).await.status(), 401);
    let audit = app.audit_actions(tenant).await;
    assert!(audit.contains(&("api_key.create".into(), "success".into())));
    assert!(audit.contains(&("api_key.revoke".into(), "success".into())));
}

#[tokio::test]
async fn keys_cannot_exceed_their_creator_and_members_cannot_make_keys() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;
    let admin = app.add_member(&ann, tenant, "admin@example.com", "admin").await;
    let member = app.add_member(&ann, tenant, "member@example.com", "member").await;
    let keys = format!("/v1/tenants/{tenant}/api-keys");

    assert_eq!(app.post_as(&keys, &admin.access_token, json!({ "name": "k", "role": "owner" })).await.status(), 403);
    assert_eq!(app.post_as(&keys, &member.access_token, json!({ "name": "k", "role": "viewer" })).await.status(), 403);
    assert_eq!(app.post_as(&keys, &admin.access_token, json!({ "name": "", "role": "viewer" })).await.status(), 422);
    assert_eq!(app.post_as(&keys, &admin.access_token, json!({ "name": "k", "role": "admin" })).await.status(), 201);
}
