//! Request rate limits: per client address and per tenant, 429 with `Retry-After` and the `RateLimit-*` headers,
//! exact under concurrency (the bucket is one row in Postgres), refilled over time, and not applied to the probes.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use tests::{spawn_app, spawn_app_with};

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response.headers().get(name).map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn an_address_gets_its_burst_then_429_with_retry_after_and_the_ratelimit_headers() {
    let app = spawn_app_with(|s| {
        // A token every 3 s: none comes back while the burst is spent, however slow the machine.
        s.rate_limit_per_ip_per_minute = 20;
        s.rate_limit_per_ip_burst = 5;
    })
    .await;
    let mut remaining = Vec::new();
    for _ in 0..5 {
        let response = app.get("/v1/plans").await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "ratelimit-limit").as_deref(), Some("5"));
        assert_eq!(header(&response, "ratelimit-policy").as_deref(), Some("5;w=15"));
        remaining.push(header(&response, "ratelimit-remaining").unwrap().parse::<u32>().unwrap());
    }
    assert_eq!(remaining, [4, 3, 2, 1, 0]);
    let refused = app.get("/v1/plans").await;
    assert_eq!(refused.status(), 429);
    assert_eq!(header(&refused, "content-type").as_deref(), Some("application/problem+json"));
    assert_eq!(header(&refused, "ratelimit-remaining").as_deref(), Some("0"));
    let retry_after: u64 = header(&refused, "retry-after").unwrap().parse().unwrap();
    assert!((1..=3).contains(&retry_after), "{retry_after}");
    assert!(header(&refused, "x-request-id").is_some());
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");
    // A failed sign-in is refused before any work: nothing is counted against the account.
    let login = app.post("/v1/auth/login", serde_json::json!({"email": "a@example.com", "password": "x"})).await;
    assert_eq!(login.status(), 429);
    assert_eq!(app.db.count("SELECT count(*) FROM auth_throttle").await, 0);
    // The probes and the metrics are never limited.
    for path in ["/livez", "/readyz", "/metrics", "/openapi.json"] {
        assert!(app.get(path).await.status().is_success(), "{path}");
    }
    // A token comes back after Retry-After, and is spent at once.
    tokio::time::sleep(Duration::from_millis(1000 * retry_after + 100)).await;
    assert_eq!(app.get("/v1/plans").await.status(), 200);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(app.get("/v1/plans").await.status().as_u16());
    }
    assert!(statuses.contains(&429), "{statuses:?}");
}

#[tokio::test]
async fn each_client_address_behind_the_proxy_has_its_own_bucket() {
    let app = spawn_app_with(|s| {
        s.rate_limit_per_ip_per_minute = 6;
        s.rate_limit_per_ip_burst = 2;
        s.trusted_proxies = "127.0.0.1".into();
    })
    .await;
    let from = |ip: &'static str| app.client.get(app.url("/v1/plans")).header("x-forwarded-for", ip).send();
    assert_eq!(from("198.51.100.1").await.unwrap().status(), 200);
    assert_eq!(from("198.51.100.1").await.unwrap().status(), 200);
    assert_eq!(from("198.51.100.1").await.unwrap().status(), 429);
    assert_eq!(from("198.51.100.2").await.unwrap().status(), 200, "another client");
}

#[tokio::test]
async fn a_tenants_callers_share_its_bucket_and_other_tenants_are_untouched() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let acme = app.create_tenant(&ann, "acme").await;
    let bob = app.add_member(&ann, acme, "bob@example.com", "member").await;
    let cid = app.register("cid@example.com").await;
    let other = app.create_tenant(&cid, "other").await;
    let key = app.create_api_key(&ann, acme, "ci", "viewer").await["secret"].as_str().unwrap().to_owned();
    // The same database, a replica with a tight tenant limit and no address limit.
    let replica = app
        .replica(|s| {
            s.rate_limit_per_tenant_per_minute = 6;
            s.rate_limit_per_tenant_burst = 4;
        })
        .await;
    let tenant_path = format!("/v1/tenants/{acme}");
    let callers = [ann.access_token.as_str(), bob.access_token.as_str(), key.as_str(), ann.access_token.as_str()];
    for caller in callers {
        assert_eq!(replica.call(Method::GET, &tenant_path, Some(caller), None).await.status(), 200);
    }
    let refused = replica.call(Method::GET, &format!("{tenant_path}/members"), Some(&bob.access_token), None).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(header(&refused, "ratelimit-limit").as_deref(), Some("4"));
    let theirs = replica.call(Method::GET, &format!("/v1/tenants/{other}"), Some(&cid.access_token), None).await;
    assert_eq!(theirs.status(), 200, "another tenant has its own bucket");
    // Routes outside a tenant are not counted against it.
    assert_eq!(replica.call(Method::GET, "/v1/me", Some(&ann.access_token), None).await.status(), 200);
}

/// Requests sent at once to three replicas: exactly the burst is admitted, however they interleave.
#[tokio::test]
async fn a_burst_sent_at_once_to_three_replicas_admits_exactly_the_burst() {
    let app = spawn_app().await;
    let limit = |s: &mut api::config::Settings| {
        s.rate_limit_per_ip_per_minute = 1; // one token a minute: none comes back during the test
        s.rate_limit_per_ip_burst = 10;
        s.database_max_connections = 6;
    };
    let replicas = [app.replica(limit).await, app.replica(limit).await, app.replica(limit).await];
    let answers =
        futures_util::future::join_all((0..36).map(|i| replicas[i % 3].call(Method::GET, "/v1/plans", None, None)))
            .await;
    let admitted = answers.iter().filter(|r| r.status() == 200).count();
    let refused = answers.iter().filter(|r| r.status() == 429).count();
    assert_eq!((admitted, refused), (10, 26));
}

#[tokio::test]
async fn with_the_limits_off_no_ratelimit_header_is_sent() {
    let app = spawn_app().await;
    let response = app.get("/v1/plans").await;
    assert_eq!(response.status(), 200);
    assert!(header(&response, "ratelimit-limit").is_none());
}
