//! Audit-log benchmark (issue 13), against the API as a separate release process (production settings: one HTTP
//! worker per core, a pool of 10):
//!
//! 1. **Seed** (as the superuser, `INSERT .. SELECT generate_series`, the log's secondary indexes dropped for the load
//!    and rebuilt from their own definitions): `BENCH_AUDIT_ROWS` (1,000,000) events over 100 tenants, the largest
//!    with `BENCH_AUDIT_BIG` (300,000), with realistic spreads of actions, actors, targets, outcomes and time, and a
//!    rare word for the text search; then `VACUUM ANALYZE`.
//! 2. **Filters**: for each single filter of the review API (none, an action, an action prefix, an actor, an actor
//!    type, a target, an outcome, a time window, a rare and a common word), 32 keep-alive clients ask the largest
//!    tenant for the first page and for a page 1,000 events deep (through `next_cursor`) for `BENCH_SECS` (10), with
//!    row-level security as always; then pgbench, as the runtime role, runs the very statements the data layer sent
//!    for the same requests (recorded through sea-orm's metric callback) in `BEGIN; set_config; ..; COMMIT`.
//! 3. **Export**: the largest tenant's whole log as CSV, streamed; the API's resident memory is sampled every 50 ms.
//! 4. **Sign-ins with the chain on and off**: 16 clients sign in for `BENCH_SECS`, once with nobody sealing and once
//!    with a sealer sealing every 100 ms meanwhile, so the chain cannot slow the platform tenant's writers.
//!
//! Run: `cargo bench -p tests --bench audit` (`BENCH_AUDIT_ROWS`, `BENCH_AUDIT_BIG`, `BENCH_SECS`, `BENCH_CLIENTS`,
//! `BENCH_ONLY=filters,export,logins`, `BENCH_KEEP_DB=1`). Writes `target/bench-audit.md`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use entity::audit::query::{self as aq, AuditFilter};
use entity::audit_logs::{ActorType, Outcome};
use entity::{TenantId, TenantTxn};
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use serde_json::{Value, json};
use tests::bench::{PgScript, Recorder, finish_pgbench, percentile, pgbench};
use uuid::Uuid;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One request of a filter's mix: its query string, and the statements the data layer sends for it.
struct Variant {
    query: String,
    statements: Vec<Statement>,
}

#[tokio::main]
async fn main() {
    let child = tests::bench::serve_if_child(|url| {
        let mut settings = tests::app::test_settings_for(url);
        settings.workers = 0;
        settings.database_max_connections = 10;
        settings.database_acquire_timeout_ms = 3000;
        settings.access_token_ttl_secs = 3600;
        // 16 sign-ins of one account at once count as attempts in flight: not a brute force.
        settings.login_max_failures_per_account_and_ip = 1_000_000;
        settings.login_max_failures_per_account = 1_000_000;
        settings.login_max_failures_per_ip = 1_000_000;
        settings
    });
    if child.await {
        return;
    }
    let db = tests::TestDatabase::migrated().await;
    let api = tests::bench::ChildApi::spawn(&db.runtime_url());
    run(&db, &api).await;
    drop(api);
    if std::env::var_os("BENCH_KEEP_DB").is_some() {
        println!("kept the database {} (drop it with `DROP DATABASE {0}`)", db.name);
        std::mem::forget(db);
    }
}

