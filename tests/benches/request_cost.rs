//! Per-request cost benchmark (issue 12): throughput and latency of a tenant read,
//! `GET /v1/tenants/{id}/sync-runs?limit=50`, at `BENCH_CLIENTS` (32) concurrent clients, signed in with a JWT and
//! with an API key; and, against the same database in the same run, what Postgres alone does with the same work
//! through pgbench as the runtime role (`BEGIN; set_config; the same select; COMMIT`, prepared statements, first
//! with as many connections as the API's pool, then with one per client).
//!
//! The API runs as a child process with production settings (one HTTP worker per core, a pool of 10), like
//! `auth_burst`. Every figure shares the machine with the load generator and Postgres, so compare rows of one run, or
//! runs on one machine.
//!
//! With `BENCH_DB_LATENCY_MS=n` the API and pgbench reach Postgres through a proxy that delays every packet by n ms
//! each way (a database 2n ms away, as across availability zones): then round trips, not CPU, decide the figures.
//!
//! Run: `cargo bench -p tests --bench request_cost` (`BENCH_CLIENTS=32 BENCH_SECONDS=10 BENCH_DB_LATENCY_MS=0`).

use std::time::{Duration, Instant};

/// The API's pool in production (`DATABASE_MAX_CONNECTIONS`'s default).
const POOL: usize = 10;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Load {
    ok: usize,
    failed: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

/// `clients` loops sending `GET url` with `bearer` for `duration` (after a second of warm-up that is not counted).
async fn load(url: &str, bearer: &str, clients: usize, duration: Duration) -> Load {
    let http = reqwest::Client::builder().pool_max_idle_per_host(clients).build().unwrap();
    let send = |http: reqwest::Client, url: String, bearer: String, until: Instant| async move {
        let (mut ok, mut failed, mut latencies) = (0, 0, Vec::new());
        while Instant::now() < until {
            let started = Instant::now();
            let answered = match http.get(&url).bearer_auth(&bearer).send().await {
                Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                Err(_) => false,
            };
            if answered {
                ok += 1
            } else {
                failed += 1
            }
            latencies.push(started.elapsed());
        }
        (ok, failed, latencies)
    };
    let warm_up = Instant::now() + Duration::from_secs(1);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        tasks.spawn(send(http.clone(), url.to_owned(), bearer.to_owned(), warm_up));
    }
    tasks.join_all().await;

    let started = Instant::now();
    let until = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        tasks.spawn(send(http.clone(), url.to_owned(), bearer.to_owned(), until));
    }
    let mut all = Load { ok: 0, failed: 0, elapsed: Duration::ZERO, latencies: Vec::new() };
    for (ok, failed, latencies) in tasks.join_all().await {
        all.ok += ok;
        all.failed += failed;
        all.latencies.extend(latencies);
    }
    all.elapsed = started.elapsed();
    all.latencies.sort();
    all
}

fn report(name: &str, load: &Load) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "| {name} | {:.0} | {} | {:.2} | {:.2} | {:.2} |",
        load.ok as f64 / load.elapsed.as_secs_f64(),
        load.failed,
        ms(percentile(&load.latencies, 0.50)),
        ms(percentile(&load.latencies, 0.95)),
        ms(percentile(&load.latencies, 0.99)),
    );
}

