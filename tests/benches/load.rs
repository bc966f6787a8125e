//! Load and faults (issue 15): a realistic mix against the API as production runs it, for `BENCH_SECS` (180), with
//! zero errors expected, the API's resident memory at the start and the end, and p50/p95/p99 per route.
//!
//! - **Seed**: `BENCH_TENANTS` (5) tenants, each with its owner, an API key and a TestIO connection to the simulator
//!   (3 products, 60 tests, 2 bugs each), synced by the worker (in this process) before the load starts.
//! - **Mix**, `BENCH_CLIENTS` (16) keep-alive clients, each from its own address (through `X-Forwarded-For`, the API
//!   trusting the loopback as its proxy), each request drawn by weight: mirror reads with an API key (tests, bugs,
//!   products, stats, a test's detail), tenant and member reads, `/v1/me`, audit-log searches, renames, API keys made
//!   with an `Idempotency-Key` (and revoked), invitations, sign-ins, sync requests. The rate limits are on (high
//!   enough for the mix), so every request pays for its bucket.
//! - **Faults** (`BENCH_FAULTS=1`, what `scripts/faults` runs): at a third of the run Postgres is restarted for real
//!   (`BENCH_PG_RESTART`, default `pg_ctlcluster <newest> main restart`), at two thirds the API is killed with SIGKILL
//!   and started again on the same port. While either lasts, 503 and refused connections are expected and counted
//!   apart; once the service is back, every write it acknowledged (API keys, renames) must be in the database, each
//!   with its audit row, and no change may be half-written.
//!
//! The API runs as a child process (this executable, release build): one HTTP worker per core, a pool of 10. Results
//! are printed and written to `target/bench-load.md`. The run fails (exit 1) on any error, or when the API's resident
//! memory grew by more than half between the first and the last 10% of the run.
//!
//! Run: `cargo bench -p tests --bench load` (`BENCH_SECS=180 BENCH_CLIENTS=16 BENCH_TENANTS=5 BENCH_FAULTS=0`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};
use tests::bench::{ChildApi, percentile};
use tests::testio_sim::{Account, Shape, Simulator};
use tokio_util::sync::CancellationToken;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One tenant of the load: its id, its owner's access token, an API key.
#[derive(Clone)]
struct Tenant {
    id: uuid::Uuid,
    owner_email: String,
    owner_token: String,
    api_key: String,
    test_ids: Vec<i64>,
}

/// What the clients saw.
#[derive(Default)]
struct Tally {
    /// Latencies by route template.
    latencies: BTreeMap<&'static str, Vec<Duration>>,
    /// Unexpected answers (status or transport failure) by route, with a sample.
    errors: BTreeMap<&'static str, (usize, String)>,
    /// Answers during a fault window that were 503 or a refused connection.
    during_faults: usize,
    /// API keys the API acknowledged (and whether the client revoked them since).
    keys: Vec<(uuid::Uuid, String)>,
    /// Acknowledged renames, per tenant, in order.
    renames: BTreeMap<uuid::Uuid, Vec<String>>,
}

struct Load {
    http: reqwest::Client,
    base: String,
    tenants: Vec<Tenant>,
    tally: Mutex<Tally>,
    /// A fault is being injected (or its recovery awaited): 503 and refused connections are expected.
    faulting: AtomicBool,
}

/// The API's resident memory, in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

impl Load {
    /// Sends one request of the route `route`, expecting `expected`; records its latency or its error.
    async fn send(&self, route: &'static str, request: reqwest::RequestBuilder, expected: &[u16]) -> Option<Value> {
        let started = Instant::now();
        let answer = request.send().await;
        let elapsed = started.elapsed();
        let faulting = self.faulting.load(Ordering::SeqCst);
        let outcome = match answer {
            Ok(response) if expected.contains(&response.status().as_u16()) => {
                Ok(response.json::<Value>().await.unwrap_or(Value::Null))
            }
            Ok(response) if faulting && response.status() == 503 => Err(None),
            Err(e) if faulting && (e.is_connect() || e.is_request() || e.is_body()) => Err(None),
            Ok(response) => Err(Some(format!("{} {}", response.status(), response.text().await.unwrap_or_default()))),
            Err(e) => Err(Some(e.to_string())),
        };
        let mut tally = self.tally.lock().unwrap();
        match outcome {
            Ok(body) => {
                tally.latencies.entry(route).or_default().push(elapsed);
                Some(body)
            }
            Err(None) => {
                tally.during_faults += 1;
                None
            }
            Err(Some(what)) => {
                let entry = tally.errors.entry(route).or_insert((0, what));
                entry.0 += 1;
                None
            }
        }
    }

