//! Invitations: shown once, hashed, expiring, single-use, only for the invited email.

use reqwest::Method;
use serde_json::{Value, json};
use tests::spawn_app;

#[tokio::test]
async fn an_invitation_works_once_and_only_for_its_email() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;
    let bob = app.register("bob@example.com").await;
    let eve = app.register("eve@example.com").await;

    let created = app
        .post_as(
            &format!("/v1/tenants/{tenant}/invitations"),
            &ann.access_token,
            json!({ "email": "Bob@Example.com", "role": "admin" }),
        )
        .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let token = created["token"].as_str().unwrap();
    assert!(created["accept_url"].as_str().unwrap().ends_with(token));

    let listed: Value =
        app.get_as(&format!("/v1/tenants/{tenant}/invitations"), &ann.access_token).await.json().await.unwrap();
    assert_eq!(listed[0]["email"], "Bob@example.com", "stored NFKC-normalised, domain lower-cased");
    assert!(!listed.to_string().contains(token), "the token is never shown again");

    let r = app.post_as("/v1/invitations/accept", &eve.access_token, json!({ "token": token })).await;
    assert_eq!(r.status(), 403);
    let r = app.post_as("/v1/invitations/accept", &bob.access_token, json!({ "token": token })).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["role"], "admin");
    let r = app.post_as("/v1/invitations/accept", &bob.access_token, json!({ "token": token })).await;
    assert_eq!(r.status(), 409);
    assert_eq!(app.get_as(&format!("/v1/tenants/{tenant}"), &bob.access_token).await.status(), 200);
    assert_eq!(app.get_as(&format!("/v1/tenants/{tenant}"), &eve.access_token).await.status(), 404);

    let mut tampered = token.to_owned();
    tampered.replace_range(tampered.len() - 4.., "AAAA");
    assert_eq!(
        app.post_as("/v1/invitations/accept", &eve.access_token, json!({ "token": tampered })).await.status(),
        404
    );
    assert_eq!(
        app.post_as("/v1/invitations/accept", &eve.access_token, json!({ "token": "junk" })).await.status(),
        404
    );
    let audit = app.audit_actions(tenant).await;
    assert!(audit.contains(&("invitation.create".into(), "success".into())));
    assert!(audit.contains(&("invitation.accept".into(), "success".into())));
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
            let r = app
                .post_as(
                    &format!("/v1/tenants/{tenant}/invitations"),
                    &ann.access_token,
                    json!({ "email": email, "role": "member" }),
                )
                .await;
            r.json::<Value>().await.unwrap()
        }
    };

    let revoked = invite("bob@example.com").await;
    let id = revoked["invitation"]["id"].as_str().unwrap();
    let r = app
        .call(Method::DELETE, &format!("/v1/tenants/{tenant}/invitations/{id}"), Some(&ann.access_token), None)
        .await;
    assert_eq!(r.status(), 204);
    let r = app.post_as("/v1/invitations/accept", &bob.access_token, json!({ "token": revoked["token"] })).await;
    assert_eq!(r.status(), 404);
    assert!(app.audit_actions(tenant).await.contains(&("invitation.revoke".into(), "success".into())));

    let expired = invite("bob@example.com").await;
    {
        use sea_orm::ConnectionTrait;
        let db = app.db.connect_superuser().await;
        db.execute_unprepared(&format!(
            "UPDATE invitations SET expires_at = now() - interval '1 minute' WHERE id = '{}'",
            expired["invitation"]["id"].as_str().unwrap()
        ))
        .await
        .unwrap();
    }
    let r = app.post_as("/v1/invitations/accept", &bob.access_token, json!({ "token": expired["token"] })).await;
    assert_eq!(r.status(), 410);
    assert_eq!(app.get_as(&format!("/v1/tenants/{tenant}"), &bob.access_token).await.status(), 404);
}

#[tokio::test]
async fn only_owners_and_admins_invite_and_only_owners_invite_owners() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;
    let admin = app.add_member(&ann, tenant, "admin@example.com", "admin").await;
    let member = app.add_member(&ann, tenant, "member@example.com", "member").await;
    let path = format!("/v1/tenants/{tenant}/invitations");

    let status = |token: String, body: Value| {
        let (app, path) = (&app, &path);
        async move { app.post_as(path, &token, body).await.status() }
    };
    assert_eq!(status(member.access_token.clone(), json!({ "email": "x@example.com", "role": "viewer" })).await, 403);
    assert_eq!(status(admin.access_token.clone(), json!({ "email": "x@example.com", "role": "owner" })).await, 403);
    assert_eq!(status(admin.access_token.clone(), json!({ "email": "x@example.com", "role": "admin" })).await, 201);
    assert_eq!(status(ann.access_token.clone(), json!({ "email": "y@example.com", "role": "owner" })).await, 201);
    assert_eq!(status(ann.access_token.clone(), json!({ "email": "nope", "role": "viewer" })).await, 422);
    assert_eq!(status(ann.access_token.clone(), json!({ "email": "z@example.com", "role": "boss" })).await, 422);
}
