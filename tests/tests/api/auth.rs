//! Registration, login, tokens, sessions, brute-force protection, and the JWT attacks.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use tests::app::{Anonymous, TEST_JWT_KID, TEST_JWT_SECRET};
use tests::{TestApp, spawn_app, spawn_app_with};

const PLATFORM: uuid::Uuid = uuid::Uuid::nil();

async fn problem(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    body
}

async fn user_count(app: &TestApp) -> i64 {
    app.db.count("SELECT count(*) FROM users").await
}

#[tokio::test]
async fn registering_returns_working_tokens_and_the_user() {
    let app = spawn_app().await;
    let user = app.register("ann@example.com").await;
    let me = app.get_me(&user).await;
    assert_eq!(me.status(), 200);
    let body: Value = me.json().await.unwrap();
    assert_eq!(body["user"]["email"], "ann@example.com");
    assert_eq!(body["user"]["is_platform_admin"], false);
    assert!(body["user"].get("password_hash").is_none(), "the hash must never be returned");
    assert_eq!(body["memberships"], json!([]));
    let audit = app.audit_log(PLATFORM).await;
    let [registered] = audit.of("user.register")[..] else { panic!("one user.register row expected: {audit:?}") };
    assert_eq!((registered.outcome.as_str(), registered.actor_type.as_str()), ("success", "user"), "{registered:?}");
    assert_eq!(registered.actor_id, Some(user.id));
    assert_eq!(registered.target_id, Some(user.id.to_string()));
}

#[tokio::test]
async fn a_second_account_with_the_same_email_in_any_case_is_refused() {
    let app = spawn_app().await;
    app.register("ann@example.com").await;
    let again =
        app.post_register(json!({ "email": "ANN@Example.com", "name": "Ann", "password": "another password" })).await;
    problem(again, 409, "conflict").await;
    assert_eq!(user_count(&app).await, 1);
}

