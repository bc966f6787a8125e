//! Tenants: creation, listing, reading, updating, deleting, and who may do what.

use serde_json::{Value, json};
use tests::spawn_app;

#[tokio::test]
async fn the_creator_of_a_tenant_is_its_owner_and_sees_it_listed() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;

    let list: Value = app.get_tenants(&ann).await.json().await.unwrap();
    assert_eq!(list[0]["tenant"]["id"], tenant.to_string());
    assert_eq!(list[0]["role"], "owner");
    let me: Value = app.get_me(&ann).await.json().await.unwrap();
    assert_eq!(me["memberships"][0]["tenant"]["slug"], "acme");
    let one: Value = app.get_tenant(&ann, tenant).await.json().await.unwrap();
    assert_eq!((one["name"].as_str(), one["plan"].as_str()), (Some("acme"), Some("free")));
    assert!(app.audit_log(tenant).await.has("tenant.create", "success"));
}

#[tokio::test]
async fn bad_tenant_input_is_refused_precisely_and_changes_nothing() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;
    for (body, status, code) in [
        (json!({ "name": "X", "slug": "Not A Slug" }), 422, "validation_failed"),
        (json!({ "name": "", "slug": "fine" }), 422, "validation_failed"),
        (json!({ "name": "X", "slug": "acme" }), 409, "conflict"),
        (json!({ "name": "X", "slug": "platform" }), 409, "conflict"),
    ] {
        let r = app.post_tenants(&ann, body).await;
        assert_eq!(r.status(), status);
        assert_eq!(r.json::<Value>().await.unwrap()["code"], code);
    }
    let r = app.get_tenant(&ann, "not-a-uuid").await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "invalid_path_parameter");
    let r = app.patch_tenant(&ann, tenant, json!({ "slug": "-x" })).await;
    assert_eq!(r.status(), 422);
    let list: Value = app.get_tenants(&ann).await.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["tenant"]["slug"], "acme");
}

#[tokio::test]
async fn owners_and_admins_update_a_tenant_but_members_cannot() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;
    let admin = app.add_member(&ann, tenant, "admin@example.com", "admin").await;
    let member = app.add_member(&ann, tenant, "member@example.com", "member").await;

    let r = app.patch_tenant(&admin, tenant, json!({ "name": "Acme QA" })).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["name"], "Acme QA");
    let r = app.patch_tenant(&member, tenant, json!({ "name": "Hijack" })).await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "forbidden");
    let r: Value = app.get_tenant(&member, tenant).await.json().await.unwrap();
    assert_eq!(r["name"], "Acme QA");
    assert!(app.audit_log(tenant).await.has("tenant.update", "success"));
}

#[tokio::test]
async fn only_an_owner_deletes_a_tenant_and_then_nobody_reaches_it_but_the_audit_log_remains() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;
    let admin = app.add_member(&ann, tenant, "admin@example.com", "admin").await;

    assert_eq!(app.delete_tenant(&admin, tenant).await.status(), 403);
    assert_eq!(app.delete_tenant(&ann, tenant).await.status(), 204);
    for user in [&ann, &admin] {
        assert_eq!(app.get_tenant(user, tenant).await.status(), 404);
        let list: Value = app.get_tenants(user).await.json().await.unwrap();
        assert_eq!(list, json!([]));
    }
    let audit = app.audit_log(tenant).await;
    assert!(audit.has("tenant.create", "success"));
    assert!(audit.has("tenant.delete", "success"));
}
