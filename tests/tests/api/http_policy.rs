//! What every answer carries and how long a request may take: security headers on JSON, errors, the docs and the
//! viewer; HSTS only behind TLS; CORS only for the configured origins; the request deadline and the statement
//! timeout answer 503 and keep nothing of the request.

use reqwest::Method;
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::{Value, json};
use tests::{spawn_app, spawn_app_with};

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn every_answer_carries_the_security_headers_and_each_page_its_own_policy() {
    let app = spawn_app().await;
    let alice = app.register("alice@example.com").await;
    let answers = [
        ("json", app.get_me(&alice).await),
        ("problem", app.get("/v1/no-such-route").await),
        ("unauthenticated", app.get("/v1/me").await),
        ("docs", app.get("/docs/").await),
        ("viewer", app.get("/admin/audit").await),
        ("spec", app.get("/openapi.json").await),
    ];
    for (what, response) in &answers {
        assert_eq!(header(response, "x-content-type-options"), Some("nosniff"), "{what}");
        assert_eq!(header(response, "referrer-policy"), Some("no-referrer"), "{what}");
        assert_eq!(header(response, "x-frame-options"), Some("DENY"), "{what}");
        assert!(header(response, "strict-transport-security").is_none(), "{what}: no HSTS on plain HTTP");
        let csp = header(response, "content-security-policy").unwrap_or_else(|| panic!("{what}: no CSP"));
        assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
        assert!(!csp.contains("unsafe-eval") && !csp.contains("script-src *"), "{what}: {csp}");
        match *what {
            "docs" => assert!(csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"), "{csp}"),
            "viewer" => assert!(csp.contains("style-src 'sha256-"), "the viewer keeps its own policy: {csp}"),
            _ => {
                assert!(csp.starts_with("default-src 'none'"), "{what}: {csp}");
                assert!(!csp.contains("script-src"), "{what}: an API answer runs nothing: {csp}");
                assert_eq!(header(response, "cache-control"), Some("no-store"), "{what}");
            }
        }
    }
    assert_eq!(answers[0].1.status(), 200);
}

#[tokio::test]
async fn hsts_is_sent_when_the_api_is_served_over_tls_and_can_be_turned_off() {
    let app = spawn_app_with(|s| s.public_url = "https://api.example.com".into()).await;
    let response = app.get("/livez").await;
    assert_eq!(header(&response, "strict-transport-security"), Some("max-age=31536000; includeSubDomains"));
    let problem = app.get("/v1/nothing-here").await;
    assert!(header(&problem, "strict-transport-security").is_some(), "errors too");

    let off = spawn_app_with(|s| {
        s.public_url = "https://api.example.com".into();
        s.hsts_max_age_secs = 0;
    })
    .await;
    assert!(header(&off.get("/livez").await, "strict-transport-security").is_none());
}

#[tokio::test]
async fn without_configured_origins_no_cors_header_is_sent() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/livez")).header("origin", "https://evil.example").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(header(&response, "access-control-allow-origin").is_none());
    let preflight = app
        .client
        .request(Method::OPTIONS, app.url("/v1/me"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(header(&preflight, "access-control-allow-origin").is_none());
}

#[tokio::test]
async fn configured_origins_may_call_the_api_from_a_browser_and_others_may_not() {
    let app =
        spawn_app_with(|s| s.cors_allowed_origins = "https://app.example.com, http://localhost:3000".into()).await;
    let alice = app.register("alice@example.com").await;
    let preflight = |origin: &'static str, headers: &'static str| {
        app.client
            .request(Method::OPTIONS, app.url("/v1/tenants"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", headers)
            .send()
    };

    let allowed = preflight("https://app.example.com", "authorization, content-type, idempotency-key").await.unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(header(&allowed, "access-control-allow-origin"), Some("https://app.example.com"));
    let allowed_headers = header(&allowed, "access-control-allow-headers").unwrap().to_lowercase();
    for name in ["authorization", "content-type", "idempotency-key"] {
        assert!(allowed_headers.contains(name), "{allowed_headers}");
    }
    assert!(header(&allowed, "access-control-allow-credentials").is_none(), "bearer tokens, never cookies");

    let other = preflight("https://evil.example", "authorization").await.unwrap();
    assert!(header(&other, "access-control-allow-origin").is_none());
    assert_eq!(other.status(), 400);
    assert_eq!(header(&other, "content-type"), Some("application/problem+json"));

    // An actual call from an allowed origin can read the answer and its request id.
    let call = app
        .client
        .get(app.url("/v1/me"))
        .header("origin", "http://localhost:3000")
        .bearer_auth(&alice.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(call.status(), 200);
    assert_eq!(header(&call, "access-control-allow-origin"), Some("http://localhost:3000"));
    assert!(header(&call, "access-control-expose-headers").unwrap().to_lowercase().contains("x-request-id"));

    // A call from another origin is refused outright, and changes nothing.
    let tenants = app.db.count("SELECT count(*) FROM tenants").await;
    let refused = app
        .client
        .post(app.url("/v1/tenants"))
        .header("origin", "https://evil.example")
        .bearer_auth(&alice.access_token)
        .json(&json!({"name": "Evil", "slug": "evil"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert!(header(&refused, "access-control-allow-origin").is_none());
    assert_eq!(app.db.count("SELECT count(*) FROM tenants").await, tenants);
}

#[tokio::test]
async fn an_origin_that_is_not_a_bare_origin_stops_start_up() {
    for bad in ["app.example.com", "https://app.example.com/path", "ftp://files.example.com", "https://"] {
        let db = tests::TestDatabase::migrated().await;
        let mut settings = tests::app::test_settings(&db);
        settings.cors_allowed_origins = bad.into();
        let error = api::startup::Application::build(settings).await.err().unwrap_or_else(|| panic!("{bad} accepted"));
        assert!(error.to_string().contains("CORS_ALLOWED_ORIGINS"), "{bad}: {error}");
    }
}

#[tokio::test]
async fn a_request_past_its_deadline_is_answered_503_and_keeps_nothing() {
    // A registration hashes a password (tens of milliseconds) before it writes: it cannot finish in 5 ms.
    let app = spawn_app_with(|s| s.request_timeout_ms = 5).await;
    let response = app
        .post_register(json!({"email": "slow@example.com", "password": "correct horse battery", "name": "Slow"}))
        .await;
    assert_eq!(response.status(), 503);
    assert_eq!(header(&response, "retry-after"), Some("1"));
    assert_eq!(header(&response, "content-type"), Some("application/problem+json"));
    assert_eq!(header(&response, "x-content-type-options"), Some("nosniff"));
    assert!(header(&response, "content-security-policy").is_some());
    let request_id = header(&response, "x-request-id").unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "service_unavailable");
    assert_eq!(body["request_id"], request_id.as_str());
    // The handler was dropped before or during its transaction: nothing of it is kept, even later.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.db.count("SELECT count(*) FROM users WHERE email = 'slow@example.com'").await, 0);
    assert_eq!(app.db.count("SELECT count(*) FROM audit_logs WHERE action = 'user.register'").await, 0);
}

#[tokio::test]
async fn a_statement_past_the_statement_timeout_is_answered_503_and_the_server_recovers() {
    let app = spawn_app_with(|s| s.database_statement_timeout_ms = 300).await;
    let alice = app.register("alice@example.com").await;
    let tenant = app.create_tenant(&alice, "alpha").await;
    // Another session holds the tenant's row: the rename waits on the lock until Postgres cancels it.
    let superuser = app.db.superuser().await;
    let blocker = superuser.begin().await.unwrap();
    blocker.execute_unprepared(&format!("SELECT 1 FROM tenants WHERE id = '{tenant}' FOR UPDATE")).await.unwrap();
    let started = std::time::Instant::now();
    let response = app.patch_tenant(&alice, tenant, json!({"name": "Renamed"})).await;
    assert_eq!(response.status(), 503, "{}", response.text().await.unwrap());
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    blocker.rollback().await.unwrap();
    assert_eq!(app.db.count("SELECT count(*) FROM tenants WHERE name = 'Renamed'").await, 0);
    let again = app.patch_tenant(&alice, tenant, json!({"name": "Renamed"})).await;
    assert_eq!(again.status(), 200, "the pool recovered");
}

#[tokio::test]
async fn every_pooled_connection_carries_the_statement_and_idle_transaction_timeouts() {
    let db = tests::TestDatabase::migrated().await;
    let settings = entity::db::PoolSettings {
        max_connections: 1,
        statement_timeout: std::time::Duration::from_millis(150),
        idle_in_transaction_timeout: std::time::Duration::from_millis(2500),
        ..Default::default()
    };
    let pool = entity::db::connect(&db.runtime_url(), &settings).await.unwrap();
    let show = |name: &'static str| {
        let pool = pool.clone();
        async move {
            let row = pool
                .query_one_raw(sea_orm::Statement::from_string(sea_orm::DbBackend::Postgres, format!("SHOW {name}")))
                .await
                .unwrap()
                .unwrap();
            row.try_get_by_index::<String>(0).unwrap()
        }
    };
    assert_eq!(show("statement_timeout").await, "150ms");
    assert_eq!(show("idle_in_transaction_session_timeout").await, "2500ms");
    let slow = pool.execute_unprepared("SELECT pg_sleep(1)").await.unwrap_err();
    assert!(entity::db::is_statement_timeout(&slow), "{slow}");
    assert!(!entity::db::is_unavailable(&slow));
}
