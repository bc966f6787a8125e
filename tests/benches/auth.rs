//! Authentication benchmark: login latency (argon2id verification plus the session writes) and the cost that
//! authentication and the tenant check add to a request. Runs the real server against the local Postgres, like the
//! tests; requests are sequential from one client, so the figures are latencies, not throughput.
//!
//! Run: `cargo bench -p tests --bench auth` (optionally `BENCH_LOGINS=200 BENCH_REQUESTS=5000`).

use std::time::{Duration, Instant};

use serde_json::json;
use tests::spawn_app;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn report(name: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "{name:<44} n={:<5} mean={:>8.3} ms  p50={:>8.3} ms  p95={:>8.3} ms  p99={:>8.3} ms",
        samples.len(),
        mean.as_secs_f64() * 1e3,
        percentile(&samples, 0.50).as_secs_f64() * 1e3,
        percentile(&samples, 0.95).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
    );
    percentile(&samples, 0.50)
}

async fn time_requests(n: usize, mut send: impl AsyncFnMut() -> reqwest::StatusCode) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let status = send().await;
        samples.push(started.elapsed());
        assert!(status.is_success(), "benchmark request failed with {status}");
    }
    samples
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let logins = env_usize("BENCH_LOGINS", 100);
    let requests = env_usize("BENCH_REQUESTS", 2000);
    let app = spawn_app().await;
    let user = app.register("bench@example.com").await;
    let tenant = app.create_tenant(&user, "bench").await;
    let key = app.create_api_key(&user, tenant, "bench", "viewer").await["secret"].as_str().unwrap().to_owned();
    println!("TestIO Hub auth benchmark: {} cores, {logins} logins, {requests} requests per row", num_cpus());

    let body = json!({ "email": user.email, "password": user.password });
    let samples = time_requests(logins, async || app.post_login(body.clone()).await.status()).await;
    report("POST /v1/auth/login", samples);

    // Warm the pool and the connection before the comparisons.
    for _ in 0..50 {
        app.get("/livez").await;
        app.get_tenant(&user, tenant).await;
    }
    let base = report(
        "GET /livez (no auth, no database)",
        time_requests(requests, async || app.get("/livez").await.status()).await,
    );
    let me = report(
        "GET /v1/me (JWT + session + memberships)",
        time_requests(requests, async || app.get_me(&user).await.status()).await,
    );
    let jwt = report(
        "GET /v1/tenants/{id} with a JWT",
        time_requests(requests, async || app.get_tenant(&user, tenant).await.status()).await,
    );
    let api_key = report(
        "GET /v1/tenants/{id} with an API key",
        time_requests(requests, async || app.get_tenant(&key, tenant).await.status()).await,
    );
    println!(
        "authentication + tenant check over /livez (p50): JWT {:.3} ms, API key {:.3} ms, /v1/me {:.3} ms",
        (jwt.saturating_sub(base)).as_secs_f64() * 1e3,
        (api_key.saturating_sub(base)).as_secs_f64() * 1e3,
        (me.saturating_sub(base)).as_secs_f64() * 1e3,
    );
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
