//! Sync benchmark, against the simulator at zero latency and the local Postgres:
//!
//! 1. the initial sync of one tenant with 10,000 tests and 50,000 bugs, in rows per second, next to a raw bulk
//!    `INSERT` of the very same rows (the floor Postgres sets);
//! 2. an incremental sync with nothing new: list requests per product;
//! 3. fidelity costs on that tenant with 300 open tests spread through its history: requests and time of a
//!    nothing-new incremental run, of an incremental run after 200 scattered changes, and of a full run (the
//!    incremental ones must cost less), and how many runs re-verify the whole account at the default plan interval;
//! 4. three worker processes over 200 tenants: time until every tenant is synced, and a check that no tenant was synced
//!    by two workers at once.
//!
//! Run: `cargo bench -p tests --bench sync` (sizes: `BENCH_PRODUCTS`, `BENCH_TESTS_PER_PRODUCT`,
//! `BENCH_BUGS_PER_TEST`, `BENCH_TENANTS`).

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use tests::sync::{SyncFixture, assert_same};
use tests::testio_sim::{Account, Rng, Shape};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn scalar(db: &impl ConnectionTrait, sql: &str) -> i64 {
    let row = db.query_one_raw(Statement::from_string(DbBackend::Postgres, sql)).await.unwrap().unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

/// The tenant's mirror rows of `table`, as JSON records (with their tenant id).
async fn export(db: &impl ConnectionTrait, table: &str) -> Vec<serde_json::Value> {
    let sql = format!("SELECT coalesce(jsonb_agg(to_jsonb(t)), '[]') AS rows FROM {table} t");
    let row = db.query_one_raw(Statement::from_string(DbBackend::Postgres, sql)).await.unwrap().unwrap();
    let rows: serde_json::Value = row.try_get("", "rows").unwrap();
    rows.as_array().unwrap().clone()
}

/// Set in a child process: run a worker loop against this database until SIGTERM.
const CHILD_DATABASE_URL: &str = "BENCH_CHILD_DATABASE_URL";
/// Set in a child process: the worker's `TESTIO_ALLOWED_BASE_URLS` (the simulator).
const CHILD_ALLOWED_BASE_URLS: &str = "BENCH_CHILD_ALLOWED_BASE_URLS";

#[tokio::main]
async fn main() {
    if let Ok(url) = std::env::var(CHILD_DATABASE_URL) {
        let mut settings = tests::sync::worker_settings_for(&url);
        settings.allowed_base_urls = std::env::var(CHILD_ALLOWED_BASE_URLS).unwrap();
        settings.name = std::env::var("WORKER_NAME").ok();
        let worker = worker::Worker::build(&settings, worker::shutdown_on_signals().unwrap()).await.unwrap();
        worker.run().await.unwrap();
        return;
    }
    let shape = Shape {
        products: env_usize("BENCH_PRODUCTS", 4),
        tests_per_product: env_usize("BENCH_TESTS_PER_PRODUCT", 2500),
        bugs_per_test: env_usize("BENCH_BUGS_PER_TEST", 5),
    };
    let f = SyncFixture::connected(shape).await;
    // Open tests spread through the whole history, as real accounts have (locked tests linger).
    let mut rng = Rng::new(0x5eed);
    let mut next = move |n: usize| rng.below(n as u64) as usize;
    f.sim.modify(&f.token, |a| {
        let ids: Vec<i64> = a.tests.keys().copied().collect();
        for _ in 0..300 {
            let id = ids[next(ids.len())];
            a.set_test_status(id, if next(2) == 0 { "locked" } else { "running" });
        }
    });
    let superuser = f.app.db.superuser().await;

    // 1. Initial sync.
    let started = Instant::now();
    let run = f.sync(false).await;
    let sync_time = started.elapsed();
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_same(&f.mirror().await, &f.truth());
    let (products, tests, bugs) = f.truth().sizes();
    let rows = (products + tests + bugs) as f64;
    println!(
        "initial sync: {products} products, {tests} tests, {bugs} bugs in {:.2} s = {:.0} rows/s ({} requests)",
        sync_time.as_secs_f64(),
        rows / sync_time.as_secs_f64(),
        run["requests"]
    );

    // The same rows, bulk-inserted raw (as the runtime role, inside a tenant transaction, 5,000 rows a statement).
    let exported = [
        ("testio_products", export(superuser, "testio_products").await),
        ("testio_tests", export(superuser, "testio_tests").await),
        ("testio_bugs", export(superuser, "testio_bugs").await),
    ];
    let cursors = export(superuser, "testio_scan_cursors").await;
    superuser.execute_unprepared("DELETE FROM sync_gaps; DELETE FROM testio_products;").await.unwrap();
    let runtime = f.app.db.connect_runtime().await;
    let started = Instant::now();
    // A transaction bound to the tenant as `TenantTxn` binds one, but open to statements of our own.
    let txn = runtime.begin().await.unwrap();
    let bind = "SELECT set_config('app.tenant_id', $1, true)";
    txn.execute_raw(Statement::from_sql_and_values(DbBackend::Postgres, bind, [f.tenant.to_string().into()]))
        .await
        .unwrap();
    for (table, rows) in &exported {
        // Every column but the generated ones (sort keys, search text), which Postgres computes.
        let columns = superuser
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT string_agg(quote_ident(column_name), ', ' ORDER BY ordinal_position) AS c
                   FROM information_schema.columns
                  WHERE table_schema = 'public' AND table_name = $1 AND is_generated = 'NEVER'",
                [(*table).into()],
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<String>("", "c")
            .unwrap();
        for chunk in rows.chunks(5000) {
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                format!(
                    "INSERT INTO {table} ({columns}) SELECT {columns} FROM jsonb_populate_recordset(null::{table}, $1::jsonb)"
                ),
                [serde_json::Value::from(chunk.to_vec()).into()],
            ))
            .await
            .unwrap();
        }
    }
    txn.commit().await.unwrap();
    let raw_time = started.elapsed();
    // The cursors too, so that the incremental run below is not a fresh backfill.
    superuser
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO testio_scan_cursors SELECT * FROM jsonb_populate_recordset(null::testio_scan_cursors, $1)",
            [serde_json::Value::from(cursors).into()],
        ))
        .await
        .unwrap();
    println!(
        "raw bulk insert of the same rows: {:.2} s = {:.0} rows/s; the sync takes {:.1}x the raw insert",
        raw_time.as_secs_f64(),
        rows / raw_time.as_secs_f64(),
        sync_time.as_secs_f64() / raw_time.as_secs_f64()
    );
    assert_eq!(scalar(superuser, "SELECT count(*) AS n FROM testio_bugs").await as usize, bugs);

    // 2. Incremental sync with nothing new: the top of each list, its verification slice, and the pages holding the
    //    300 open tests.
    let (before, lists_before) = (f.sim.requests(), f.sim.list_requests());
    let started = Instant::now();
    let run = f.sync(false).await;
    let (made, lists) = (f.sim.requests() - before, f.sim.list_requests() - lists_before);
    println!(
        "incremental sync, nothing new: {made} requests in {:.0} ms, of which {lists} test list pages for \
         {products} products ({:.1} per product); tests updated: {}",
        started.elapsed().as_secs_f64() * 1e3,
        lists as f64 / products as f64,
        run["tests"]["updated"]
    );
    // The open tests spread through the history are refreshed through their pages: never more than a full scan.
    assert!(lists <= run["list_pages_total"].as_u64().unwrap(), "{run}");

    // 3. Fidelity costs.
    let incremental = |label: &'static str| {
        let f = &f;
        async move {
            let started = Instant::now();
            let run = f.sync(false).await;
            println!(
                "{label}: {} requests in {:.0} ms ({} of {} list pages), status {}",
                run["requests"],
                started.elapsed().as_secs_f64() * 1e3,
                run["list_pages_read"],
                run["list_pages_total"],
                run["status"]
            );
            run
        }
    };
    let quiet = incremental("incremental, nothing new").await;
    f.sim.modify(&f.token, |a| {
        let ids: Vec<i64> = a.tests.keys().copied().collect();
        let bugs: Vec<i64> = a.bugs.keys().copied().collect();
        for i in 0..200 {
            match i % 4 {
                0 => a.set_test_status(ids[next(ids.len())], "archived"),
                1 => {
                    let bug = bugs[next(bugs.len())];
                    a.set_bug_status(bug, "accepted");
                }
                2 => {
                    let test = ids[next(ids.len())];
                    a.add_bug(test, "forwarded");
                }
                _ => {
                    let test = ids[next(ids.len())];
                    let end = a.tests[&test].end_at - chrono::Duration::minutes(1);
                    a.set_test_end_at(test, end);
                }
            }
        }
    });
    let changed = incremental("incremental after 200 scattered changes").await;
    let started = Instant::now();
    let full = f.sync(true).await;
    println!("full run: {} requests in {:.0} ms", full["requests"], started.elapsed().as_secs_f64() * 1e3);
    assert_same(&f.mirror().await, &f.truth());
    let cost = |run: &serde_json::Value| run["requests"].as_i64().unwrap();
    assert!(cost(&quiet) < cost(&full) && cost(&changed) < cost(&full), "an incremental run cost more than a full one");
    // The verification slice at the defaults (free plan: one run an hour, a 24 h cycle): its share of each list.
    let total = quiet["list_pages_total"].as_i64().unwrap();
    let per_product = total / products as i64;
    let runs_per_cycle = 24;
    let slice = (per_product + runs_per_cycle - 1) / runs_per_cycle;
    println!(
        "verification: {per_product} list pages a product, {slice} verified a run: the whole account is re-read in \
         {} runs, within the {runs_per_cycle} runs of a cycle",
        (per_product + slice - 1) / slice
    );

    // 4. Three workers over many tenants.
    let tenants = env_usize("BENCH_TENANTS", 200);
    let small = Shape { products: 1, tests_per_product: 20, bugs_per_test: 2 };
    for i in 0..tenants {
        let tenant = f.app.create_tenant(&f.owner, &format!("bench-{i}")).await;
        let token = format!("bench-token-{i:05}");
        f.sim.add_account(&token, Account::generate(100 + i as u64, small));
        assert_eq!(f.connect(tenant, &token).await.status(), 200);
    }
    // Three OS processes: this benchmark binary re-executed in worker mode (see `main`).
    let started = Instant::now();
    let children: Vec<std::process::Child> = (0..3)
        .map(|n| {
            std::process::Command::new(std::env::current_exe().unwrap())
                .env(CHILD_DATABASE_URL, f.app.db.runtime_url())
                .env(CHILD_ALLOWED_BASE_URLS, &f.allowed_base_urls)
                .env("WORKER_NAME", format!("bench-worker-{n}"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let done_sql = "SELECT count(DISTINCT tenant_id) AS n FROM sync_runs WHERE status = 'succeeded' \
                    AND trigger = 'connection'";
    while (scalar(superuser, done_sql).await as usize) < tenants {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_time = started.elapsed();
    for mut child in children {
        let pid = child.id().to_string();
        assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        assert!(child.wait().unwrap().success(), "a worker process did not stop cleanly");
    }
    let overlapping = scalar(
        superuser,
        "SELECT count(*) AS n FROM sync_runs a JOIN sync_runs b ON a.tenant_id = b.tenant_id AND a.id < b.id
            AND a.started_at < b.finished_at AND b.started_at < a.finished_at",
    )
    .await;
    let shares = superuser
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT worker, count(*) AS n FROM sync_runs WHERE worker LIKE 'bench-worker-%' GROUP BY 1 ORDER BY 1",
        ))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<i64>("", "n").unwrap().to_string())
        .collect::<Vec<_>>()
        .join("/");
    println!(
        "3 worker processes, {tenants} tenants: all synced in {:.2} s ({:.0} tenants/s); runs per worker {shares}; \
         overlapping runs of one tenant: {overlapping}",
        all_time.as_secs_f64(),
        tenants as f64 / all_time.as_secs_f64()
    );
    assert_eq!(overlapping, 0);
}