    /// One client: requests drawn by weight until `stop`.
    async fn client(self: Arc<Self>, n: usize, stop: CancellationToken) {
        let address = format!("198.18.{}.{}", n / 250, n % 250 + 1);
        let mut rng = tests::testio_sim::Rng::new(n as u64 + 1);
        let mut k = 0_u64;
        while !stop.is_cancelled() {
            k += 1;
            let t = &self.tenants[rng.below(self.tenants.len() as u64) as usize];
            let base = &self.base;
            let get = |path: String, token: &str| {
                self.http.get(format!("{base}{path}")).bearer_auth(token).header("x-forwarded-for", &address)
            };
            let post = |path: String, token: &str, body: Value| {
                self.http
                    .post(format!("{base}{path}"))
                    .bearer_auth(token)
                    .header("x-forwarded-for", &address)
                    .json(&body)
            };
            let id = t.id;
            match rng.below(100) {
                0..=11 => {
                    let q = ["tests?limit=20", "tests?limit=20&sort=-end_at", "tests?q=login&limit=20"]
                        [rng.below(3) as usize];
                    self.send("GET /tenants/{id}/tests", get(format!("/v1/tenants/{id}/{q}"), &t.api_key), &[200])
                        .await;
                }
                12..=31 => {
                    let (route, query) = [
                        ("GET /tenants/{id}/bugs", "bugs?limit=20"),
                        ("GET /tenants/{id}/bugs", "bugs?limit=20&sort=severity"),
                        ("GET /tenants/{id}/products", "products"),
                        ("GET /tenants/{id}/stats", "stats"),
                    ][rng.below(4) as usize];
                    self.send(route, get(format!("/v1/tenants/{id}/{query}"), &t.api_key), &[200]).await;
                }
                32..=37 => {
                    let test = t.test_ids[rng.below(t.test_ids.len() as u64) as usize];
                    self.send(
                        "GET /tenants/{id}/tests/{test}",
                        get(format!("/v1/tenants/{id}/tests/{test}"), &t.api_key),
                        &[200],
                    )
                    .await;
                }
                38..=45 => {
                    self.send("GET /tenants/{id}", get(format!("/v1/tenants/{id}"), &t.owner_token), &[200]).await;
                }
                46..=51 => {
                    self.send(
                        "GET /tenants/{id}/members",
                        get(format!("/v1/tenants/{id}/members"), &t.owner_token),
                        &[200],
                    )
                    .await;
                }
                52..=59 => {
                    self.send("GET /me", get("/v1/me".to_owned(), &t.owner_token), &[200]).await;
                }
                60..=67 => {
                    let q = ["action=tenant.*", "q=renamed", "action=api_key.create&limit=10"][rng.below(3) as usize];
                    self.send(
                        "GET /tenants/{id}/audit-logs",
                        get(format!("/v1/tenants/{id}/audit-logs?{q}"), &t.owner_token),
                        &[200],
                    )
                    .await;
                }
                68..=75 => {
                    let name = format!("renamed {n}-{k}");
                    let request = self
                        .http
                        .patch(format!("{base}/v1/tenants/{id}"))
                        .bearer_auth(&t.owner_token)
                        .header("x-forwarded-for", &address)
                        .json(&json!({ "name": name }));
                    // Renames of one tenant by several clients interleave: only single-client chains are checked.
                    if self.send("PATCH /tenants/{id}", request, &[200]).await.is_some() {
                        self.tally.lock().unwrap().renames.entry(id).or_default().push(name);
                    }
                }
                76..=83 => {
                    let key = format!("load-{n}-{k}");
                    let request = post(
                        format!("/v1/tenants/{id}/api-keys"),
                        &t.owner_token,
                        json!({"name": key, "role": "viewer"}),
                    )
                    .header("idempotency-key", &key);
                    if let Some(created) = self.send("POST /tenants/{id}/api-keys", request, &[201]).await {
                        let key_id = created["api_key"]["id"].as_str().unwrap_or_default().to_owned();
                        self.tally.lock().unwrap().keys.push((id, key_id.clone()));
                        let revoke = self
                            .http
                            .delete(format!("{base}/v1/tenants/{id}/api-keys/{key_id}"))
                            .bearer_auth(&t.owner_token)
                            .header("x-forwarded-for", &address);
                        self.send("DELETE /tenants/{id}/api-keys/{key}", revoke, &[204]).await;
                    }
                }
                84..=88 => {
                    let body = json!({"email": format!("invitee-{n}-{k}@example.com"), "role": "member"});
                    self.send(
                        "POST /tenants/{id}/invitations",
                        post(format!("/v1/tenants/{id}/invitations"), &t.owner_token, body),
                        &[201],
                    )
                    .await;
                }
                89..=91 => {
                    let body = json!({"email": t.owner_email, "password": "load test password"});
                    let request =
                        self.http.post(format!("{base}/v1/auth/login")).header("x-forwarded-for", &address).json(&body);
                    self.send("POST /auth/login", request, &[200]).await;
                }
                92..=94 => {
                    self.send(
                        "POST /tenants/{id}/sync-runs",
                        post(format!("/v1/tenants/{id}/sync-runs"), &t.owner_token, json!({})),
                        &[202],
                    )
                    .await;
                }
                _ => {
                    self.send(
                        "GET /tenants/{id}/sync-runs",
                        get(format!("/v1/tenants/{id}/sync-runs?limit=20"), &t.owner_token),
                        &[200],
                    )
                    .await;
                }
            }
        }
    }
}

