//! API keys: shown once, usable as Bearer on their tenant with their own role, revocable at once.

use serde_json::{Value, json};
use tests::spawn_app;

#[tokio::test]
async fn an_api_key_acts_with_its_role_on_its_tenant_until_revoked() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;

    let created = app.post_api_key(&ann, tenant, "CI", "viewer").await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let prefix = created["api_key"]["prefix"].as_str().unwrap();
    assert!(secret.starts_with(prefix) && prefix.starts_with("thk_"));

    assert_eq!(app.get_tenant(&secret, tenant).await.status(), 200);
    assert_eq!(app.get_members(&secret, tenant).await.status(), 200);
    let r = app.patch_tenant(&secret, tenant, json!({ "name": "x" })).await;
    assert_eq!(r.status(), 403, "a viewer key cannot update the tenant");
    assert_eq!(app.get_me(&secret).await.status(), 403, "keys are for tenant endpoints only");

    let listed: Value = app.get_api_keys(&ann, tenant).await.json().await.unwrap();
    assert_eq!(listed[0]["name"], "CI");
    assert!(listed[0]["last_used_at"].is_string());
    assert!(!listed.to_string().contains(&secret), "the secret is never shown again");

    let mut wrong = secret.clone();
    wrong.replace_range(wrong.len() - 4.., "AAAA");
    assert_eq!(app.get_tenant(&wrong, tenant).await.status(), 401);

    let id = created["api_key"]["id"].as_str().unwrap();
    assert_eq!(app.delete_api_key(&ann, tenant, id).await.status(), 204);
    assert_eq!(app.get_tenant(&secret, tenant).await.status(), 401);
    let audit = app.audit_log(tenant).await;
    assert!(audit.has("api_key.create", "success"));
    assert!(audit.has("api_key.revoke", "success"));
}

#[tokio::test]
async fn keys_cannot_exceed_their_creator_and_members_cannot_make_keys() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;
    let admin = app.add_member(&ann, tenant, "admin@example.com", "admin").await;
    let member = app.add_member(&ann, tenant, "member@example.com", "member").await;
    let audit_before = app.audit_log(tenant).await.len();

    for (by, role, status, code) in [
        (&admin, "owner", 403, "forbidden"),
        (&member, "viewer", 403, "forbidden"),
        (&member, "member", 403, "forbidden"),
    ] {
        let refused = app.post_api_key(by, tenant, "k", role).await;
        assert_eq!(refused.status(), status, "{} made a {role} key", by.email);
        assert_eq!(refused.json::<Value>().await.unwrap()["code"], code);
    }
    let invalid = app.post_api_key(&admin, tenant, "", "viewer").await;
    assert_eq!(invalid.status(), 422);
    let invalid: Value = invalid.json().await.unwrap();
    assert_eq!(
        (invalid["code"].as_str(), invalid["errors"][0]["field"].as_str()),
        (Some("validation_failed"), Some("name"))
    );
    let keys: Value = app.get_api_keys(&ann, tenant).await.json().await.unwrap();
    assert_eq!(keys, json!([]), "a refused request made a key");
    assert_eq!(app.audit_log(tenant).await.len(), audit_before, "a refused request was audited");

    let made = app.post_api_key(&admin, tenant, "k", "admin").await;
    assert_eq!(made.status(), 201);
    let request_id = made.headers()["x-request-id"].to_str().unwrap().to_owned();
    let made: Value = made.json().await.unwrap();
    let keys: Value = app.get_api_keys(&ann, tenant).await.json().await.unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 1);
    assert_eq!((&keys[0]["id"], &keys[0]["role"]), (&made["api_key"]["id"], &json!("admin")));
    let audit = app.audit_log(tenant).await;
    let [row] = audit.of("api_key.create")[..] else { panic!("one api_key.create row expected: {audit:?}") };
    assert_eq!((row.actor_type.as_str(), row.actor_id), ("user", Some(admin.id)));
    assert_eq!(row.target_id.as_deref(), made["api_key"]["id"].as_str());
    assert_eq!((&row.metadata["role"], &row.metadata["name"]), (&json!("admin"), &json!("k")));
    assert_eq!(row.request_id.as_deref(), Some(request_id.as_str()));
    assert_eq!(audit.len(), audit_before + 1);

    // An admin's key is an admin: it cannot act on owners either.
    let secret = made["secret"].as_str().unwrap();
    let r = app.patch_member(secret, tenant, ann.id, "viewer").await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "forbidden");
    assert_eq!(app.delete_member(secret, tenant, ann.id).await.status(), 403);
    let members: Value = app.get_members(&ann, tenant).await.json().await.unwrap();
    let ann_row = members.as_array().unwrap().iter().find(|m| m["user_id"] == json!(ann.id)).unwrap();
    assert_eq!(ann_row["role"], "owner");
}
