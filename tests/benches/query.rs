//! Query API benchmark (issue 12): the list, detail and statistics routes over the mirror, at `BENCH_CLIENTS` (32)
//! concurrent clients, next to what Postgres alone does with the very same SQL in the same run.
//!
//! 1. **Seed** (as the superuser, `INSERT .. SELECT generate_series`): 20 tenants created through the API by one user,
//!    the largest with 20 products, 100,000 tests and 500,000 bugs, the others 500 to 5,000 tests (3 bugs per test),
//!    with realistic distributions (statuses, testing types incl. none, three years of dates, open tests without an
//!    end, text for the search), a connection and sync runs (500 for the largest); then `VACUUM ANALYZE`. The
//!    non-unique indexes of the two big tables are dropped for the load and rebuilt from their own catalog definitions.
//! 2. **Load**, one endpoint group after the other for `BENCH_SECS` (10) each after a second of warm-up: 32 keep-alive
//!    clients send a weighted mix of requests (filters, sorts, text search, keyset pages reached through `next_cursor`,
//!    an offset page with its total, random ids for the detail routes; mostly the largest tenant, some small ones).
//! 3. **Ceiling**: pgbench as the runtime role (`-M prepared -j 2`, `BENCH_PG_CLIENTS` = 32 connections) runs, for
//!    every request of the mix and with the same weights, `BEGIN; set_config('app.tenant_id', ..); <the statements of
//!    the data layer for it>; COMMIT`. The statements are recorded (sea-orm's metric callback) while the very
//!    functions the routes call (`entity::mirror::query::list_tests`, `test`, `stats`...) serve the same request, so
//!    they are the API's own, text search's lookup included; the API's page of every list request is checked against
//!    the data layer's.
//! 4. The baseline: `GET sync-runs?limit=50` over 500 runs (with and without the transaction) and `/livez`.
//!
//! To tell which side is the bottleneck: during each phase the CPU time of the API, of the Postgres backends of the
//! benchmark's database, of the client (this process or pgbench) and of everything else on the machine is sampled
//! from `/proc`, the states of the API's database sessions from `pg_stat_activity` (how much of its pool is busy),
//! and the transactions Postgres counted per request (`pg_stat_database`); before the load, each request's SQL is
//! timed alone on an idle connection (median), and the plans of the slow ones are kept.
//!
//! The API runs as a child process (this executable, release build) with production settings: one HTTP worker per
//! core and a pool of 10 (`BENCH_API_POOL`). Every phase starts after a `CHECKPOINT`. The table is printed and
//! written to `target/bench-query.md`.
//!
//! Run: `cargo bench -p tests --bench query` (`BENCH_SECS=10 BENCH_CLIENTS=32 BENCH_PG_CLIENTS=32`;
//! `BENCH_ONLY=tests,bugs,products,test-detail,bug-detail,product-detail,stats,sync-runs,livez` for some groups;
//! `BENCH_BIG_TESTS`, `BENCH_BIG_BUGS`, `BENCH_TENANTS` for smaller sizes; `BENCH_API_POOL`, `BENCH_API_WORKERS` for
//! the API's pool and HTTP workers; `BENCH_KEEP_DB=1` keeps the database).
//! The plans (`EXPLAIN (ANALYZE, BUFFERS)` under RLS) of every request whose SQL takes over 5 ms alone go to
//! `target/bench-query-plans.txt`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use entity::mirror::query::{
    self as mq, BugFilter, BugQuery, BugSort, Direction, ProductQuery, ProductSort, TestFilter, TestQuery, TestSort,
    TimeRange, Window,
};
use entity::{TenantId, TenantTxn};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement, Value};
use serde_json::Value as Json;
use tests::bench::{PgResult, PgScript, RANDOM_ID, Recorder, finish_pgbench, percentile, pgbench};
use tests::testio_sim::Rng;
use uuid::Uuid;

/// The API's pool: the production default (`DATABASE_MAX_CONNECTIONS`, 10 per process), or `BENCH_API_POOL`. (More
/// sessions than cores' worth of work only add contention on two cores: 16 and 32 were measured to raise the lists'
/// p95.)
fn api_pool() -> usize {
    env_usize("BENCH_API_POOL", 10)
}