async fn run(db: &tests::TestDatabase, api: &tests::bench::ChildApi) {
    let only: Option<Vec<String>> =
        std::env::var("BENCH_ONLY").ok().map(|s| s.split(',').map(|w| w.trim().to_owned()).collect());
    let wants = |group: &str| only.as_ref().is_none_or(|o| o.iter().any(|g| g == group));
    let secs = env_usize("BENCH_SECS", 10) as u64;
    let clients = env_usize("BENCH_CLIENTS", 32);
    let rows = env_usize("BENCH_AUDIT_ROWS", 1_000_000) as i64;
    let big = env_usize("BENCH_AUDIT_BIG", 300_000) as i64;
    let base = api.base();
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).timeout(Duration::from_secs(120)).build().unwrap();
    let token = tests::bench::register(&http, &base).await;
    let mut tenants = Vec::new();
    for k in 0..100 {
        tenants.push(
            tests::bench::create_tenant(&http, &base, &token, &format!("Audit {k}"), &format!("audit-{k}")).await,
        );
    }
    let main_tenant = tenants[0];
    let started = Instant::now();
    tests::audit::seed(&db.superuser_url(), &tenants, rows, big).await;
    let seed_time = started.elapsed();
    let mut report = format!(
        "Audit benchmark (`cargo bench -p tests --bench audit`), {}: {rows} events over 100 tenants, the largest with \
         {big}; seeded in {:.0} s. API release build, 2 HTTP workers, pool 10; {clients} clients, {secs} s per phase; \
         pgbench as the runtime role, -M prepared -c {clients} -j 2, the same statements.\n\n",
        chrono::Utc::now().format("%Y-%m-%d"),
        seed_time.as_secs_f64()
    );
    println!("{report}");

    if wants("filters") {
        let table = filters(db, &http, &base, &token, main_tenant, clients, secs).await;
        report.push_str(&table);
    }
    if wants("export") {
        let line = export(&http, &base, &token, main_tenant, api.pid()).await;
        report.push_str(&line);
    }
    if wants("logins") {
        let line = logins(db, &http, &base, secs).await;
        report.push_str(&line);
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-audit.md");
    std::fs::write(&path, &report).unwrap();
    println!("written to {}", path.display());
}

/// A filter of the benchmark: its name, its query parameters and the data layer's filter for them.
type Group = (&'static str, Vec<(&'static str, String)>, AuditFilter);