fn api_settings(url: &str) -> api::config::Settings {
    let mut settings = tests::app::test_settings_for(url);
    settings.workers = 0;
    settings.database_max_connections = 10;
    settings.database_acquire_timeout_ms = 3000;
    settings.trusted_proxies = "127.0.0.1".into();
    settings.port = env_usize("BENCH_API_PORT", 0) as u16;
    settings.testio_allowed_base_urls = std::env::var("BENCH_SIM_BASE").unwrap_or_default();
    settings.rate_limit_per_ip_per_minute = 100_000;
    settings.rate_limit_per_ip_burst = 10_000;
    settings.rate_limit_per_tenant_per_minute = 1_000_000;
    settings.rate_limit_per_tenant_burst = 100_000;
    settings
}

#[tokio::main]
async fn main() {
    if tests::bench::serve_if_child(api_settings).await {
        return;
    }
    let secs = env_usize("BENCH_SECS", 180) as u64;
    let clients = env_usize("BENCH_CLIENTS", 16);
    let tenant_count = env_usize("BENCH_TENANTS", 5);
    let faults = std::env::var("BENCH_FAULTS").is_ok_and(|v| v == "1");

    let db = tests::TestDatabase::migrated().await;
    let sim = Simulator::start().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // The API on a fixed port, so that a process started after a kill is found where the clients look.
    let spawn = || {
        ChildApi::spawn_with(
            &db.runtime_url(),
            &[("BENCH_API_PORT", port.to_string()), ("BENCH_SIM_BASE", sim.base_url.clone())],
        )
    };
    let mut api = spawn();
    let base = api.base();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();

    // The worker, in this process, on the simulator.
    let stop_worker = CancellationToken::new();
    let mut worker_settings = tests::sync::worker_settings(&db);
    worker_settings.allowed_base_urls = sim.base_url.clone();
    worker_settings.concurrency = 2;
    let worker = worker::Worker::build(&worker_settings, stop_worker.clone()).await.unwrap();
    let worker = tokio::spawn(worker.run());

    // Seed.
    let seeded = Instant::now();
    let mut tenants = Vec::new();
    for i in 0..tenant_count {
        let email = format!("owner{i}@example.com");
        let address = format!("198.19.0.{}", i + 1);
        let token = tests::bench::register_as(&http, &base, &email, "load test password", Some(&address)).await;
        let id =
            tests::bench::create_tenant(&http, &base, &token, &format!("Tenant {i}"), &format!("tenant-{i}")).await;
        let api_key = tests::bench::create_api_key(&http, &base, &token, id, "reader").await;
        let testio_token = format!("load-token-{i:04}");
        sim.add_account(
            &testio_token,
            Account::generate(100 + i as u64, Shape { products: 3, tests_per_product: 20, bugs_per_test: 2 }),
        );
        let connected = http
            .put(format!("{base}/v1/tenants/{id}/testio-connection"))
            .bearer_auth(&token)
            .json(&json!({"token": testio_token, "base_url": sim.base_url}))
            .send()
            .await
            .unwrap();
        assert_eq!(connected.status(), 200, "{}", connected.text().await.unwrap());
        tenants.push(Tenant { id, owner_email: email, owner_token: token, api_key, test_ids: Vec::new() });
    }
    db.wait_until_count(
        "SELECT count(DISTINCT tenant_id) FROM sync_runs WHERE status = 'succeeded'",
        tenant_count as i64,
    )
    .await;
    let superuser = db.superuser().await;
    for tenant in &mut tenants {
        let rows = superuser
            .query_all_raw(Statement::from_string(
                DbBackend::Postgres,
                format!("SELECT testio_id FROM testio_tests WHERE tenant_id = '{}'", tenant.id),
            ))
            .await
            .unwrap();
        tenant.test_ids = rows.iter().map(|r| r.try_get_by_index::<i64>(0).unwrap()).collect();
    }
    println!("seeded {tenant_count} tenants in {:.1} s", seeded.elapsed().as_secs_f64());

    // Load.
    let load = Arc::new(Load { http, base, tenants, tally: Mutex::default(), faulting: AtomicBool::new(false) });
    let stop = CancellationToken::new();
    let tasks: Vec<_> = (0..clients).map(|n| tokio::spawn(load.clone().client(n, stop.clone()))).collect();
    let started = Instant::now();
    let mut rss = Vec::new();
    let mut killed = false;
    let mut restarted = false;
    while started.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        rss.push((started.elapsed(), rss_mib(api.pid())));
        let at = started.elapsed().as_secs_f64() / secs as f64;
        if faults && !restarted && at > 1.0 / 3.0 {
            restarted = true;
            load.faulting.store(true, Ordering::SeqCst);
            let command = std::env::var("BENCH_PG_RESTART").unwrap_or_else(|_| {
                let version = std::fs::read_dir("/etc/postgresql")
                    .ok()
                    .and_then(|d| d.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).max())
                    .unwrap_or_else(|| "15".to_owned());
                format!("pg_ctlcluster --skip-systemctl-redirect {version} main restart")
            });
            println!("restarting Postgres: {command}");
            let status = std::process::Command::new("sh").args(["-c", &command]).status().unwrap();
            assert!(status.success(), "the restart failed");
            wait_ready(&load).await;
            load.faulting.store(false, Ordering::SeqCst);
            println!("Postgres back, the API ready again at {:.1} s", started.elapsed().as_secs_f64());
        }
        if faults && !killed && at > 2.0 / 3.0 {
            killed = true;
            load.faulting.store(true, Ordering::SeqCst);
            println!("killing the API (SIGKILL) and starting it again");
            api.kill();
            api = spawn();
            wait_ready(&load).await;
            load.faulting.store(false, Ordering::SeqCst);
        }
    }
    stop.cancel();
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    stop_worker.cancel();
    worker.await.unwrap().unwrap();

    // Report.
    let tally = std::mem::take(&mut *load.tally.lock().unwrap());
    let total: usize = tally.latencies.values().map(Vec::len).sum();
    let errors: usize = tally.errors.values().map(|e| e.0).sum();
    let window = (rss.len() / 10).max(1);
    let mean = |s: &[(Duration, f64)]| s.iter().map(|(_, m)| m).sum::<f64>() / s.len().max(1) as f64;
    // Without faults, the first and last tenth of the run; with faults, the process that ran last.
    let start_rss = mean(&rss[..window.min(rss.len())]);
    let end_rss = mean(&rss[rss.len().saturating_sub(window)..]);
    let mut report = format!(
        "Load: {clients} clients, {tenant_count} tenants, {:.0} s{}: {total} requests ({:.0}/s), {errors} errors{}; API RSS {start_rss:.0} MiB at the start, {end_rss:.0} MiB at the end\n\n| route | requests | p50 | p95 | p99 |\n|---|---|---|---|---|\n",
        elapsed.as_secs_f64(),
        if faults { " with a Postgres restart and an API SIGKILL" } else { "" },
        total as f64 / elapsed.as_secs_f64(),
        if faults {
            format!(", {} answers 503 or refused while a fault lasted", tally.during_faults)
        } else {
            String::new()
        },
    );
    for (route, latencies) in &tally.latencies {
        let mut sorted = latencies.clone();
        sorted.sort();
        let ms = |p| percentile(&sorted, p).as_secs_f64() * 1e3;
        report.push_str(&format!(
            "| `{route}` | {} | {:.1} ms | {:.1} ms | {:.1} ms |\n",
            sorted.len(),
            ms(0.5),
            ms(0.95),
            ms(0.99)
        ));
    }
    for (route, (count, sample)) in &tally.errors {
        report.push_str(&format!("\nerror: {count} × {route}: {sample}"));
    }
    println!("{report}");
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    std::fs::create_dir_all(&target).ok();
    std::fs::write(target.join(if faults { "bench-faults.md" } else { "bench-load.md" }), &report).ok();

    // Nothing acknowledged is lost; nothing is half-written.
    let mut failures = Vec::new();
    for (tenant, key) in &tally.keys {
        let found = db
            .count(&format!(
                "SELECT count(*) FROM api_keys k JOIN audit_logs a ON a.tenant_id = k.tenant_id AND a.target_id = k.id::text
                  AND a.action = 'api_key.create' WHERE k.tenant_id = '{tenant}' AND k.id = '{key}'"
            ))
            .await;
        if found != 1 {
            failures.push(format!("the acknowledged key {key} (with its audit row) is missing"));
        }
    }
    let orphans = db
        .count(
            "SELECT (SELECT count(*) FROM api_keys k WHERE NOT EXISTS (SELECT 1 FROM audit_logs a WHERE a.tenant_id =
                     k.tenant_id AND a.action = 'api_key.create' AND a.target_id = k.id::text))
                  + (SELECT count(*) FROM audit_logs a WHERE a.action = 'api_key.create' AND NOT EXISTS
                     (SELECT 1 FROM api_keys k WHERE k.tenant_id = a.tenant_id AND k.id::text = a.target_id))",
        )
        .await;
    if orphans != 0 {
        failures.push(format!("{orphans} API keys without their audit row or audit rows without their key"));
    }
    let renamed = db.count("SELECT count(*) FROM audit_logs WHERE action = 'tenant.update'").await;
    let acknowledged_renames: usize = tally.renames.values().map(Vec::len).sum();
    if (renamed as usize) < acknowledged_renames {
        failures.push(format!("{acknowledged_renames} renames acknowledged, {renamed} audited"));
    }
    if errors > 0 {
        failures.push(format!("{errors} errors"));
    }
    if !faults && end_rss > start_rss * 1.5 {
        failures.push(format!("the API's memory grew from {start_rss:.0} to {end_rss:.0} MiB"));
    }
    drop(api);
    if !failures.is_empty() {
        eprintln!("FAILED: {}", failures.join("; "));
        std::process::exit(1);
    }
    println!("ok: zero errors, every acknowledged write there with its audit row");
}

/// Waits until the API answers `/readyz` (the database reachable through it).
async fn wait_ready(load: &Load) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = load.http.get(format!("{}/readyz", load.base)).send().await.map(|r| r.status() == 200);
        if ready.unwrap_or(false) {
            // A moment for the pool to replace its dead connections at the clients' pace.
            tokio::time::sleep(Duration::from_millis(500)).await;
            return;
        }
        assert!(Instant::now() < deadline, "the service did not come back within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