fn ms_f(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------------------------
// Seed

/// A seeded tenant: its id and the TestIO ids of its products, tests and bugs (`base..base + n`).
#[derive(Clone)]
struct Tenant {
    id: Uuid,
    products: (i64, i64),
    tests: (i64, i64),
    bugs: (i64, i64),
    runs: i64,
}

impl Tenant {
    fn product(&self, k: i64) -> i64 {
        self.products.0 + k % self.products.1
    }
    fn last(range: (i64, i64)) -> i64 {
        range.0 + range.1 - 1
    }
}

/// The sizes of tenant `k` (0 is the largest).
fn shape(k: i64, id: Uuid) -> Tenant {
    let big_tests = env_usize("BENCH_BIG_TESTS", 100_000) as i64;
    let big_bugs = env_usize("BENCH_BIG_BUGS", 500_000) as i64;
    let (products, tests, bugs) =
        if k == 0 { (20, big_tests, big_bugs) } else { (2 + k % 6, 250 + 250 * k, 3 * (250 + 250 * k)) };
    Tenant {
        id,
        products: (1000 * (k + 1), products),
        tests: (1_000_000 * (k + 1), tests),
        bugs: (10_000_000 * (k + 1), bugs),
        runs: if k == 0 { 500 } else { 20 },
    }
}

const FEATURES: &str = "ARRAY['login','checkout','payment','search','profile','onboarding','cart','settings',\
    'notifications','dashboard','signup','wishlist','invoice','subscription','chat','map','upload','export',\
    'calendar','feed']";

/// The statements seeding `t` (run in one session, after `setseed`).
fn seed_sql(t: &Tenant) -> [String; 3] {
    let Tenant { id, products: (p0, np), tests: (t0, nt), bugs: (b0, nb), .. } = t;
    let products = format!(
        "INSERT INTO testio_products (tenant_id, testio_id, name, product_type, raw)
         SELECT '{id}', {p0} + i, p.name, p.kind, jsonb_build_object('id', {p0} + i, 'name', p.name, 'type', p.kind)
           FROM generate_series(0, {np} - 1) i,
                LATERAL (SELECT (ARRAY['Shop','Bank','Travel','News','Health','Music','Games','Mail'])[1 + i % 8]
                                || ' ' || (ARRAY['App','Web','Portal','Pro','Lite'])[1 + i / 8 % 5] || ' ' || i AS name,
                                (ARRAY['website','mobile_app_ios','mobile_app_android',NULL])[1 + i % 4] AS kind) p"
    );
    // Ids grow with time; the newest 3% are still open (some without an end), older ones mostly archived.
    let tests = format!(
        "INSERT INTO testio_tests (tenant_id, testio_id, product_id, title, status, testing_type, review_status,
                                   start_at, end_at, raw, bugs_synced_at)
         SELECT '{id}', id, product_id, title, status, testing_type, review_status, start_at, end_at,
                jsonb_build_object('id', id, 'title', title, 'status', status, 'testing_type', testing_type,
                    'review_status', review_status, 'start_at', start_at, 'end_at', end_at,
                    'product', jsonb_build_object('id', product_id),
                    'goal_text', 'Find functional bugs in the ' || feature || ' flow on ' || platform ||
                                 '. Focus on ' || feature2 || ' and everything around it.',
                    'instructions_text', 'Use build ' || version || ' on ' || platform ||
                                 '. Sign in with the test account, go through ' || feature || ', then ' || feature2 ||
                                 '. Report crashes, wrong totals and broken layouts.'),
                end_at
           FROM (
             SELECT id, product_id, feature, feature2, platform, version, status, testing_type,
                    initcap(kind) || ' ' || feature || ' ' || platform || ' ' || version AS title,
                    CASE WHEN status IN ('archived', 'locked') AND r < 0.8 THEN 'review_successful' END AS review_status,
                    CASE WHEN status = 'initialized' AND r < 0.5 THEN NULL ELSE start_at END AS start_at,
                    CASE WHEN status IN ('initialized', 'customer_finalized', 'waiting', 'running') AND r < 0.6 THEN NULL
                         WHEN status = 'locked' AND r < 0.1 THEN NULL
                         ELSE start_at + (1 + floor(r * 14)) * interval '1 day' END AS end_at
               FROM (
                 SELECT {t0} + i AS id,
                        {p0} + floor({np} * power(random(), 1.5))::int AS product_id,
                        ({FEATURES})[1 + floor(random() * 20)::int] AS feature,
                        ({FEATURES})[1 + floor(random() * 20)::int] AS feature2,
                        (ARRAY['Android','iOS','Web','Tablet','Desktop','Smart TV'])[1 + floor(random() * 6)::int]
                            AS platform,
                        (ARRAY['regression','release','smoke','exploratory','beta','hotfix'])
                            [1 + floor(random() * 6)::int] AS kind,
                        (1 + floor(random() * 9))::int || '.' || floor(random() * 40)::int || '.' || i AS version,
                        CASE WHEN i::float8 / {nt} > 0.97
                             THEN (ARRAY['initialized','customer_finalized','waiting','running','running','locked'])
                                      [1 + floor(random() * 6)::int]
                             ELSE (ARRAY['archived','archived','archived','archived','archived','archived','archived',
                                         'archived','archived','archived','archived','archived','archived',
                                         'archived','archived','archived','archived','locked','locked',
                                         'cancelled'])[1 + floor(random() * 20)::int]
                        END AS status,
                        (ARRAY['coverage','coverage','coverage','coverage','coverage','coverage','coverage',
                               'coverage','focused','focused','focused','focused','focused','rapid','rapid','rapid',
                               'usability','custom','external',NULL])[1 + floor(random() * 20)::int] AS testing_type,
                        now() - (1 - i::float8 / {nt}) * interval '3 years' - random() * interval '3 days' AS start_at,
                        random() AS r
                   FROM generate_series(0, {nt} - 1) i
               ) a
           ) b"
    );
    // Newer tests have more bugs; a bug's product is its test's.
    let bugs = format!(
        "INSERT INTO testio_bugs (tenant_id, testio_id, test_id, product_id, title, severity, status, known,
                                  auto_accepted, reported_at, raw)
         SELECT t.tenant_id, b.id, t.testio_id, t.product_id, b.title, b.severity, b.status, b.known,
                CASE WHEN b.status = 'accepted' THEN b.r < 0.3 WHEN b.r < 0.9 THEN false END,
                CASE WHEN t.start_at IS NULL OR b.r2 < 0.01 THEN NULL
                     ELSE t.start_at + b.r2 * (coalesce(t.end_at, t.start_at + interval '7 days') - t.start_at) END,
                jsonb_build_object('id', b.id, 'title', b.title, 'severity', b.severity, 'status', b.status,
                    'expected_result', 'The ' || b.feature || ' screen works: ' || b.expected,
                    'actual_result', b.symptom || ' after tapping ' || b.feature || ' (steps attached)',
                    'steps', '1. Open the app 2. Go to ' || b.feature || ' 3. Tap submit')
           FROM (
             SELECT {b0} + i AS id, {t0} + floor({nt} * power(random(), 0.8))::int AS test_id,
                    feature, symptom, expected, initcap(feature) || ': ' || symptom AS title, severity, status,
                    known, r, r2
               FROM (
                 SELECT i,
                        ({FEATURES})[1 + floor(random() * 20)::int] AS feature,
                        (ARRAY['app crashes on submit','button not clickable','wrong total shown','typo in label',
                               'layout broken in landscape','infinite spinner','request times out','blank screen',
                               'wrong translation','image missing','keyboard covers the field',
                               'back button loses input'])[1 + floor(random() * 12)::int] AS symptom,
                        (ARRAY['the form is sent','the total is correct','the page loads','the text is readable'])
                            [1 + floor(random() * 4)::int] AS expected,
                        (ARRAY['low','low','low','low','low','low','low','high','high','high','high','high','high',
                               'critical','visual','visual','visual','content','content','custom',NULL])
                            [1 + floor(random() * 21)::int] AS severity,
                        (ARRAY['forwarded','forwarded','accepted','accepted','accepted','accepted','accepted',
                               'rejected','rejected','rejected',NULL])[1 + floor(random() * 11)::int] AS status,
                        CASE WHEN random() < 0.05 THEN NULL ELSE random() < 0.1 END AS known,
                        random() AS r, random() AS r2
                   FROM generate_series(0, {nb} - 1) i
               ) x
           ) b
           JOIN testio_tests t ON t.tenant_id = '{id}' AND t.testio_id = b.test_id"
    );
    [products, tests, bugs]
}

/// Seeds every tenant in one superuser session; returns how long it took.
async fn seed(superuser_url: &str, tenants: &[Tenant]) -> Duration {
    let started = Instant::now();
    let options = ConnectOptions::new(superuser_url).max_connections(1).min_connections(1).to_owned();
    let db = Database::connect(options).await.expect("cannot connect as the superuser");
    let run = |sql: String| {
        let db = db.clone();
        async move { db.execute_unprepared(&sql).await.unwrap_or_else(|e| panic!("{e}\n{sql}")) }
    };
    run("SET synchronous_commit = off; SET work_mem = '256MB'; SET maintenance_work_mem = '512MB';
         SELECT setseed(0.42);
         CREATE TEMP TABLE bench_indexes AS
         SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS def
           FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
          WHERE i.indrelid IN ('testio_tests'::regclass, 'testio_bugs'::regclass)
            AND NOT i.indisprimary AND NOT i.indisunique;
         DO $$ DECLARE r record; BEGIN
             FOR r IN SELECT name FROM bench_indexes LOOP EXECUTE format('DROP INDEX %I', r.name); END LOOP;
         END $$;"
        .to_owned())
    .await;
    for t in tenants {
        for sql in seed_sql(t) {
            run(sql).await;
        }
        let Tenant { id, runs, .. } = t;
        run(format!(
            "INSERT INTO testio_connections (tenant_id, base_url, token_ciphertext, token_nonce, token_key_id,
                                             token_last4, status, verified_at, verified_through)
             VALUES ('{id}', 'https://api.test.io/customer/v2', '\\x00', decode('000000000000000000000000', 'hex'),
                     'bench', 'abcd', 'active', now(), now() - interval '1 day');
             INSERT INTO sync_runs (tenant_id, id, trigger, status, created_at, started_at, finished_at, requests,
                                    pages, products, tests_updated, bugs_new, verified_through)
             SELECT '{id}', gen_random_uuid(), 'schedule', CASE WHEN i % 50 = 7 THEN 'failed' ELSE 'succeeded' END,
                    now() - i * interval '1 hour', now() - i * interval '1 hour',
                    now() - i * interval '1 hour' + interval '1 minute', 12, 3, 4, i % 7, i % 13,
                    now() - i * interval '1 hour' - interval '1 day'
               FROM generate_series(1, {runs}) AS i;"
        ))
        .await;
    }
    run("DO $$ DECLARE r record; BEGIN
             FOR r IN SELECT def FROM bench_indexes LOOP EXECUTE r.def; END LOOP;
         END $$;"
        .to_owned())
    .await;
    run("VACUUM ANALYZE testio_products, testio_tests, testio_bugs, testio_stat_counts, testio_connections, \
         sync_runs, tenants, tenant_users, users"
        .to_owned())
    .await;
    db.close().await.ok();
    started.elapsed()
}

