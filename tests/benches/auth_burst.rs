//! Registration-burst benchmark: the API's memory and a legitimate user's sign-in latency while 256 registrations
//! arrive 64 at a time (the security review's attack took the API from 333 MB to 5.1 GB). The API runs as a child
//! process with production settings (one HTTP worker per core, the default password-hashing bound), so its resident
//! memory is its own; the benchmark samples it every 10 ms and reads the kernel's peak (`VmHWM`) at the end.
//!
//! Two bursts: (a) the review's, every request for one existing email from one address; (b) the hard case, 256 fresh
//! emails from 256 addresses (through a trusted `X-Forwarded-For`), so that neither the per-address limit nor the
//! taken-email check spares the password hashing and only the bound on concurrent hashes protects the server.
//! Meanwhile one user signs in again and again from an address of their own.
//!
//! Run: `cargo bench -p tests --bench auth_burst` (`BENCH_BURST=256 BENCH_BURST_CONCURRENCY=64`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `VmRSS` and `VmHWM` of `pid`, in MiB.
fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Outcome {
    statuses: BTreeMap<u16, usize>,
    elapsed: Duration,
    peak_sampled_mib: f64,
    logins: Vec<Duration>,
    login_failures: usize,
}

async fn burst(
    base: &str,
    pid: u32,
    total: usize,
    concurrency: usize,
    body_and_address: impl Fn(usize) -> (serde_json::Value, String),
) -> Outcome {
    let http = reqwest::Client::new();
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (done, peak) = (done.clone(), peak.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let (rss, _) = memory(pid);
                peak.fetch_max((rss * 1024.0) as u64, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let legit = {
        let (done, http, base) = (done.clone(), http.clone(), base.to_owned());
        tokio::spawn(async move {
            let (mut samples, mut failures) = (Vec::new(), 0);
            while !done.load(Ordering::Relaxed) {
                let started = Instant::now();
                let response = http
                    .post(format!("{base}/v1/auth/login"))
                    .header("x-forwarded-for", "192.0.2.1")
                    .json(&json!({ "email": "legit@example.com", "password": "legit user password" }))
                    .send()
                    .await;
                samples.push(started.elapsed());
                if !response.is_ok_and(|r| r.status() == 200) {
                    failures += 1;
                }
            }
            (samples, failures)
        })
    };
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let permit = permits.clone().acquire_owned().await.unwrap();
        let (body, address) = body_and_address(i);
        let (http, url) = (http.clone(), format!("{base}/v1/auth/register"));
        tasks.spawn(async move {
            let _permit = permit;
            let response = http.post(url).header("x-forwarded-for", address).json(&body).send().await;
            response.map_or(0, |r| r.status().as_u16())
        });
    }
    let mut statuses = BTreeMap::new();
    while let Some(status) = tasks.join_next().await {
        *statuses.entry(status.unwrap()).or_insert(0) += 1;
    }
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    let (mut logins, login_failures) = legit.await.unwrap();
    logins.sort();
    Outcome {
        statuses,
        elapsed,
        peak_sampled_mib: peak.load(Ordering::Relaxed) as f64 / 1024.0,
        logins,
        login_failures,
    }
}

fn report(name: &str, pid: u32, o: &Outcome) {
    let (_, hwm) = memory(pid);
    let statuses: Vec<String> = o.statuses.iter().map(|(s, n)| format!("{n}x{s}")).collect();
    println!(
        "| {name} | {} | {:.1} s | {:.0} MiB | {:.0} MiB | {} ({} failed) | {:.0} ms | {:.0} ms | {:.0} ms |",
        statuses.join(" "),
        o.elapsed.as_secs_f64(),
        o.peak_sampled_mib,
        hwm,
        o.logins.len(),
        o.login_failures,
        percentile(&o.logins, 0.50).as_secs_f64() * 1e3,
        percentile(&o.logins, 0.95).as_secs_f64() * 1e3,
        o.logins.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
    );
}

#[tokio::main]
async fn main() {
    let child = tests::bench::serve_if_child(|url| {
        // The API itself, as production runs it: one HTTP worker per core, the default hashing bound and limits.
        let mut settings = tests::app::test_settings_for(url);
        settings.workers = 0;
        settings.database_max_connections = 10;
        settings.database_acquire_timeout_ms = 3000;
        settings.trust_forwarded_for = true;
        settings
    });
    if child.await {
        return;
    }
    let total = env_usize("BENCH_BURST", 256);
    let concurrency = env_usize("BENCH_BURST_CONCURRENCY", 64);
    let db = tests::TestDatabase::migrated().await;
    let api = tests::bench::ChildApi::spawn(&db.runtime_url());
    let pid = api.pid();
    let base = api.base();
    let http = reqwest::Client::new();
    for (email, password, address) in [
        ("legit@example.com", "legit user password", "192.0.2.1"),
        ("taken@example.com", "another password", "192.0.2.2"),
    ] {
        let created = http
            .post(format!("{base}/v1/auth/register"))
            .header("x-forwarded-for", address)
            .json(&json!({ "email": email, "name": "N", "password": password }))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
    }
    let (rss, _) = memory(pid);
    println!("API resident memory before the bursts: {rss:.0} MiB; {total} registrations, {concurrency} at a time\n");
    println!(
        "| burst | answers | time | peak RSS (sampled) | peak RSS (VmHWM) | sign-ins during it | p50 | p95 | max |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let one_email = burst(&base, pid, total, concurrency, |_| {
        (json!({ "email": "taken@example.com", "name": "N", "password": "whatever password" }), "203.0.113.9".into())
    })
    .await;
    report("one taken email, one address", pid, &one_email);
    let fresh = burst(&base, pid, total, concurrency, |i| {
        let body = json!({ "email": format!("user{i}@example.com"), "name": "N", "password": "long enough password" });
        (body, format!("10.1.{}.{}", i / 250, i % 250 + 1))
    })
    .await;
    report("fresh emails, one address each", pid, &fresh);
    let (_, hwm) = memory(pid);
    drop(api);
    println!("\npeak resident memory of the API over the whole run: {hwm:.0} MiB (the bound to keep: 600 MiB)");
}
