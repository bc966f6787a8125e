//! `GET /metrics`: requests by route template and status with their latency, the pool, Stripe webhooks; behind
//! `METRICS_TOKEN` when it is set. The recorder is one per process, so each test reads what its own requests added.

use serde_json::json;
use tests::metrics::{count, sample};
use tests::{TestApp, spawn_app, spawn_app_with};

async fn scrape(app: &TestApp) -> String {
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    response.text().await.unwrap()
}

#[tokio::test]
async fn requests_are_counted_by_route_template_and_status_with_their_latency() {
    let app = spawn_app().await;
    let alice = app.register("alice@example.com").await;
    let tenant = app.create_tenant(&alice, "alpha").await;
    let stranger = uuid::Uuid::now_v7();
    let me = [("method", "GET"), ("route", "/v1/me"), ("status", "200")];
    let missing = [("method", "GET"), ("route", "/v1/tenants/{tenant_id}"), ("status", "404")];
    let unmatched = [("method", "GET"), ("route", "unmatched"), ("status", "404")];
    let before = scrape(&app).await;

    for _ in 0..3 {
        assert_eq!(app.get_me(&alice).await.status(), 200);
    }
    assert_eq!(app.get_tenant(&alice, stranger).await.status(), 404);
    assert_eq!(app.get_tenant(&alice, tenant).await.status(), 200);
    assert_eq!(app.get(&format!("/v1/nothing/{stranger}")).await.status(), 404);

    let after = scrape(&app).await;
    // At least: the tests of this binary share the recorder and may run at the same time.
    assert!(count(&after, "http_requests_total", &me) - count(&before, "http_requests_total", &me) >= 3.0);
    assert!(count(&after, "http_requests_total", &missing) - count(&before, "http_requests_total", &missing) >= 1.0);
    assert!(count(&after, "http_requests_total", &unmatched) >= 1.0);
    // A histogram with fixed buckets: every request of the route is in the +Inf bucket, and in the count.
    let mut bucket: Vec<(&str, &str)> = me.to_vec();
    bucket.push(("le", "+Inf"));
    let in_inf = count(&after, "http_request_duration_seconds_bucket", &bucket);
    assert_eq!(in_inf, count(&after, "http_request_duration_seconds_count", &me));
    assert!(in_inf >= 3.0);
    bucket.pop();
    bucket.push(("le", "0.001"));
    assert!(sample(&after, "http_request_duration_seconds_bucket", &bucket).is_some(), "1 ms bucket");
    // Paths are never labels: no id appears.
    assert!(!after.contains(&stranger.to_string()) && !after.contains(&tenant.to_string()));
    // The pool.
    assert!(sample(&after, "db_pool_connections", &[("state", "idle")]).is_some());
    assert!(sample(&after, "db_pool_connections", &[("state", "in_use")]).is_some());
    assert_eq!(sample(&after, "db_pool_max_connections", &[]), Some(4.0));
    assert!(sample(&after, "db_pool_waiting", &[]).is_some_and(|w| w >= 0.0));
}

#[tokio::test]
async fn with_a_metrics_token_only_the_scraper_that_sends_it_gets_the_metrics() {
    let app = spawn_app_with(|s| s.metrics_token = Some("scrape-secret-0123456789".into())).await;
    let anonymous = app.get("/metrics").await;
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["content-type"], "application/problem+json");
    let wrong = app.client.get(app.url("/metrics")).bearer_auth("scrape-secret-012345678").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let right = app.client.get(app.url("/metrics")).bearer_auth("scrape-secret-0123456789").send().await.unwrap();
    assert_eq!(right.status(), 200);
    assert!(right.text().await.unwrap().contains("http_requests_total"));
}

#[tokio::test]
async fn stripe_webhooks_are_counted_by_outcome() {
    let app = spawn_app_with(|s| s.stripe_webhook_secrets = Some("whsec_metrics_test".into())).await;
    let refused = [("outcome", "refused")];
    let before = count(&scrape(&app).await, "stripe_webhooks_total", &refused);
    let response = app
        .client
        .post(app.url("/v1/webhooks/stripe"))
        .header("stripe-signature", "t=1,v1=00")
        .json(&json!({"id": "evt_1", "type": "customer.subscription.updated"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(count(&scrape(&app).await, "stripe_webhooks_total", &refused) - before >= 1.0);
}

/// Every metric the Grafana dashboard queries is one the code records (as a string literal in a binary's sources),
/// and the README's metrics table names it: the dashboard cannot silently draw nothing.
#[test]
fn the_grafana_dashboard_queries_only_metrics_the_code_records() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("docs/grafana-dashboard.json")).unwrap()).unwrap();
    let mut sources = String::new();
    for dir in ["api/src", "worker/src", "entity/src", "testio/src", "common/src"] {
        for entry in walk(&root.join(dir)) {
            sources.push_str(&std::fs::read_to_string(entry).unwrap());
        }
    }
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let name = regex::Regex::new(r"\b(http|db|sync|testio|stripe|audit|idempotency)_[a-z_]+").unwrap();
    let mut seen = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for found in name.find_iter(expr) {
                let metric = ["_bucket", "_count", "_sum"]
                    .iter()
                    .fold(found.as_str(), |m, suffix| m.strip_suffix(suffix).unwrap_or(m));
                assert!(
                    sources.contains(&format!("\"{metric}\"")),
                    "{metric} (panel {}) is recorded nowhere",
                    panel["title"]
                );
                assert!(readme.contains(&format!("`{metric}`")), "the README does not list {metric}");
                seen += 1;
            }
        }
    }
    assert!(seen >= 16, "{seen}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}
