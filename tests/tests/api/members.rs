//! Members and roles: changes, removal, the last-owner rule, and immediate loss of access.

use reqwest::Method;
use serde_json::{Value, json};
use tests::spawn_app;

#[tokio::test]
async fn role_changes_follow_the_rules_and_are_audited() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;
    let admin = app.add_member(&ann, tenant, "admin@example.com", "admin").await;
    let member = app.add_member(&ann, tenant, "member@example.com", "member").await;
    let path = |u: &tests::TestUser| format!("/v1/tenants/{tenant}/members/{}", u.id);
    let patch = |token: String, path: String, role: &'static str| {
        let app = &app;
        async move { app.call(Method::PATCH, &path, Some(&token), Some(json!({ "role": role }))).await.status() }
    };

    assert_eq!(patch(admin.access_token.clone(), path(&member), "viewer").await, 200);
    assert_eq!(patch(admin.access_token.clone(), path(&member), "owner").await, 403, "admins cannot make owners");
    assert_eq!(patch(admin.access_token.clone(), path(&ann), "member").await, 403, "admins cannot demote owners");
    assert_eq!(patch(member.access_token.clone(), path(&admin), "viewer").await, 403, "viewers manage nobody");
    assert_eq!(patch(ann.access_token.clone(), path(&ann), "admin").await, 409, "the last owner stays");
    assert_eq!(patch(ann.access_token.clone(), path(&admin), "owner").await, 200);
    assert_eq!(patch(ann.access_token.clone(), path(&ann), "admin").await, 200, "another owner exists now");
    let bad = app.call(Method::PATCH, &path(&member), Some(&admin.access_token), Some(json!({ "role": "god" }))).await;
    assert_eq!(bad.status(), 422);

    let members: Value =
        app.get_as(&format!("/v1/tenants/{tenant}/members"), &ann.access_token).await.json().await.unwrap();
    let role_of = |email: &str| {
        members.as_array().unwrap().iter().find(|m| m["email"] == email).map(|m| m["role"].as_str().unwrap().to_owned())
    };
    assert_eq!(role_of("ann@example.com").as_deref(), Some("admin"));
    assert_eq!(role_of("admin@example.com").as_deref(), Some("owner"));
    assert_eq!(role_of("member@example.com").as_deref(), Some("viewer"));
    let changes = app.audit_actions(tenant).await.iter().filter(|(a, _)| a == "member.role_change").count();
    assert_eq!(changes, 3);
}

#[tokio::test]
async fn a_removed_member_loses_access_at_once_with_the_same_token() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;
    let bob = app.add_member(&ann, tenant, "bob@example.com", "member").await;
    let tenant_path = format!("/v1/tenants/{tenant}");
    assert_eq!(app.get_as(&tenant_path, &bob.access_token).await.status(), 200);

    let r = app.call(Method::DELETE, &format!("{tenant_path}/members/{}", bob.id), Some(&ann.access_token), None).await;
    assert_eq!(r.status(), 204);
    assert_eq!(app.get_as(&tenant_path, &bob.access_token).await.status(), 404);
    assert!(app.audit_actions(tenant).await.contains(&("member.remove".into(), "success".into())));
}

#[tokio::test]
async fn anyone_may_leave_but_the_last_owner_may_not() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;
    let viewer = app.add_member(&ann, tenant, "viewer@example.com", "viewer").await;
    let leave = |u: &tests::TestUser| format!("/v1/tenants/{tenant}/members/{}", u.id);

    assert_eq!(app.call(Method::DELETE, &leave(&ann), Some(&viewer.access_token), None).await.status(), 403);
    assert_eq!(app.call(Method::DELETE, &leave(&viewer), Some(&viewer.access_token), None).await.status(), 204);
    let r = app.call(Method::DELETE, &leave(&ann), Some(&ann.access_token), None).await;
    assert_eq!(r.status(), 409);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "conflict");
    let unknown = format!("/v1/tenants/{tenant}/members/{}", uuid::Uuid::new_v4());
    assert_eq!(app.call(Method::DELETE, &unknown, Some(&ann.access_token), None).await.status(), 404);
}