/// Transactions per second of `script` through pgbench (prepared statements, as sqlx sends them).
fn pgbench(url: &str, script: &str, clients: usize, seconds: usize) -> String {
    let path = std::env::temp_dir().join(format!("request_cost_{}.sql", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, script).unwrap();
    let output = std::process::Command::new("pgbench")
        .args(["-n", "-M", "prepared", "-j", "2"])
        .args(["-c", &clients.to_string(), "-T", &seconds.to_string(), "-f"])
        .arg(&path)
        .arg(url)
        .output();
    let _ = std::fs::remove_file(&path);
    let output = match output {
        Ok(output) => output,
        Err(e) => return format!("pgbench did not run: {e}"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let tps = stdout.lines().find(|l| l.starts_with("tps = ")).map(|l| l.trim_start_matches("tps = "));
    let latency = stdout.lines().find(|l| l.starts_with("latency average = "));
    match (tps, latency) {
        (Some(tps), Some(latency)) => format!("{tps}, {latency}"),
        _ => format!("pgbench failed: {}", String::from_utf8_lossy(&output.stderr).trim()),
    }
}

/// The user (`sub`) and session (`sid`) an access token names.
fn claims(token: &str) -> (String, String) {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    (json["sub"].as_str().unwrap().to_owned(), json["sid"].as_str().unwrap().to_owned())
}

#[tokio::main]
async fn main() {
    let child = tests::bench::serve_if_child(|url| {
        let mut settings = tests::app::test_settings_for(url);
        settings.workers = 0;
        settings.database_max_connections = POOL as u32;
        settings.database_acquire_timeout_ms = 3000;
        settings
    });
    if child.await {
        return;
    }
    let clients = env_usize("BENCH_CLIENTS", 32);
    let seconds = env_usize("BENCH_SECONDS", 10);
    let latency = Duration::from_millis(env_usize("BENCH_DB_LATENCY_MS", 0) as u64);
    let db = tests::TestDatabase::migrated().await;
    let proxy = tests::proxy::TcpProxy::to_postgres_with_latency(latency).await;
    let database_url = if latency.is_zero() { db.runtime_url() } else { proxy.route(&db.runtime_url()) };
    let api = tests::bench::ChildApi::spawn(&database_url);
    let base = api.base();
    let http = reqwest::Client::new();
    let token = tests::bench::register(&http, &base).await;
    let tenant = tests::bench::create_tenant(&http, &base, &token, "Bench", "bench").await;
    let key = tests::bench::create_api_key(&http, &base, &token, tenant, "bench").await;
    {
        use sea_orm::ConnectionTrait;
        let sql = format!(
            "INSERT INTO sync_runs (tenant_id, id, trigger, status, started_at, finished_at, requests, pages)
             SELECT '{tenant}', gen_random_uuid(), 'schedule', 'succeeded', now() - i * interval '1 hour',
                    now() - i * interval '1 hour' + interval '1 minute', 12, 3
               FROM generate_series(1, 60) AS i"
        );
        db.superuser().await.execute_unprepared(&sql).await.unwrap();
    }

    let url = format!("{base}/v1/tenants/{tenant}/sync-runs?limit=50");
    let duration = Duration::from_secs(seconds as u64);
    println!(
        "GET /v1/tenants/{{id}}/sync-runs?limit=50, {clients} clients, {seconds} s each, {} cores, API pool {POOL}, \
         database round trip +{} ms\n",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        2 * latency.as_millis()
    );
    println!("| caller | requests/s | failed | p50 ms | p95 ms | p99 ms |");
    println!("|---|---|---|---|---|---|");
    let jwt = load(&url, &token, clients, duration).await;
    report("member, JWT", &jwt);
    let api_key = load(&url, &key, clients, duration).await;
    report("API key", &api_key);

    let select = "SELECT tenant_id, id, trigger, full_sync, status, requested_by, worker, created_at, started_at, \
                  finished_at, requests, pages, products, tests_new, tests_updated, tests_deleted, bugs_new, \
                  bugs_updated, bugs_deleted, gaps_opened, gaps_resolved, error, list_pages_read, list_pages_total, \
                  products_verified, verified_through FROM sync_runs ORDER BY id DESC LIMIT 50;";
    let script = format!("BEGIN;\nSELECT set_config('app.tenant_id', '{tenant}', true);\n{select}\nCOMMIT;\n");
    println!("\npgbench as the runtime role, `BEGIN; set_config; the select; COMMIT` (4 round trips):");
    for connections in [POOL, clients] {
        println!("  {connections} connections: tps = {}", pgbench(&database_url, &script, connections, seconds));
    }
    // What the API sends now for a member: the binding statement also authenticates (migration 11).
    let (user, session) = claims(&token);
    let script = format!(
        "BEGIN;\nSELECT session_active, user_active, role FROM app_authorize_user('{tenant}', '{user}', '{session}');\n\
         {select}\nCOMMIT;\n"
    );
    println!("pgbench, `BEGIN; app_authorize_user(..); the select; COMMIT` (4 round trips):");
    for connections in [POOL, clients] {
        println!("  {connections} connections: tps = {}", pgbench(&database_url, &script, connections, seconds));
    }
    drop(api);
}