/// The filters phase: one table row per filter.
async fn filters(
    db: &tests::TestDatabase,
    http: &reqwest::Client,
    base: &str,
    token: &str,
    tenant: Uuid,
    clients: usize,
    secs: u64,
) -> String {
    // An actor and a target of the largest tenant, as the seed made them.
    let superuser = Database::connect(db.superuser_url()).await.unwrap();
    let pick = |sql: String| {
        let superuser = &superuser;
        async move {
            let row = superuser.query_one_raw(Statement::from_string(DbBackend::Postgres, sql)).await.unwrap().unwrap();
            row.try_get_by_index::<String>(0).unwrap()
        }
    };
    let actor: Uuid = pick(format!(
        "SELECT actor_id::text FROM audit_logs WHERE tenant_id = '{tenant}' AND actor_id IS NOT NULL LIMIT 1"
    ))
    .await
    .parse()
    .unwrap();
    let target: Uuid = pick(format!(
        "SELECT target_id FROM audit_logs WHERE tenant_id = '{tenant}' AND target_type = 'member' LIMIT 1"
    ))
    .await
    .parse()
    .unwrap();
    let day = chrono::Utc::now() - chrono::Duration::days(30);
    let groups: Vec<Group> = vec![
        ("no filter", vec![], AuditFilter::default()),
        (
            "action",
            vec![("action", "member.role_change".into())],
            AuditFilter { actions: vec!["member.role_change".into()], ..Default::default() },
        ),
        (
            "action prefix",
            vec![("action", "member.*".into())],
            AuditFilter {
                actions: vec!["member.leave".into(), "member.remove".into(), "member.role_change".into()],
                ..Default::default()
            },
        ),
        ("actor", vec![("actor_id", actor.to_string())], AuditFilter { actor_id: Some(actor), ..Default::default() }),
        (
            "actor type",
            vec![("actor_type", "api_key".into())],
            AuditFilter { actor_types: vec![ActorType::ApiKey], ..Default::default() },
        ),
        (
            "target",
            vec![("target_type", "member".into()), ("target_id", target.to_string())],
            AuditFilter {
                target_type: Some("member".into()),
                target_id: Some(target.to_string()),
                ..Default::default()
            },
        ),
        (
            "outcome",
            vec![("outcome", "denied".into())],
            AuditFilter { outcomes: vec![Outcome::Denied], ..Default::default() },
        ),
        (
            "time window",
            vec![("since", (day - chrono::Duration::days(2)).to_rfc3339()), ("until", day.to_rfc3339())],
            AuditFilter { since: Some(day - chrono::Duration::days(2)), until: Some(day), ..Default::default() },
        ),
        ("q, rare word", vec![("q", "needle".into())], AuditFilter { q: Some("needle".into()), ..Default::default() }),
        (
            "q, common word",
            vec![("q", "person 3".into())],
            AuditFilter { q: Some("person 3".into()), ..Default::default() },
        ),
    ];
    let (recording, recorder) = Recorder::connect(&db.runtime_url()).await;
    let url = db.runtime_url();
    let mut out = String::from(
        "| filter (largest tenant, first page and 1,000 deep, limit 50) | API req/s | p50 ms | p95 ms | p99 ms | errors \
         | pgbench tx/s | pgbench avg ms |\n|---|---|---|---|---|---|---|---|\n",
    );
    for (name, params, filter) in groups {
        // The deep page's cursor, by walking 20 pages as a client would.
        let mut query: Vec<(&str, String)> = params.clone();
        query.push(("limit", "50".into()));
        let mut cursor: Option<String> = None;
        for _ in 0..20 {
            let mut q = query.clone();
            if let Some(c) = &cursor {
                q.push(("cursor", c.clone()));
            }
            let page: Value = http
                .get(format!("{base}/v1/tenants/{tenant}/audit-logs?{}", serde_urlencoded(&q)))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        // The same position for the data layer: where the 1,000th event is.
        let txn = TenantTxn::begin(&recording, TenantId(tenant)).await.unwrap();
        let mut after = None;
        for _ in 0..20 {
            let page = aq::list(&txn, &filter, after, 50).await.unwrap();
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        drop(txn);
        let mut variants = Vec::new();
        for (label, position, cursor) in [("first page", None, None), ("1,000 deep", after, cursor.clone())] {
            if label == "1,000 deep" && cursor.is_none() {
                continue;
            }
            let mut q = query.clone();
            if let Some(c) = cursor {
                q.push(("cursor", c));
            }
            let query_string = serde_urlencoded(&q);
            let txn = TenantTxn::begin(&recording, TenantId(tenant)).await.unwrap();
            recorder.clear();
            aq::list(&txn, &filter, position, 50).await.unwrap();
            let statements = recorder.take();
            drop(txn);
            variants.push(Variant { query: query_string, statements });
        }
        let load = load(http, base, token, tenant, &variants, clients, secs).await;
        superuser.execute_unprepared("CHECKPOINT").await.unwrap();
        let scripts: Vec<PgScript> =
            variants.iter().map(|v| PgScript { tenant, statements: &v.statements, weight: 1, ids: None }).collect();
        let (child, dir) = pgbench(&url, &scripts, true, clients, secs);
        let pg = finish_pgbench(child, dir).await;
        let line = format!(
            "| {name} | {:.0} | {:.1} | **{:.1}** | {:.1} | {} | {:.0} | {:.2} |\n",
            load.ok as f64 / load.elapsed.as_secs_f64(),
            ms(percentile(&load.latencies, 0.50)),
            ms(percentile(&load.latencies, 0.95)),
            ms(percentile(&load.latencies, 0.99)),
            load.errors,
            pg.tps,
            pg.latency_ms,
        );
        print!("{line}");
        if let Some(e) = pg.error {
            println!("pgbench failed: {e}");
        }
        out.push_str(&line);
    }
    out.push('\n');
    out
}

fn serde_urlencoded(pairs: &[(&str, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())))
        .finish()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[derive(Default)]
struct Load {
    ok: usize,
    errors: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

/// `clients` keep-alive clients asking the variants in turn for `secs` (after a second of warm-up).
async fn load(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    tenant: Uuid,
    variants: &[Variant],
    clients: usize,
    secs: u64,
) -> Load {
    let urls: Arc<Vec<String>> =
        Arc::new(variants.iter().map(|v| format!("{base}/v1/tenants/{tenant}/audit-logs?{}", v.query)).collect());
    let run = |until: Instant, k: usize| {
        let (http, token, urls) = (http.clone(), token.to_owned(), urls.clone());
        async move {
            let mut load = Load::default();
            let mut n = k;
            while Instant::now() < until {
                n += 1;
                let started = Instant::now();
                let ok = match http.get(&urls[n % urls.len()]).bearer_auth(&token).send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                load.latencies.push(started.elapsed());
                if ok { load.ok += 1 } else { load.errors += 1 }
            }
            load
        }
    };
    let warm = Instant::now() + Duration::from_secs(1);
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..clients {
        tasks.spawn(run(warm, k));
    }
    tasks.join_all().await;
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..clients {
        tasks.spawn(run(until, k));
    }
    let mut all = Load::default();
    for l in tasks.join_all().await {
        all.ok += l.ok;
        all.errors += l.errors;
        all.latencies.extend(l.latencies);
    }
    all.elapsed = started.elapsed();
    all.latencies.sort();
    all
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Streams the largest tenant's log as CSV, sampling the API's memory.
async fn export(http: &reqwest::Client, base: &str, token: &str, tenant: Uuid, pid: u32) -> String {
    let before = rss_kib(pid);
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(before));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let started = Instant::now();
    let mut response = http
        .get(format!("{base}/v1/tenants/{tenant}/audit-logs/export?format=csv"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let (mut bytes, mut lines) = (0u64, 0u64);
    while let Some(chunk) = response.chunk().await.unwrap() {
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
    }
    let elapsed = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.await.unwrap();
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    let line = format!(
        "Export of the largest tenant as CSV: {} events ({:.0} MB) in {:.1} s; API RSS {:.0} MiB before, {:.0} MiB at \
         peak: **+{:.0} MiB**.\n\n",
        lines.saturating_sub(1),
        bytes as f64 / 1e6,
        elapsed.as_secs_f64(),
        before as f64 / 1024.0,
        peak as f64 / 1024.0,
        (peak.saturating_sub(before)) as f64 / 1024.0,
    );
    print!("{line}");
    line
}

/// Sign-ins per second for `secs`, without and with a sealer running.
async fn logins(db: &tests::TestDatabase, http: &reqwest::Client, base: &str, secs: u64) -> String {
    let body = json!({ "email": "bench@example.com", "password": "bench password 1" });
    let rate = |secs: u64| {
        let (http, base, body) = (http.clone(), base.to_owned(), body.clone());
        async move {
            let until = Instant::now() + Duration::from_secs(secs);
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..16 {
                let (http, base, body) = (http.clone(), base.clone(), body.clone());
                tasks.spawn(async move {
                    let mut n = 0usize;
                    while Instant::now() < until {
                        let r = http.post(format!("{base}/v1/auth/login")).json(&body).send().await.unwrap();
                        assert!(r.status().is_success(), "login: {}", r.status());
                        n += 1;
                    }
                    n
                });
            }
            tasks.join_all().await.into_iter().sum::<usize>() as f64 / secs as f64
        }
    };
    // The seeded log is sealed first (and timed): the comparison is of sign-ins with and without a sealer that keeps
    // up with new events, not with one working through a million old ones.
    let runtime = db.connect_runtime().await;
    let started = Instant::now();
    let mut sealed = 0;
    loop {
        let pass = entity::audit::chain::seal_pending(&runtime).await.unwrap();
        if pass.events == 0 {
            break;
        }
        sealed += pass.events;
    }
    let sealing = started.elapsed();
    let off = rate(secs).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let sealer = tokio::spawn(worker::seal_loop(runtime, Duration::from_millis(100), stop.clone()));
    let on = rate(secs).await;
    stop.cancel();
    sealer.await.unwrap();
    let line = format!(
        "Sealing the seeded log: {sealed} events in {:.0} s ({:.0} events/s). Sign-ins, 16 clients for {secs} s \
         each: {off:.1}/s with nobody sealing, {on:.1}/s with a sealer sealing every 100 ms: **{:.0}%**.\n\n",
        sealing.as_secs_f64(),
        sealed as f64 / sealing.as_secs_f64(),
        on / off * 100.0
    );
    print!("{line}");
    line
}
