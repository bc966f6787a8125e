//! Members and roles: changes, removal, the last-owner rule, and immediate loss of access.

use serde_json::{Value, json};
use tests::spawn_app;

#[tokio::test]
async fn role_changes_follow_the_rules_and_are_audited() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;
    let admin = app.add_member(&ann, tenant, "admin@example.com", "admin").await;
    let member = app.add_member(&ann, tenant, "member@example.com", "member").await;
    let audit_before = app.audit_log(tenant).await.len();

    let demoted = app.patch_member(&admin, tenant, member.id, "viewer").await;
    assert_eq!(demoted.status(), 200);
    let demotion_request = demoted.headers()["x-request-id"].to_str().unwrap().to_owned();
    let refusals = [
        (&admin, &member, "owner", "admins cannot make owners"),
        (&admin, &ann, "member", "admins cannot demote owners"),
        (&member, &admin, "viewer", "viewers manage nobody"),
    ];
    for (by, whom, role, why) in refusals {
        let refused = app.patch_member(by, tenant, whom.id, role).await;
        assert_eq!(refused.status(), 403, "{why}");
        assert_eq!(refused.json::<Value>().await.unwrap()["code"], "forbidden", "{why}");
    }
    let audit = app.audit_log(tenant).await;
    assert_eq!(audit.len(), audit_before + 1, "only the allowed change was recorded: {audit:?}");
    let last_owner = app.patch_member(&ann, tenant, ann.id, "admin").await;
    assert_eq!(last_owner.status(), 409, "the last owner stays");
    assert_eq!(last_owner.json::<Value>().await.unwrap()["code"], "conflict");
    assert_eq!(app.patch_member(&ann, tenant, admin.id, "owner").await.status(), 200);
    assert_eq!(app.patch_member(&ann, tenant, ann.id, "admin").await.status(), 200, "another owner exists now");
    assert_eq!(app.patch_member(&admin, tenant, member.id, "god").await.status(), 422);

    let members: Value = app.get_members(&ann, tenant).await.json().await.unwrap();
    let role_of = |email: &str| {
        members.as_array().unwrap().iter().find(|m| m["email"] == email).map(|m| m["role"].as_str().unwrap().to_owned())
    };
    assert_eq!(role_of("ann@example.com").as_deref(), Some("admin"));
    assert_eq!(role_of("admin@example.com").as_deref(), Some("owner"));
    assert_eq!(role_of("member@example.com").as_deref(), Some("viewer"));

    // Exactly the three changes made, each with who did it, to whom, from what to what; nothing for the refusals.
    let audit = app.audit_log(tenant).await;
    let changes: Vec<_> = audit
        .of("member.role_change")
        .iter()
        .map(|row| {
            assert_eq!((row.outcome.as_str(), row.actor_type.as_str()), ("success", "user"), "{row:?}");
            assert_eq!((row.tenant_id, row.target_type.as_str()), (tenant, "member"), "{row:?}");
            assert_eq!(row.metadata["invitations_revoked"], 0, "{row:?}");
            (
                row.actor_id.unwrap(),
                row.target_id.clone().unwrap(),
                row.metadata["from"].clone(),
                row.metadata["to"].clone(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            (admin.id, member.id.to_string(), json!("member"), json!("viewer")),
            (ann.id, admin.id.to_string(), json!("admin"), json!("owner")),
            (ann.id, ann.id.to_string(), json!("owner"), json!("admin")),
        ]
    );
    let first = audit.of("member.role_change")[0];
    assert_eq!(first.request_id.as_deref(), Some(demotion_request.as_str()), "the row names the request that made it");
    assert_eq!(first.ip_address.as_deref(), Some("127.0.0.1"));
    assert_eq!(audit.len(), audit_before + 3, "refused and invalid changes wrote nothing: {audit:?}");
}

#[tokio::test]
async fn a_removed_member_loses_access_at_once_with_the_same_token() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;
    let bob = app.add_member(&ann, tenant, "bob@example.com", "member").await;
    assert_eq!(app.get_tenant(&bob, tenant).await.status(), 200);

    assert_eq!(app.delete_member(&ann, tenant, bob.id).await.status(), 204);
    assert_eq!(app.get_tenant(&bob, tenant).await.status(), 404);
    assert!(app.audit_log(tenant).await.has("member.remove", "success"));
}

#[tokio::test]
async fn anyone_may_leave_but_the_last_owner_may_not() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;
    let viewer = app.add_member(&ann, tenant, "viewer@example.com", "viewer").await;

    assert_eq!(app.delete_member(&viewer, tenant, ann.id).await.status(), 403);
    assert_eq!(app.delete_member(&viewer, tenant, viewer.id).await.status(), 204);
    let r = app.delete_member(&ann, tenant, ann.id).await;
    assert_eq!(r.status(), 409);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "conflict");
    assert_eq!(app.delete_member(&ann, tenant, uuid::Uuid::new_v4()).await.status(), 404);
}