// ---------------------------------------------------------------------------------------------------------------
// The requests

/// One kind of request of a group's mix.
struct Variant {
    label: String,
    weight: u32,
    tenant: Uuid,
    /// The request's URL; `{id}` is replaced by a random id of `ids`.
    url: String,
    ids: Option<(i64, i64)>,
    /// What the data layer runs for it, inside the tenant's transaction.
    statements: Vec<Statement>,
    /// The median time of its transaction alone (see [`solo`]).
    solo: Duration,
}

/// A pgbench ceiling of a group: `with_transaction` wraps each variant's statements in `BEGIN; set_config; ..;
/// COMMIT`, else they run bare, with the (first variant's) tenant bound once per session.
struct Ceiling {
    label: &'static str,
    with_transaction: bool,
}

struct Group {
    name: String,
    variants: Vec<Variant>,
    ceilings: Vec<Ceiling>,
}

/// A list request: the query the data layer builds, and its page.
enum List {
    Tests(TestQuery),
    Bugs(BugQuery),
    Products(ProductQuery),
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn sign(direction: Direction, key: &str) -> String {
    match direction {
        Direction::Asc => key.to_owned(),
        Direction::Desc => format!("-{key}"),
    }
}

fn join<T: ToString>(values: &[T]) -> String {
    values.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

fn range_params(params: &mut Vec<(String, String)>, name: &str, range: &TimeRange) {
    if let Some(from) = range.from {
        params.push((format!("{name}_from"), time(from)));
    }
    if let Some(to) = range.to {
        params.push((format!("{name}_to"), time(to)));
    }
}

impl List {
    fn path(&self) -> &'static str {
        match self {
            Self::Tests(_) => "tests",
            Self::Bugs(_) => "bugs",
            Self::Products(_) => "products",
        }
    }

    fn window(&mut self) -> &mut Window {
        match self {
            Self::Tests(q) => &mut q.window,
            Self::Bugs(q) => &mut q.window,
            Self::Products(q) => &mut q.window,
        }
    }

    /// The query string of the request (without the cursor).
    fn params(&self) -> Vec<(String, String)> {
        let mut params: Vec<(String, String)> = Vec::new();
        let mut add = |k: &str, v: String| params.push((k.to_owned(), v));
        let window = match self {
            Self::Tests(q) => {
                let f = &q.filter;
                if !f.product_ids.is_empty() {
                    add("product_id", join(&f.product_ids));
                }
                if !f.statuses.is_empty() {
                    add("status", join(&f.statuses));
                }
                if !f.testing_types.is_empty() {
                    add("testing_type", join(&f.testing_types));
                }
                if let Some(text) = &f.q {
                    add("q", text.clone());
                }
                let key = match q.sort {
                    TestSort::EndAt => "end_at",
                    TestSort::StartAt => "start_at",
                    TestSort::Title => "title",
                    TestSort::Status => "status",
                };
                add("sort", sign(q.direction, key));
                range_params(&mut params, "start", &f.start);
                range_params(&mut params, "end", &f.end);
                &q.window
            }
            Self::Bugs(q) => {
                let f = &q.filter;
                if !f.test_ids.is_empty() {
                    add("test_id", join(&f.test_ids));
                }
                if !f.product_ids.is_empty() {
                    add("product_id", join(&f.product_ids));
                }
                if !f.severities.is_empty() {
                    add("severity", join(&f.severities));
                }
                let mut statuses = f.statuses.clone();
                if f.auto_accepted {
                    statuses.push("auto_accepted".into());
                }
                if !statuses.is_empty() {
                    add("status", join(&statuses));
                }
                if let Some(known) = f.known {
                    add("known", known.to_string());
                }
                if let Some(text) = &f.q {
                    add("q", text.clone());
                }
                let key = match q.sort {
                    BugSort::ReportedAt => "reported_at",
                    BugSort::Severity => "severity",
                    BugSort::Status => "status",
                    BugSort::Title => "title",
                };
                add("sort", sign(q.direction, key));
                range_params(&mut params, "reported", &f.reported);
                &q.window
            }
            Self::Products(q) => {
                let key = match q.sort {
                    ProductSort::Name => "name",
                    ProductSort::Id => "id",
                };
                add("sort", sign(q.direction, key));
                &q.window
            }
        };
        match window {
            Window::Keyset { limit, .. } => params.push(("limit".into(), limit.to_string())),
            Window::Offset { offset, limit } => {
                params.push(("page".into(), (offset / limit + 1).to_string()));
                params.push(("per_page".into(), limit.to_string()));
            }
        }
        params
    }

    /// The ids of the page, as the data layer reads it, and the keyset after it.
    async fn page(&self, db: &DatabaseConnection, tenant: Uuid) -> (Vec<i64>, Option<mq::Keyset>) {
        let txn = TenantTxn::begin(db, TenantId(tenant)).await.unwrap();
        let page = match self {
            Self::Tests(q) => {
                let page = mq::list_tests(&txn, q).await.unwrap();
                let ids = page.items.iter().map(|i| i.testio_id).collect();
                (ids, page.items.last().map(|i| i.keyset(q.sort)))
            }
            Self::Bugs(q) => {
                let page = mq::list_bugs(&txn, q).await.unwrap();
                let ids = page.items.iter().map(|i| i.testio_id).collect();
                (ids, page.items.last().map(|i| i.keyset(q.sort)))
            }
            Self::Products(q) => {
                let page = mq::list_products(&txn, q).await.unwrap();
                let ids = page.items.iter().map(|i| i.testio_id).collect();
                (ids, page.items.last().map(|i| i.keyset(q.sort)))
            }
        };
        txn.rollback().await.unwrap();
        page
    }
}

fn tests_query(filter: TestFilter, sort: TestSort, direction: Direction, limit: u64) -> List {
    List::Tests(TestQuery {
        filter,
        sort,
        direction,
        window: Window::Keyset { after: None, limit },
        include_raw: false,
    })
}

fn bugs_query(filter: BugFilter, sort: BugSort, direction: Direction, limit: u64) -> List {
    List::Bugs(BugQuery { filter, sort, direction, window: Window::Keyset { after: None, limit }, include_raw: false })
}

fn products_query(sort: ProductSort, direction: Direction, limit: u64) -> List {
    List::Products(ProductQuery { sort, direction, window: Window::Keyset { after: None, limit }, include_raw: false })
}

/// A read of one item or of the statistics, through the data layer's function the route calls.
#[derive(Clone, Copy)]
enum Read {
    Test,
    Bug,
    Product,
    Stats,
    SyncRuns,
}

/// Where the benchmark talks to the API and to the database while it prepares the mix.
struct Ctx {
    base: String,
    token: String,
    http: reqwest::Client,
    /// The runtime role, for the data layer's own pages; its statements are recorded.
    runtime: DatabaseConnection,
    recorder: Recorder,
    mismatches: Vec<String>,
}

impl Ctx {
    async fn get(&self, url: &str) -> Json {
        let response = self.http.get(url).bearer_auth(&self.token).send().await.unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert!(status.is_success(), "GET {url}: {status} {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// A list request on its `page`th page (keyset pages reached through `next_cursor`), checked against the data
    /// layer's page.
    async fn list(&mut self, label: &str, weight: u32, tenant: &Tenant, mut list: List, page: usize) -> Variant {
        let mut url = url::Url::parse(&format!("{}/v1/tenants/{}/{}", self.base, tenant.id, list.path())).unwrap();
        url.query_pairs_mut().extend_pairs(list.params());
        for _ in 1..page {
            let body = self.get(url.as_str()).await;
            let cursor = body["next_cursor"].as_str().unwrap_or_else(|| panic!("{label}: no next page")).to_owned();
            let (_, keyset) = list.page(&self.runtime, tenant.id).await;
            if let Window::Keyset { after, .. } = list.window() {
                *after = keyset;
            }
            url = url::Url::parse(&format!("{}/v1/tenants/{}/{}", self.base, tenant.id, list.path())).unwrap();
            url.query_pairs_mut().extend_pairs(list.params()).append_pair("cursor", &cursor);
        }
        let body = self.get(url.as_str()).await;
        let api: Vec<i64> = body["items"].as_array().unwrap().iter().map(|i| i["id"].as_i64().unwrap()).collect();
        self.recorder.clear();
        let (sql, _) = list.page(&self.runtime, tenant.id).await;
        let statements = self.recorder.take();
        if api != sql || api.is_empty() {
            let brief = |ids: &[i64]| format!("{} ids {:?}..", ids.len(), &ids[..ids.len().min(3)]);
            self.mismatches.push(format!("{label}: the API answered {}, the data layer {}", brief(&api), brief(&sql)));
        }
        Variant {
            label: label.to_owned(),
            weight,
            tenant: tenant.id,
            url: url.to_string(),
            ids: None,
            statements,
            solo: Duration::ZERO,
        }
    }

    /// The statements the data layer runs for `read` in `tenant` (the id of an item is [`RANDOM_ID`]).
    async fn capture(&self, tenant: Uuid, read: Read) -> Vec<Statement> {
        let txn = TenantTxn::begin(&self.runtime, TenantId(tenant)).await.unwrap();
        // The statistics as the API serves them between two syncs: from its cache, filled by a first read.
        let stats = mq::StatsCache::new(1);
        if let Read::Stats = read {
            stats.read(&txn, drop).await.unwrap();
        }
        self.recorder.clear();
        match read {
            Read::Test => drop(mq::test(&txn, RANDOM_ID, false).await.unwrap()),
            Read::Bug => drop(mq::bug(&txn, RANDOM_ID, false).await.unwrap()),
            Read::Product => drop(mq::product(&txn, RANDOM_ID, false).await.unwrap()),
            Read::Stats => drop(stats.read(&txn, drop).await.unwrap()),
            Read::SyncRuns => drop(entity::sync_runs::list(&txn, 50, None).await.unwrap()),
        }
        let statements = self.recorder.take();
        txn.rollback().await.unwrap();
        assert!(!statements.is_empty(), "no statement was recorded");
        statements
    }

    /// A detail request for a random id of `ids` (checked once).
    async fn detail(&self, label: &str, weight: u32, tenant: &Tenant, read: Read, ids: (i64, i64)) -> Variant {
        let path = match read {
            Read::Test => "tests",
            Read::Bug => "bugs",
            _ => "products",
        };
        let url = format!("{}/v1/tenants/{}/{path}/{{id}}", self.base, tenant.id);
        self.get(&url.replace("{id}", &ids.0.to_string())).await;
        Variant {
            label: label.to_owned(),
            weight,
            tenant: tenant.id,
            url,
            ids: Some(ids),
            statements: self.capture(tenant.id, read).await,
            solo: Duration::ZERO,
        }
    }

    /// A request without parameters, with the statements of `read` (none: no database work).
    async fn fixed(&self, label: &str, weight: u32, tenant: Uuid, path: &str, read: Option<Read>) -> Variant {
        let url = format!("{}{path}", self.base);
        self.get(&url).await;
        let statements = match read {
            Some(read) => self.capture(tenant, read).await,
            None => Vec::new(),
        };
        Variant { label: label.to_owned(), weight, tenant, url, ids: None, statements, solo: Duration::ZERO }
    }
}

fn words(list: &[&str]) -> Vec<String> {
    list.iter().map(|w| (*w).to_owned()).collect()
}

async fn groups(ctx: &mut Ctx, tenants: &[Tenant], only: &Option<Vec<String>>) -> Vec<Group> {
    use Direction::{Asc, Desc};
    let big = &tenants[0];
    let small: Vec<&Tenant> = tenants[1..].iter().collect();
    let some_small = |n: usize| small.iter().step_by((small.len() / n).max(1)).take(n).copied().collect::<Vec<_>>();
    let now = Utc::now();
    let days = |n: i64| chrono::Duration::days(n);
    let wanted = |name: &str| only.as_ref().is_none_or(|o| o.iter().any(|w| w == name));
    let txn_ceiling = || vec![Ceiling { label: "pgbench: BEGIN; set_config; the SQL; COMMIT", with_transaction: true }];
    let mut groups = Vec::new();

    if wanted("tests") {
        let mut v = Vec::new();
        let f = TestFilter::default;
        let p = |k| big.product(k);
        v.push(ctx.list("default (-end_at)", 4, big, tests_query(f(), TestSort::EndAt, Desc, 50), 1).await);
        let one_product = TestFilter { product_ids: vec![p(3)], ..f() };
        v.push(ctx.list("product", 3, big, tests_query(one_product.clone(), TestSort::EndAt, Desc, 50), 1).await);
        let products_status =
            TestFilter { product_ids: vec![p(1), p(7)], statuses: words(&["running", "locked"]), ..f() };
        v.push(
            ctx.list("2 products + 2 statuses", 1, big, tests_query(products_status, TestSort::EndAt, Desc, 50), 1)
                .await,
        );
        let archived = TestFilter { statuses: words(&["archived"]), ..f() };
        v.push(ctx.list("status archived", 1, big, tests_query(archived.clone(), TestSort::EndAt, Desc, 50), 1).await);
        let types = TestFilter { testing_types: words(&["rapid", "usability"]), ..f() };
        v.push(ctx.list("2 testing types", 1, big, tests_query(types, TestSort::EndAt, Desc, 50), 1).await);
        let ended = TestFilter { end: TimeRange { from: Some(now - days(90)), to: Some(now) }, ..f() };
        v.push(ctx.list("ended in 90 days", 1, big, tests_query(ended, TestSort::EndAt, Desc, 50), 1).await);
        let started = TestFilter { start: TimeRange { from: Some(now - days(730)), to: Some(now - days(365)) }, ..f() };
        v.push(
            ctx.list("started in a year, start_at", 1, big, tests_query(started, TestSort::StartAt, Asc, 50), 1).await,
        );
        v.push(ctx.list("sort title", 1, big, tests_query(f(), TestSort::Title, Asc, 50), 1).await);
        v.push(ctx.list("sort -status", 1, big, tests_query(f(), TestSort::Status, Desc, 50), 1).await);
        let common = TestFilter { q: Some("checkout".into()), ..f() };
        v.push(ctx.list("q=checkout", 1, big, tests_query(common, TestSort::EndAt, Desc, 50), 1).await);
        let q_product = TestFilter { q: Some("payment".into()), product_ids: vec![p(2)], ..f() };
        v.push(ctx.list("q=payment + product", 1, big, tests_query(q_product, TestSort::EndAt, Desc, 50), 1).await);
        let rare = TestFilter { q: Some("Smart TV 7.3".into()), ..f() };
        v.push(ctx.list("q rare", 1, big, tests_query(rare, TestSort::EndAt, Desc, 50), 1).await);
        v.push(ctx.list("page 2 (cursor)", 2, big, tests_query(f(), TestSort::EndAt, Desc, 50), 2).await);
        v.push(ctx.list("page 20 (cursor)", 1, big, tests_query(f(), TestSort::EndAt, Desc, 50), 20).await);
        v.push(ctx.list("product page 3", 1, big, tests_query(one_product, TestSort::EndAt, Desc, 50), 3).await);
        v.push(ctx.list("title page 2", 1, big, tests_query(f(), TestSort::Title, Asc, 50), 2).await);
        let offset = List::Tests(TestQuery {
            filter: archived,
            sort: TestSort::EndAt,
            direction: Desc,
            window: Window::Offset { offset: 100, limit: 50 },
            include_raw: false,
        });
        v.push(ctx.list("archived, page=3 with total", 1, big, offset, 1).await);
        v.push(ctx.list("limit=200", 1, big, tests_query(f(), TestSort::EndAt, Desc, 200), 1).await);
        for t in some_small(3) {
            v.push(ctx.list("small tenant default", 1, t, tests_query(f(), TestSort::EndAt, Desc, 50), 1).await);
        }
        let small_status = TestFilter { statuses: words(&["archived", "cancelled"]), ..f() };
        v.push(
            ctx.list("small tenant status", 1, small[4], tests_query(small_status, TestSort::EndAt, Desc, 50), 1).await,
        );
        groups.push(Group { name: "GET tests (list mix)".into(), variants: v, ceilings: txn_ceiling() });
    }

    if wanted("bugs") {
        let mut v = Vec::new();
        let f = BugFilter::default;
        let p = |k| big.product(k);
        v.push(ctx.list("default (-reported_at)", 4, big, bugs_query(f(), BugSort::ReportedAt, Desc, 50), 1).await);
        let product = BugFilter { product_ids: vec![p(4)], ..f() };
        v.push(ctx.list("product", 3, big, bugs_query(product, BugSort::ReportedAt, Desc, 50), 1).await);
        let mut rng = Rng::new(7);
        for _ in 0..4 {
            let test = big.tests.0 + big.tests.1 - 1 - rng.below((big.tests.1 / 3) as u64) as i64;
            let one_test = BugFilter { test_ids: vec![test], ..f() };
            v.push(ctx.list("test_id", 1, big, bugs_query(one_test, BugSort::ReportedAt, Desc, 50), 1).await);
        }
        let sev_status = BugFilter { severities: words(&["critical", "high"]), statuses: words(&["accepted"]), ..f() };
        v.push(
            ctx.list("2 severities + accepted", 1, big, bugs_query(sev_status, BugSort::ReportedAt, Desc, 50), 1).await,
        );
        let auto = BugFilter { auto_accepted: true, ..f() };
        v.push(ctx.list("status auto_accepted", 1, big, bugs_query(auto, BugSort::ReportedAt, Desc, 50), 1).await);
        let known = BugFilter { known: Some(true), ..f() };
        v.push(ctx.list("known=true", 1, big, bugs_query(known, BugSort::ReportedAt, Desc, 50), 1).await);
        let month = BugFilter { reported: TimeRange { from: Some(now - days(400)), to: Some(now - days(370)) }, ..f() };
        v.push(ctx.list("reported in a month", 1, big, bugs_query(month, BugSort::ReportedAt, Asc, 50), 1).await);
        v.push(ctx.list("sort severity", 1, big, bugs_query(f(), BugSort::Severity, Asc, 50), 1).await);
        v.push(ctx.list("sort -title", 1, big, bugs_query(f(), BugSort::Title, Desc, 50), 1).await);
        v.push(ctx.list("sort status", 1, big, bugs_query(f(), BugSort::Status, Asc, 50), 1).await);
        let spinner = BugFilter { q: Some("spinner".into()), ..f() };
        v.push(ctx.list("q=spinner", 1, big, bugs_query(spinner, BugSort::ReportedAt, Desc, 50), 1).await);
        let crash = BugFilter { q: Some("crashes".into()), product_ids: vec![p(5)], ..f() };
        v.push(ctx.list("q=crashes + product", 1, big, bugs_query(crash, BugSort::ReportedAt, Desc, 50), 1).await);
        v.push(ctx.list("page 2 (cursor)", 2, big, bugs_query(f(), BugSort::ReportedAt, Desc, 50), 2).await);
        v.push(ctx.list("page 20 (cursor)", 1, big, bugs_query(f(), BugSort::ReportedAt, Desc, 50), 20).await);
        let critical = BugFilter { product_ids: vec![p(0)], severities: words(&["critical"]), ..f() };
        v.push(
            ctx.list("product + critical page 2", 1, big, bugs_query(critical, BugSort::ReportedAt, Desc, 50), 2).await,
        );
        let offset = List::Bugs(BugQuery {
            filter: BugFilter { product_ids: vec![p(6)], ..f() },
            sort: BugSort::ReportedAt,
            direction: Desc,
            window: Window::Offset { offset: 50, limit: 50 },
            include_raw: false,
        });
        v.push(ctx.list("product, page=2 with total", 1, big, offset, 1).await);
        for t in some_small(3) {
            v.push(ctx.list("small tenant default", 1, t, bugs_query(f(), BugSort::ReportedAt, Desc, 50), 1).await);
        }
        groups.push(Group { name: "GET bugs (list mix)".into(), variants: v, ceilings: txn_ceiling() });
    }

    if wanted("products") {
        let mut v = Vec::new();
        v.push(ctx.list("default (name)", 3, big, products_query(ProductSort::Name, Direction::Asc, 50), 1).await);
        v.push(ctx.list("sort -name", 1, big, products_query(ProductSort::Name, Direction::Desc, 50), 1).await);
        v.push(
            ctx.list("sort id, limit 5, page 2", 1, big, products_query(ProductSort::Id, Direction::Asc, 5), 2).await,
        );
        for t in some_small(4) {
            v.push(ctx.list("small tenant", 1, t, products_query(ProductSort::Name, Direction::Asc, 50), 1).await);
        }
        groups.push(Group { name: "GET products".into(), variants: v, ceilings: txn_ceiling() });
    }

    for (name, path, read) in [
        ("test-detail", "tests", Read::Test),
        ("bug-detail", "bugs", Read::Bug),
        ("product-detail", "products", Read::Product),
    ] {
        if !wanted(name) {
            continue;
        }
        let range = |t: &Tenant| {
            let r = match read {
                Read::Test => t.tests,
                Read::Bug => t.bugs,
                _ => t.products,
            };
            (r.0, Tenant::last(r))
        };
        let mut v = vec![ctx.detail("largest tenant, random id", 4, big, read, range(big)).await];
        for t in some_small(4) {
            v.push(ctx.detail("small tenant, random id", 1, t, read, range(t)).await);
        }
        groups.push(Group { name: format!("GET {path}/{{id}}"), variants: v, ceilings: txn_ceiling() });
    }

    if wanted("stats") {
        let stats = |t: &Tenant| format!("/v1/tenants/{}/stats", t.id);
        let mut v = vec![ctx.fixed("largest tenant", 4, big.id, &stats(big), Some(Read::Stats)).await];
        for t in some_small(8) {
            v.push(ctx.fixed("small tenant", 1, t.id, &stats(t), Some(Read::Stats)).await);
        }
        groups.push(Group { name: "GET stats".into(), variants: v, ceilings: txn_ceiling() });
    }

    if wanted("sync-runs") {
        let path = format!("/v1/tenants/{}/sync-runs?limit=50", big.id);
        let v = vec![ctx.fixed("500 runs", 1, big.id, &path, Some(Read::SyncRuns)).await];
        let ceilings = vec![
            Ceiling { label: "pgbench: BEGIN; set_config; the SQL; COMMIT", with_transaction: true },
            Ceiling { label: "pgbench: the bare SELECT (tenant bound per session)", with_transaction: false },
        ];
        groups.push(Group { name: "GET sync-runs?limit=50 (baseline)".into(), variants: v, ceilings });
    }

    if wanted("livez") {
        let v = vec![ctx.fixed("livez", 1, big.id, "/livez", None).await];
        groups.push(Group { name: "GET /livez".into(), variants: v, ceilings: Vec::new() });
    }
    groups
}

// ---------------------------------------------------------------------------------------------------------------
// The cost of one request's SQL alone

/// At most 300 bytes of `text` (long id lists make unreadable plans).
fn shorten(text: &str) -> &str {
    let mut end = text.len().min(300);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `statement` with the random id of a detail request drawn from `ids`.
fn with_id(statement: &Statement, ids: Option<(i64, i64)>, rng: &mut Rng) -> Statement {
    let mut statement = statement.clone();
    if let (Some((lo, hi)), Some(values)) = (ids, statement.values.as_mut()) {
        for value in &mut values.0 {
            if *value == Value::BigInt(Some(RANDOM_ID)) {
                *value = Value::BigInt(Some(lo + rng.below((hi - lo + 1) as u64) as i64));
            }
        }
    }
    statement
}

/// Median time of `BEGIN; set_config; the statements; COMMIT` for `v` on one idle connection of the runtime role (a
/// run to warm up, then up to 7 runs within about 3 s), and, when it takes over `explain_over`, the plans of its
/// statements (`EXPLAIN (ANALYZE, BUFFERS)` under RLS).
async fn solo(db: &DatabaseConnection, v: &Variant, rng: &mut Rng, explain_over: Duration) -> (Duration, String) {
    use sea_orm::TransactionTrait;
    let bind = || {
        Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT set_config('app.tenant_id', $1, true)",
            [v.tenant.to_string().into()],
        )
    };
    let started = Instant::now();
    let mut times = Vec::new();
    for run in 0..8 {
        let t = Instant::now();
        let txn = db.begin().await.unwrap();
        txn.execute_raw(bind()).await.unwrap();
        for statement in &v.statements {
            txn.query_all_raw(with_id(statement, v.ids, rng)).await.unwrap();
        }
        txn.commit().await.unwrap();
        if run > 0 {
            times.push(t.elapsed());
        }
        if !times.is_empty() && started.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    times.sort();
    let median = times.get(times.len() / 2).copied().unwrap_or_default();
    let mut plans = String::new();
    if median > explain_over && !v.statements.is_empty() {
        let txn = db.begin().await.unwrap();
        txn.execute_raw(bind()).await.unwrap();
        for statement in &v.statements {
            let statement = with_id(statement, v.ids, rng);
            let explain =
                Statement { sql: format!("EXPLAIN (ANALYZE, BUFFERS) {}", statement.sql), ..statement.clone() };
            let values = format!("{:?}", statement.values.as_ref().map(|v| &v.0));
            plans.push_str(&format!("{}\n{}\n", statement.sql, shorten(&values)));
            for row in txn.query_all_raw(explain).await.unwrap() {
                plans.push_str(shorten(&row.try_get::<String>("", "QUERY PLAN").unwrap_or_default()));
                plans.push('\n');
            }
        }
        txn.rollback().await.unwrap();
    }
    (median, plans)
}

// ---------------------------------------------------------------------------------------------------------------
// Load

#[derive(Default)]
struct Load {
    ok: usize,
    errors: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    /// Per variant (index of the mix).
    by_variant: BTreeMap<usize, Vec<Duration>>,
    /// A few failed requests: label, status (0: no answer) and the start of the body.
    samples: Vec<String>,
}

/// The weighted choice of a variant.
fn chooser(variants: &[Variant]) -> impl Fn(&mut Rng) -> usize + Clone + use<> {
    let mut cumulative = Vec::new();
    let mut total = 0u64;
    for v in variants {
        total += u64::from(v.weight);
        cumulative.push(total);
    }
    move |rng: &mut Rng| {
        let x = rng.below(total);
        cumulative.iter().position(|&c| x < c).unwrap_or(0)
    }
}

async fn load(http: &reqwest::Client, token: &str, variants: Arc<Vec<Variant>>, clients: usize, secs: u64) -> Load {
    let choose = chooser(&variants);
    let run = |seed: u64, until: Instant, record: bool| {
        let (http, token, variants, choose) = (http.clone(), token.to_owned(), variants.clone(), choose.clone());
        async move {
            let mut rng = Rng::new(seed);
            let mut load = Load::default();
            while Instant::now() < until {
                let chosen = choose(&mut rng);
                let v = &variants[chosen];
                let url = match v.ids {
                    Some((lo, hi)) => v.url.replace("{id}", &(lo + rng.below((hi - lo + 1) as u64) as i64).to_string()),
                    None => v.url.clone(),
                };
                let started = Instant::now();
                let outcome = match http.get(&url).bearer_auth(&token).send().await {
                    Ok(r) => {
                        let status = r.status();
                        match r.bytes().await {
                            Ok(_) if status.is_success() => Ok(()),
                            Ok(body) => Err((
                                status.as_u16(),
                                String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
                            )),
                            Err(e) => Err((status.as_u16(), e.to_string())),
                        }
                    }
                    Err(e) => Err((0, e.to_string())),
                };
                if !record {
                    continue;
                }
                let elapsed = started.elapsed();
                load.latencies.push(elapsed);
                load.by_variant.entry(chosen).or_default().push(elapsed);
                match outcome {
                    Ok(()) => load.ok += 1,
                    Err((status, body)) => {
                        load.errors += 1;
                        if load.samples.len() < 3 {
                            load.samples.push(format!("{}: {status} {body}", v.label));
                        }
                    }
                }
            }
            load
        }
    };
    let warm_up = Instant::now() + Duration::from_secs(1);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..clients {
        tasks.spawn(run(1000 + i as u64, warm_up, false));
    }
    tasks.join_all().await;
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..clients {
        tasks.spawn(run(i as u64, until, true));
    }
    let mut all = Load::default();
    for load in tasks.join_all().await {
        all.ok += load.ok;
        all.errors += load.errors;
        all.latencies.extend(load.latencies);
        for (k, l) in load.by_variant {
            all.by_variant.entry(k).or_default().extend(l);
        }
        all.samples.extend(load.samples);
    }
    all.elapsed = started.elapsed();
    all.latencies.sort();
    for l in all.by_variant.values_mut() {
        l.sort();
    }
    all.samples.truncate(5);
    all
}

// ---------------------------------------------------------------------------------------------------------------
// pgbench

// ---------------------------------------------------------------------------------------------------------------
// Where the CPU goes

const CLOCK_TICKS: f64 = 100.0;

/// Cumulative CPU seconds of `pid` (user + system), and its command name.
fn cpu_of(pid: u32) -> Option<(String, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat[open + 1..close].to_owned();
    let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some((name, ticks / CLOCK_TICKS))
}

/// The machine's busy and total CPU seconds so far.
fn machine_cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = stat.lines().next().unwrap_or_default();
    let v: Vec<f64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: f64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0.0) + v.get(4).copied().unwrap_or(0.0);
    ((total - idle) / CLOCK_TICKS, total / CLOCK_TICKS)
}

/// The CPU seconds of the Postgres backends serving `database` (their title names it).
fn postgres_processes(database: &str) -> HashMap<u32, f64> {
    let mut found = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok())
            && let Some((name, cpu)) = cpu_of(pid)
            && name == "postgres"
            && std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&format!(" {database} ")))
        {
            found.insert(pid, cpu);
        }
    }
    found
}

