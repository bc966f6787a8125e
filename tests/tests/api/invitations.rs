//! Invitations: shown once, hashed, expiring, single-use, only for the invited email.

use serde_json::Value;
use tests::spawn_app;

#[tokio::test]
async fn an_invitation_works_once_and_only_for_its_email() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;
    let bob = app.register("bob@example.com").await;
    let eve = app.register("eve@example.com").await;

    let created = app.post_invitation(&ann, tenant, "Bob@Example.com", "admin").await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let token = created["token"].as_str().unwrap();
    assert!(created["accept_url"].as_str().unwrap().ends_with(token));

    let listed: Value = app.get_invitations(&ann, tenant).await.json().await.unwrap();
    assert_eq!(listed[0]["email"], "Bob@example.com", "stored NFKC-normalised, domain lower-cased");
    assert!(!listed.to_string().contains(token), "the token is never shown again");

    let r = app.post_accept_invitation(&eve, token).await;
    assert_eq!(r.status(), 403);
    let r = app.post_accept_invitation(&bob, token).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["role"], "admin");
    let r = app.post_accept_invitation(&bob, token).await;
    assert_eq!(r.status(), 409);
    assert_eq!(app.get_tenant(&bob, tenant).await.status(), 200);
    assert_eq!(app.get_tenant(&eve, tenant).await.status(), 404);

    let mut tampered = token.to_owned();
    tampered.replace_range(tampered.len() - 4.., "AAAA");
    assert_eq!(app.post_accept_invitation(&eve, &tampered).await.status(), 404);
    assert_eq!(app.post_accept_invitation(&eve, "junk").await.status(), 404);
    let audit = app.audit_log(tenant).await;
    assert!(audit.has("invitation.create", "success"));
    assert!(audit.has("invitation.accept", "success"));
}

#[tokio::test]
async fn revoked_and_expired_invitations_no_longer_work() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;
    let bob = app.register("bob@example.com").await;
    let invite = |email: &'static str| {
        let (app, ann) = (&app, &ann);
        async move {
            let r = app.post_invitation(ann, tenant, email, "member").await;
            r.json::<Value>().await.unwrap()
        }
    };

    let revoked = invite("bob@example.com").await;
    let id = revoked["invitation"]["id"].as_str().unwrap();
    let r = app.delete_invitation(&ann, tenant, id).await;
    assert_eq!(r.status(), 204);
    let r = app.post_accept_invitation(&bob, revoked["token"].as_str().unwrap()).await;
    assert_eq!(r.status(), 404);
    assert!(app.audit_log(tenant).await.has("invitation.revoke", "success"));

    let expired = invite("bob@example.com").await;
    app.sql(&format!(
        "UPDATE invitations SET expires_at = now() - interval '1 minute' WHERE id = '{}'",
        expired["invitation"]["id"].as_str().unwrap()
    ))
    .await;
    let r = app.post_accept_invitation(&bob, expired["token"].as_str().unwrap()).await;
    assert_eq!(r.status(), 410);
    assert_eq!(app.get_tenant(&bob, tenant).await.status(), 404);
}

#[tokio::test]
async fn only_owners_and_admins_invite_and_only_owners_invite_owners() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;
    let admin = app.add_member(&ann, tenant, "admin@example.com", "admin").await;
    let member = app.add_member(&ann, tenant, "member@example.com", "member").await;
    for (by, email, role, status) in [
        (&member, "x@example.com", "viewer", 403),
        (&admin, "x@example.com", "owner", 403),
        (&admin, "x@example.com", "admin", 201),
        (&ann, "y@example.com", "owner", 201),
        (&ann, "nope", "viewer", 422),
        (&ann, "z@example.com", "boss", 422),
    ] {
        let response = app.post_invitation(by, tenant, email, role).await;
        assert_eq!(response.status(), status, "{} inviting {email} as {role}", by.email);
    }
}