#[tokio::test]
async fn bad_registration_input_gets_a_precise_422_and_changes_nothing() {
    let app = spawn_app().await;
    for (body, field) in [
        (json!({ "email": "not-an-email", "name": "A", "password": "long enough pw" }), "email"),
        (json!({ "email": "a@example.com", "name": "A", "password": "" }), "password"),
        (json!({ "email": "a@example.com", "name": "A", "password": "x".repeat(1025) }), "password"),
        (json!({ "email": "a@example.com", "name": "   ", "password": "long enough pw" }), "name"),
    ] {
        let body = problem(app.post_register(body).await, 422, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], field, "{body}");
    }
    let missing = app.post_register(json!({ "email": "a@example.com" })).await;
    problem(missing, 422, "validation_failed").await;
    let huge = app
        .client
        .post(app.url("/v1/auth/register"))
        .json(&json!({ "email": "a@example.com", "name": "A", "password": "x".repeat(10 * 1024 * 1024) }))
        .send()
        .await
        .unwrap();
    problem(huge, 413, "payload_too_large").await;
    let not_json = app
        .client
        .post(app.url("/v1/auth/register"))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    problem(not_json, 415, "unsupported_media_type").await;
    let broken = app
        .client
        .post(app.url("/v1/auth/register"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    problem(broken, 400, "malformed_json").await;
    assert_eq!(user_count(&app).await, 0);
}

#[tokio::test]
async fn login_works_and_a_wrong_email_looks_exactly_like_a_wrong_password() {
    let app = spawn_app().await;
    let user = app.register("ann@example.com").await;
    let body = app.login("ANN@example.com", &user.password).await;
    assert!(body["user"]["last_login_at"].is_string());
    assert_eq!(app.get_me(body["tokens"]["access_token"].as_str().unwrap()).await.status(), 200);

    let wrong_password = app.post_login(json!({ "email": user.email, "password": "wrong password" })).await;
    let wrong_email = app.post_login(json!({ "email": "bob@example.com", "password": "wrong password" })).await;
    let a = problem(wrong_password, 401, "unauthenticated").await;
    let b = problem(wrong_email, 401, "unauthenticated").await;
    assert_eq!((a["detail"].clone(), a["title"].clone()), (b["detail"].clone(), b["title"].clone()));

    let audit = app.audit_log(PLATFORM).await;
    assert!(audit.has("auth.login", "success"));
    assert_eq!(audit.of("auth.login").iter().filter(|row| row.outcome == "failure").count(), 2);
}

#[tokio::test]
async fn repeated_failures_lock_the_account_with_429_and_retry_after_even_for_the_right_password() {
    let app = spawn_app().await;
    let user = app.register("ann@example.com").await;
    for _ in 0..5 {
        let r = app.post_login(json!({ "email": user.email, "password": "wrong password" })).await;
        assert_eq!(r.status(), 401);
    }
    let locked = app.post_login(json!({ "email": user.email, "password": user.password })).await;
    let retry_after: u64 = locked.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    problem(locked, 429, "rate_limited").await;
    // Another account from the same address is not locked by this one.
    let other = app.register("bob@example.com").await;
    app.login(&other.email, &other.password).await;
    assert!(app.audit_log(PLATFORM).await.has("auth.login", "denied"));
}

#[tokio::test]
async fn many_failures_from_one_address_lock_that_address_for_every_account() {
    let app = spawn_app_with(|s| s.login_max_failures_per_ip = 3).await;
    let user = app.register("ann@example.com").await;
    for i in 0..3 {
        let email = format!("nobody{i}@example.com");
        assert_eq!(app.post_login(json!({ "email": email, "password": "whatever1" })).await.status(), 401);
    }
    let r = app.post_login(json!({ "email": user.email, "password": user.password })).await;
    problem(r, 429, "rate_limited").await;
}

#[tokio::test]
async fn refresh_rotates_and_reusing_a_refresh_token_ends_the_whole_session() {
    let app = spawn_app().await;
    let user = app.register("ann@example.com").await;
    let first = app.post_refresh(&user.refresh_token).await;
    assert_eq!(first.status(), 200);
    let pair: Value = first.json().await.unwrap();
    let (access2, refresh2) = (pair["access_token"].as_str().unwrap(), pair["refresh_token"].as_str().unwrap());
    assert_ne!(refresh2, user.refresh_token);
    assert_eq!(app.get_me(access2).await.status(), 200);

    // The old token again: theft is assumed, the family dies.
    let reuse = app.post_refresh(&user.refresh_token).await;
    problem(reuse, 401, "unauthenticated").await;
    problem(app.post_refresh(refresh2).await, 401, "unauthenticated").await;
    problem(app.get_me(access2).await, 401, "unauthenticated").await;
    problem(app.get_me(&user).await, 401, "unauthenticated").await;
    assert!(app.audit_log(PLATFORM).await.has("auth.refresh_token_reuse", "denied"));

    problem(app.post_refresh("rt_made_up").await, 401, "unauthenticated").await;
}

#[tokio::test]
async fn logout_ends_the_session_at_once_but_not_other_sessions() {
    let app = spawn_app().await;
    let user = app.register("ann@example.com").await;
    let other = app.login(&user.email, &user.password).await;
    let other_access = other["tokens"]["access_token"].as_str().unwrap();

    let out = app.post_logout(&user).await;
    assert_eq!(out.status(), 204);
    let logout_request = out.headers()["x-request-id"].to_str().unwrap().to_owned();
    problem(app.get_me(&user).await, 401, "unauthenticated").await;
    problem(app.post_refresh(&user.refresh_token).await, 401, "unauthenticated").await;
    assert_eq!(app.get_me(other_access).await.status(), 200);
    let audit = app.audit_log(PLATFORM).await;
    let [logout] = audit.of("auth.logout")[..] else { panic!("one auth.logout row expected: {audit:?}") };
    assert_eq!((logout.outcome.as_str(), logout.actor_id), ("success", Some(user.id)), "{logout:?}");
    assert_eq!(logout.request_id.as_deref(), Some(logout_request.as_str()));
}

#[tokio::test]
async fn changing_the_password_ends_every_session_and_the_old_password() {
    let app = spawn_app().await;
    let user = app.register("ann@example.com").await;
    let wrong = app.post_password(&user, "nope nope", "a new password").await;
    let body = problem(wrong, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "current_password");

    let changed = app.post_password(&user, &user.password, "a new password").await;
    assert_eq!(changed.status(), 200);
    let fresh: Value = changed.json().await.unwrap();
    problem(app.get_me(&user).await, 401, "unauthenticated").await;
    assert_eq!(app.get_me(fresh["access_token"].as_str().unwrap()).await.status(), 200);
    let old = app.post_login(json!({ "email": user.email, "password": user.password })).await;
    assert_eq!(old.status(), 401);
    app.login(&user.email, "a new password").await;
}

fn forge(header: Value, claims: &Value, secret: &[u8]) -> String {
    let signing_input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let sig = jsonwebtoken::crypto::sign(signing_input.as_bytes(), &EncodingKey::from_secret(secret), Algorithm::HS256)
        .unwrap();
    format!("{signing_input}.{sig}")
}

#[tokio::test]
async fn forged_expired_and_misaddressed_tokens_are_all_refused() {
    let app = spawn_app().await;
    let user = app.register("ann@example.com").await;
    let payload = user.access_token.split('.').nth(1).unwrap();
    let valid: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let secret = TEST_JWT_SECRET.as_bytes();
    let header = json!({ "alg": "HS256", "typ": "JWT", "kid": TEST_JWT_KID });
    // Sanity: a token forged with the real key and the real claims is accepted, so each refusal below is caused by
    // the one thing changed.
    assert_eq!(app.get_me(&forge(header.clone(), &valid, secret)).await.status(), 200);

    let now = chrono::Utc::now().timestamp();
    let with = |key: &str, value: Value| {
        let mut c = valid.clone();
        c[key] = value;
        c
    };
    let without = |key: &str| {
        let mut c = valid.clone();
        c.as_object_mut().unwrap().remove(key);
        c
    };
    let alg_none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({ "alg": "none", "kid": TEST_JWT_KID }).to_string()),
        URL_SAFE_NO_PAD.encode(valid.to_string())
    );
    let mut tampered = user.access_token.clone();
    tampered.replace_range(tampered.len() - 5.., "AAAAA");
    let attacks = vec![
        ("alg none", alg_none),
        ("HS512", forge(json!({ "alg": "HS512", "kid": TEST_JWT_KID }), &valid, secret)),
        ("wrong key", forge(header.clone(), &valid, b"another-secret-that-is-32-bytes-long!!")),
        ("unknown kid", forge(json!({ "alg": "HS256", "kid": "old" }), &valid, secret)),
        ("no kid", forge(json!({ "alg": "HS256" }), &valid, secret)),
        ("expired", forge(header.clone(), &with("exp", json!(now - 60)), secret)),
        ("not yet valid", forge(header.clone(), &with("nbf", json!(now + 600)), secret)),
        ("wrong issuer", forge(header.clone(), &with("iss", json!("evil")), secret)),
        ("wrong audience", forge(header.clone(), &with("aud", json!("other-api")), secret)),
        ("no exp", forge(header.clone(), &without("exp"), secret)),
        ("unknown session", forge(header.clone(), &with("sid", json!(uuid::Uuid::new_v4())), secret)),
        ("other user in session", forge(header.clone(), &with("sub", json!(uuid::Uuid::new_v4())), secret)),
        ("tampered", tampered),
        ("garbage", "not.a.token".to_owned()),
    ];
    for (name, token) in attacks {
        let response = app.get_me(&token).await;
        assert_eq!(response.status(), 401, "{name} was accepted");
        assert!(response.headers().contains_key("www-authenticate"), "{name}");
        problem(response, 401, "unauthenticated").await;
    }
    let no_header = app.get_me(&Anonymous).await;
    problem(no_header, 401, "unauthenticated").await;
    let basic = app.client.get(app.url("/v1/me")).basic_auth("a", Some("b")).send().await.unwrap();
    problem(basic, 401, "unauthenticated").await;
}