#[derive(Default, Clone)]
struct Usage {
    wall: f64,
    api: f64,
    postgres: f64,
    client: f64,
    machine_busy: f64,
    machine_total: f64,
    /// Average number of the API's sessions by state, from `pg_stat_activity`.
    sessions: BTreeMap<String, f64>,
    /// Transactions (commits and rollbacks, single statements included) Postgres counted in the database.
    xacts: f64,
}

impl Usage {
    fn cores(&self, cpu: f64) -> String {
        format!("{:.2}", cpu / self.wall.max(1e-9))
    }
}

/// Samples CPU (and the runtime role's sessions) until `done`; `client` is the process making the load.
async fn sample(
    api: u32,
    client: u32,
    superuser: DatabaseConnection,
    database: String,
    done: Arc<AtomicBool>,
) -> Usage {
    let started = Instant::now();
    let base_pg = postgres_processes(&database);
    let (busy0, total0) = machine_cpu();
    let api0 = cpu_of(api).map_or(0.0, |c| c.1);
    let mut client_first = None;
    let mut client_last = 0.0;
    let mut pg_last: HashMap<u32, f64> = HashMap::new();
    let mut sessions: BTreeMap<String, f64> = BTreeMap::new();
    let mut polls = 0.0_f64;
    let xacts_sql =
        format!("SELECT (xact_commit + xact_rollback)::float8 AS n FROM pg_stat_database WHERE datname = '{database}'");
    let xacts = || async {
        let row = superuser.query_one_raw(Statement::from_string(DbBackend::Postgres, xacts_sql.clone())).await;
        row.ok().flatten().and_then(|r| r.try_get::<f64>("", "n").ok()).unwrap_or(0.0)
    };
    let xacts0 = xacts().await;
    let sql = format!(
        "SELECT coalesce(state, '?') AS state, count(*) AS n FROM pg_stat_activity
          WHERE datname = '{database}' AND usename = '{}' GROUP BY 1",
        tests::database::RUNTIME_ROLE
    );
    loop {
        if let Some((_, cpu)) = cpu_of(client) {
            client_first.get_or_insert(cpu);
            client_last = cpu;
        }
        for (pid, cpu) in postgres_processes(&database) {
            pg_last.insert(pid, cpu);
        }
        if let Ok(rows) = superuser.query_all_raw(Statement::from_string(DbBackend::Postgres, sql.clone())).await {
            polls += 1.0;
            for row in rows {
                let state: String = row.try_get("", "state").unwrap_or_default();
                let n: i64 = row.try_get("", "n").unwrap_or_default();
                *sessions.entry(state).or_default() += n as f64;
            }
        }
        if done.load(Ordering::Relaxed) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (busy1, total1) = machine_cpu();
    let xacts = xacts().await - xacts0;
    let postgres =
        pg_last.iter().map(|(pid, cpu)| cpu - base_pg.get(pid).copied().unwrap_or(0.0)).filter(|d| *d > 0.0).sum();
    let client = client_last - client_first.unwrap_or(client_last);
    for n in sessions.values_mut() {
        *n /= polls.max(1.0);
    }
    Usage {
        wall: started.elapsed().as_secs_f64(),
        api: cpu_of(api).map_or(0.0, |c| c.1) - api0,
        postgres,
        client,
        machine_busy: busy1 - busy0,
        machine_total: total1 - total0,
        sessions,
        xacts,
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Processes

// ---------------------------------------------------------------------------------------------------------------

struct Row {
    group: String,
    /// Label, weight and time alone of each variant of the mix.
    variants: Vec<(String, u32, Duration)>,
    load: Load,
    api_usage: Usage,
    ceilings: Vec<(&'static str, PgResult, Usage)>,
}

#[tokio::main]
async fn main() {
    let child = tests::bench::serve_if_child(|url| {
        // The API as production runs it: one HTTP worker per core, a pool of 10 ([`api_pool`]). Tokens outlive the
        // benchmark.
        let mut settings = tests::app::test_settings_for(url);
        settings.workers = env_usize("BENCH_API_WORKERS", 0);
        settings.database_max_connections = u32::try_from(api_pool()).unwrap();
        settings.database_acquire_timeout_ms = 3000;
        settings.access_token_ttl_secs = 3600;
        settings
    });
    if child.await {
        return;
    }
    let db = tests::TestDatabase::migrated().await;
    let api = tests::bench::ChildApi::spawn(&db.runtime_url());
    tokio::select! {
        () = run(&db, &api) => {}
        _ = tokio::signal::ctrl_c() => eprintln!("interrupted: stopping the API and dropping the database"),
    }
    drop(api);
    if std::env::var_os("BENCH_KEEP_DB").is_some() {
        println!("kept the database {} (drop it with `DROP DATABASE {0}`)", db.name);
        std::mem::forget(db);
    } else {
        drop(db);
    }
}

async fn run(db: &tests::TestDatabase, api: &tests::bench::ChildApi) {
    let secs = env_usize("BENCH_SECS", 10) as u64;
    let clients = env_usize("BENCH_CLIENTS", 32);
    let pg_clients = env_usize("BENCH_PG_CLIENTS", 32);
    let tenant_count = env_usize("BENCH_TENANTS", 20).max(6) as i64;
    let only: Option<Vec<String>> =
        std::env::var("BENCH_ONLY").ok().map(|s| s.split(',').map(|w| w.trim().to_owned()).collect());
    let api_pid = api.pid();
    let base = api.base();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients.max(8))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    // One user, owner of every tenant.
    let token = tests::bench::register(&http, &base).await;
    let mut tenants = Vec::new();
    for k in 0..tenant_count {
        let id = tests::bench::create_tenant(&http, &base, &token, &format!("Bench {k}"), &format!("bench-{k}")).await;
        tenants.push(shape(k, id));
    }
    let seed_time = seed(&db.superuser_url(), &tenants).await;
    let sizes = format!(
        "{} tenants: the largest {} products, {} tests, {} bugs; the others {}..{} tests (3 bugs each)",
        tenants.len(),
        tenants[0].products.1,
        tenants[0].tests.1,
        tenants[0].bugs.1,
        tenants[1].tests.1,
        tenants.last().unwrap().tests.1
    );
    println!("seeded {sizes} in {:.1} s (with VACUUM ANALYZE)", seed_time.as_secs_f64());

    let (runtime, recorder) = Recorder::connect(&db.runtime_url()).await;
    let mut ctx =
        Ctx { base: base.clone(), token: token.clone(), http: http.clone(), runtime, recorder, mismatches: Vec::new() };
    let mut groups = groups(&mut ctx, &tenants, &only).await;
    for m in &ctx.mismatches {
        println!("WARNING: {m}");
    }
    // What each request's SQL costs alone, and the plans of the slow ones.
    let mut plans = String::new();
    let mut rng = Rng::new(99);
    for group in &mut groups {
        for v in group.variants.iter_mut().filter(|v| !v.statements.is_empty()) {
            let (median, plan) = solo(&ctx.runtime, v, &mut rng, Duration::from_millis(5)).await;
            v.solo = median;
            if !plan.is_empty() {
                plans.push_str(&format!("## {} / {}: {:.1} ms alone\n{plan}\n", group.name, v.label, ms_f(median)));
            }
        }
    }
    ctx.runtime.close().await.ok();

    let superuser = db.superuser().await.clone();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pool = api_pool();
    println!("\n{clients} clients, {secs} s per phase, {cores} cores, API pool {pool}, pgbench -c {pg_clients} -j 2\n");
    let mut rows = Vec::new();
    for group in groups {
        let variants = Arc::new(group.variants);
        // Every phase starts from a clean checkpoint: one that lands in a phase costs it several seconds of I/O.
        superuser.execute_unprepared("CHECKPOINT").await.unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let sampler =
            tokio::spawn(sample(api_pid, std::process::id(), superuser.clone(), db.name.clone(), done.clone()));
        let load = load(&http, &token, variants.clone(), clients, secs).await;
        done.store(true, Ordering::Relaxed);
        let api_usage = sampler.await.unwrap();
        println!(
            "{}: {:.0} req/s, p95 {:.1} ms, {} errors",
            group.name,
            load.ok as f64 / load.elapsed.as_secs_f64(),
            percentile(&load.latencies, 0.95).as_secs_f64() * 1e3,
            load.errors
        );
        for s in &load.samples {
            println!("  failed: {s}");
        }
        let mut ceilings = Vec::new();
        for ceiling in group.ceilings {
            // Bare statements still need their tenant for RLS: bound for the session, in the connection options.
            let url = if ceiling.with_transaction {
                db.runtime_url()
            } else {
                format!("{}?options=-c%20app.tenant_id%3D{}", db.runtime_url(), variants[0].tenant)
            };
            superuser.execute_unprepared("CHECKPOINT").await.unwrap();
            let scripts: Vec<PgScript> = variants
                .iter()
                .map(|v| PgScript { tenant: v.tenant, statements: &v.statements, weight: v.weight, ids: v.ids })
                .collect();
            let (child, scripts) = pgbench(&url, &scripts, ceiling.with_transaction, pg_clients, secs);
            let done = Arc::new(AtomicBool::new(false));
            let sampler = tokio::spawn(sample(api_pid, child.id(), superuser.clone(), db.name.clone(), done.clone()));
            let result = finish_pgbench(child, scripts).await;
            done.store(true, Ordering::Relaxed);
            let usage = sampler.await.unwrap();
            match &result.error {
                Some(e) => println!("  {}: FAILED {e}", ceiling.label),
                None => println!("  {}: {:.0} tx/s ({} failed)", ceiling.label, result.tps, result.failed),
            }
            ceilings.push((ceiling.label, result, usage));
        }
        let variants = variants.iter().map(|v| (v.label.clone(), v.weight, v.solo)).collect();
        rows.push(Row { group: group.name, variants, load, api_usage, ceilings });
    }

    let report = report(&rows, &sizes, seed_time, clients, secs, pg_clients, cores, &ctx.mismatches);
    println!("\n{report}");
    let target = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(std::path::Path::to_path_buf))
        .unwrap_or_else(|| std::path::PathBuf::from("target"));
    for (name, text) in [("bench-query.md", &report), ("bench-query-plans.txt", &plans)] {
        let path = target.join(name);
        match std::fs::write(&path, text) {
            Ok(()) => println!("written to {}", path.display()),
            Err(e) => println!("could not write {}: {e}", path.display()),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn report(
    rows: &[Row],
    sizes: &str,
    seed_time: Duration,
    clients: usize,
    secs: u64,
    pg_clients: usize,
    cores: usize,
    mismatches: &[String],
) -> String {
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1e3);
    let mut out = String::new();
    out.push_str(&format!(
        "Query API benchmark (`cargo bench -p tests --bench query`), {}: {sizes}; seeded in {:.0} s. \
         {clients} clients, {secs} s per phase, {cores} cores; API release build, 2 HTTP workers, pool {}; \
         pgbench as the runtime role, -M prepared -c {pg_clients} -j 2, the same requests with the same weights.\n\n",
        Utc::now().format("%Y-%m-%d"),
        seed_time.as_secs_f64(),
        api_pool()
    ));
    out.push_str("| endpoint | API req/s | p50 ms | p95 ms | p99 ms | errors | pgbench tx/s | ratio |\n");
    out.push_str("|---|---|---|---|---|---|---|---|\n");
    for row in rows {
        let rps = row.load.ok as f64 / row.load.elapsed.as_secs_f64();
        let l = &row.load.latencies;
        let (tps, ratio) = match row.ceilings.first() {
            Some((_, r, _)) if r.error.is_none() && r.tps > 0.0 => {
                (format!("{:.0}", r.tps), format!("{:.0}%", 100.0 * rps / r.tps))
            }
            Some(_) => ("failed".into(), "-".into()),
            None => ("-".into(), "-".into()),
        };
        out.push_str(&format!(
            "| {} | {rps:.0} | {} | {} | {} | {} | {tps} | {ratio} |\n",
            row.group,
            ms(percentile(l, 0.50)),
            ms(percentile(l, 0.95)),
            ms(percentile(l, 0.99)),
            row.load.errors
        ));
        for (label, r, _) in row.ceilings.iter().skip(1) {
            let (tps, ratio) = if r.error.is_none() && r.tps > 0.0 {
                (format!("{:.0}", r.tps), format!("{:.0}%", 100.0 * rps / r.tps))
            } else {
                ("failed".into(), "-".into())
            };
            out.push_str(&format!("| ↳ {label} | | | | | | {tps} | {ratio} |\n"));
        }
    }
    out.push_str(
        "\nWhere the CPU went (cores busy on average; Postgres = the backends of the benchmark's database; client = \
         the load generator or pgbench; other = the rest of the machine's busy time, the kernel's loopback TCP \
         included; API sessions = the API's pool connections by state, on average):\n\n",
    );
    out.push_str(
        "| phase | API | Postgres | client | other (kernel, other processes) | machine busy | Postgres xacts per request | \
         API sessions |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|---|\n");
    let usage = |u: &Usage| {
        let other = (u.machine_busy - u.api - u.postgres - u.client).max(0.0);
        format!(
            "{} | {} | {} | {} | {:.0}%",
            u.cores(u.api),
            u.cores(u.postgres),
            u.cores(u.client),
            u.cores(other),
            100.0 * u.machine_busy / u.machine_total.max(1e-9)
        )
    };
    for row in rows {
        let u = &row.api_usage;
        let sessions: Vec<String> = u.sessions.iter().map(|(s, n)| format!("{s} {n:.1}")).collect();
        let requests = (row.load.ok + row.load.errors) as f64 * u.wall / row.load.elapsed.as_secs_f64();
        out.push_str(&format!(
            "| {} (API) | {} | {:.2} | {} |\n",
            row.group,
            usage(u),
            u.xacts / requests.max(1.0),
            sessions.join(", ")
        ));
        for (label, r, u) in &row.ceilings {
            out.push_str(&format!(
                "| ↳ {label} ({:.2} ms avg, {} failed) | {} | {:.2} | |\n",
                r.latency_ms,
                r.failed,
                usage(u),
                u.xacts / (r.tps * u.wall).max(1.0)
            ));
        }
    }
    out.push_str(
        "\nPer request of the mixes (SQL alone: median of its transaction on one idle connection; API latency at \
         the group's load; pgbench: average latency of the same statements in the ceiling run, with its \
         connections):\n\n",
    );
    out.push_str("| endpoint | request | weight | SQL alone ms | API n | API p50 ms | API p95 ms | pgbench avg ms |\n");
    out.push_str("|---|---|---|---|---|---|---|---|\n");
    for row in rows {
        let pg = row.ceilings.first().map(|(_, r, _)| r);
        for (k, (label, weight, alone)) in row.variants.iter().enumerate() {
            let l = row.load.by_variant.get(&k).map(Vec::as_slice).unwrap_or_default();
            let pg_ms = pg.and_then(|r| match r.script_latency_ms.get(k) {
                Some(ms) => Some(*ms),
                None if row.variants.len() == 1 => Some(r.latency_ms),
                None => None,
            });
            let alone = if alone.is_zero() { "-".to_owned() } else { format!("{:.2}", ms_f(*alone)) };
            out.push_str(&format!(
                "| {} | {label} | {weight} | {alone} | {} | {} | {} | {} |\n",
                row.group,
                l.len(),
                ms(percentile(l, 0.50)),
                ms(percentile(l, 0.95)),
                pg_ms.map_or("-".to_owned(), |v| format!("{v:.2}"))
            ));
        }
    }
    if !mismatches.is_empty() {
        out.push_str("\nPages that differ between the API and the data layer's statement:\n");
        for m in mismatches {
            out.push_str(&format!("- {m}\n"));
        }
    }
    out
}
