//! A simulator of the TestIO Customer API v2 (see `shared/docs/testio-customer-api.md`), on a real socket, for the
//! sync worker's tests, its benchmark and the demo.
//!
//! It honours what is known of the real API: `Authorization: Token <token>` per account, root-key envelopes,
//! `page`/`per_page` (default 25, only with `page`; without `page` the newest 150 tests), tests ordered by `end_at`
//! descending, bugs by `filter_test_cycle_ids`, 404 for foreign ids. Data comes from a seed and can be changed while
//! the server runs; faults can be injected (500 at chosen offsets of a product's test list, 429 with `Retry-After`,
//! 524 on large bug batches, revoked tokens).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use chrono::{DateTime, Duration, FixedOffset, TimeZone, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

/// Statuses a test can have; the last two are final.
pub const TEST_STATUSES: [&str; 7] =
    ["initialized", "customer_finalized", "waiting", "running", "locked", "archived", "cancelled"];

#[derive(Debug, Clone)]
pub struct Product {
    pub id: i64,
    pub name: String,
    pub kind: &'static str,
}

#[derive(Debug, Clone)]
pub struct Test {
    pub id: i64,
    pub product_id: i64,
    pub title: String,
    pub status: &'static str,
    pub testing_type: &'static str,
    pub start_at: DateTime<FixedOffset>,
    pub end_at: DateTime<FixedOffset>,
}

#[derive(Debug, Clone)]
pub struct Bug {
    pub id: i64,
    pub test_id: i64,
    pub title: String,
    pub severity: &'static str,
    pub status: &'static str,
}

/// One TestIO customer account: what a token can see.
#[derive(Debug, Clone, Default)]
pub struct Account {
    pub products: BTreeMap<i64, Product>,
    pub tests: BTreeMap<i64, Test>,
    pub bugs: BTreeMap<i64, Bug>,
}

/// Sizes of a generated account.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub products: usize,
    pub tests_per_product: usize,
    pub bugs_per_test: usize,
}

/// A small deterministic generator (splitmix64), so that a seed always produces the same account.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

impl Account {
    /// A realistic account from `seed`. Ids are unique across accounts made from different seeds (test ids are global
    /// at TestIO), and `end_at` is spread so that orderings are unambiguous.
    pub fn generate(seed: u64, shape: Shape) -> Self {
        let mut rng = Rng(seed);
        let base = (seed % 1000) as i64 * 10_000_000;
        let mut account = Account::default();
        let offsets = [FixedOffset::east_opt(2 * 3600), FixedOffset::east_opt(0), FixedOffset::west_opt(5 * 3600)];
        let epoch = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).single().unwrap_or_default();
        for p in 0..shape.products {
            let product_id = base + 1 + p as i64;
            let kinds = ["website", "mobile_app_ios", "mobile_app_android", "streaming_app"];
            account.products.insert(
                product_id,
                Product { id: product_id, name: format!("Product {product_id}"), kind: rng.pick(&kinds) },
            );
            for t in 0..shape.tests_per_product {
                let test_id = base + 1_000_000 + (p * shape.tests_per_product + t) as i64;
                let end = epoch - Duration::minutes((p * shape.tests_per_product + t) as i64 * 37 + 1);
                let offset = rng.pick(&offsets).unwrap_or(FixedOffset::east_opt(0).unwrap_or_else(|| unreachable!()));
                let status = if t < 3 {
                    rng.pick(&TEST_STATUSES[..5])
                } else {
                    rng.pick(&["archived", "archived", "cancelled"])
                };
                account.tests.insert(
                    test_id,
                    Test {
                        id: test_id,
                        product_id,
                        title: format!("Exploratory test {test_id}"),
                        status,
                        testing_type: rng.pick(&["coverage", "focused", "rapid", "usability", "custom"]),
                        start_at: (end - Duration::hours(48)).with_timezone(&offset),
                        end_at: end.with_timezone(&offset),
                    },
                );
                for b in 0..shape.bugs_per_test {
                    let bug_id =
                        base + 5_000_000 + ((p * shape.tests_per_product + t) * shape.bugs_per_test + b) as i64;
                    account.bugs.insert(
                        bug_id,
                        Bug {
                            id: bug_id,
                            test_id,
                            title: format!("Bug {bug_id}"),
                            severity: rng.pick(&["low", "high", "critical", "visual", "content"]),
                            status: rng.pick(&["forwarded", "accepted", "rejected"]),
                        },
                    );
                }
            }
        }
        account
    }

    /// A product's tests in the order the API lists them: `end_at` descending.
    pub fn tests_of(&self, product_id: i64) -> Vec<&Test> {
        let mut tests: Vec<&Test> = self.tests.values().filter(|t| t.product_id == product_id).collect();
        tests.sort_by(|a, b| b.end_at.cmp(&a.end_at).then(b.id.cmp(&a.id)));
        tests
    }
}

/// Injected faults.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// `(product id, offset)`: a page of that product's test list containing the offset answers 500.
    pub failing_test_offsets: HashSet<(i64, usize)>,
    /// The next N requests answer 429 with this `Retry-After` (seconds).
    pub rate_limited: Option<(u32, u64)>,
    /// A bug request naming more test ids than this answers 524.
    pub bug_batch_limit: Option<usize>,
}

#[derive(Default)]
struct State {
    accounts: HashMap<String, Account>,
    revoked: HashSet<String>,
    faults: Faults,
    requests: u64,
}

/// A running simulator.
pub struct Simulator {
    /// Base URL to configure clients with, ending in `/customer/v2/`.
    pub base_url: String,
    state: Arc<Mutex<State>>,
    handle: ServerHandle,
}

impl Simulator {
    /// Starts a simulator on a free port of 127.0.0.1.
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new().app_data(data.clone()).service(
                web::scope("/customer/v2")
                    .route("/products", web::get().to(products))
                    .route("/products/{id}", web::get().to(product))
                    .route("/products/{id}/exploratory_tests", web::get().to(product_tests))
                    .route("/exploratory_tests/{id}", web::get().to(one_test))
                    .route("/bugs", web::get().to(bugs)),
            )
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("cannot bind the simulator");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Self { base_url: format!("http://127.0.0.1:{port}/customer/v2/"), state, handle }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds (or replaces) the account reachable with `token`.
    pub fn add_account(&self, token: &str, account: Account) {
        self.lock().accounts.insert(token.to_owned(), account);
    }

    /// Changes an account's data while the server runs.
    pub fn modify(&self, token: &str, change: impl FnOnce(&mut Account)) {
        if let Some(account) = self.lock().accounts.get_mut(token) {
            change(account);
        }
    }

    /// From now on `token` gets 401.
    pub fn revoke(&self, token: &str) {
        self.lock().revoked.insert(token.to_owned());
    }

    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    /// Requests served so far (faulty ones included).
    pub fn requests(&self) -> u64 {
        self.lock().requests
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

type Shared = web::Data<Mutex<State>>;

/// Authenticates, applies the request-wide faults, then answers with `f` run on the caller's account (under the
/// lock: no copy of the account per request).
fn serve(req: &HttpRequest, state: &Shared, f: impl FnOnce(&Account, &Faults) -> HttpResponse) -> HttpResponse {
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    s.requests += 1;
    if let Some((left, secs)) = s.faults.rate_limited {
        s.faults.rate_limited = (left > 1).then_some((left - 1, secs));
        return HttpResponse::TooManyRequests().insert_header(("Retry-After", secs.to_string())).finish();
    }
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Token "))
        .unwrap_or_default();
    if s.revoked.contains(token) {
        return HttpResponse::Unauthorized().json(json!({ "error": "invalid token" }));
    }
    match s.accounts.get(token) {
        Some(account) => f(account, &s.faults),
        None => HttpResponse::Unauthorized().json(json!({ "error": "invalid token" })),
    }
}

fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(json!({ "error": "not found" }))
}

fn product_json(p: &Product) -> Value {
    json!({ "id": p.id, "name": p.name, "description": null, "type": p.kind, "default_section_id": null,
            "sections": [] })
}

fn test_json(t: &Test, account: &Account) -> Value {
    let product = account.products.get(&t.product_id);
    json!({
        "id": t.id, "title": t.title, "test_title": t.title, "status": t.status, "testing_type": t.testing_type,
        "start_at": t.start_at.to_rfc3339(), "end_at": t.end_at.to_rfc3339(),
        "goal_text": "Find bugs", "instructions_text": null, "out_of_scope_text": null,
        "product": { "id": t.product_id, "name": product.map(|p| p.name.clone()) },
        "test_environment": { "id": t.id, "title": "Staging", "url": "https://staging.example.com",
                              "username": "tester", "password": "s3cret-env-password" },
        "features": [], "requirements": [], "review_status": null,
    })
}

fn bug_json(b: &Bug, account: &Account) -> Value {
    let test = account.tests.get(&b.test_id);
    json!({
        "id": b.id, "title": b.title, "severity": b.severity, "status": b.status, "auto_accepted": false,
        "known": false, "reported_at": test.map(|t| t.start_at.to_rfc3339()),
        "test": { "id": b.test_id, "title": test.map(|t| t.title.clone()) },
        "feature": null, "author": { "name": "Tester" }, "steps": ["Open the page", "Click"],
        "expected_result": "It works", "actual_result": "It does not", "devices": [], "attachments": [],
        "comments": [], "exported_at": null, "external_idx": null,
    })
}

async fn products(req: HttpRequest, state: Shared) -> HttpResponse {
    serve(&req, &state, |account, _| {
        HttpResponse::Ok().json(json!({ "products": account.products.values().map(product_json).collect::<Vec<_>>() }))
    })
}

async fn product(req: HttpRequest, state: Shared, id: web::Path<i64>) -> HttpResponse {
    serve(&req, &state, |account, _| match account.products.get(&id) {
        Some(p) => HttpResponse::Ok().json(json!({ "product": product_json(p) })),
        None => not_found(),
    })
}

#[derive(Deserialize)]
struct Paging {
    page: Option<usize>,
    per_page: Option<usize>,
}

async fn product_tests(
    req: HttpRequest,
    state: Shared,
    id: web::Path<i64>,
    paging: web::Query<Paging>,
) -> HttpResponse {
    let id = id.into_inner();
    serve(&req, &state, |account, faults| list_tests(account, faults, id, &paging))
}

fn list_tests(account: &Account, faults: &Faults, id: i64, paging: &Paging) -> HttpResponse {
    if !account.products.contains_key(&id) {
        return not_found();
    }
    let tests = account.tests_of(id);
    let range = match paging.page {
        // Without `page`, `per_page` is ignored and only the newest 150 come back.
        None => 0..tests.len().min(150),
        Some(page) => {
            let per_page = paging.per_page.unwrap_or(25).max(1);
            let start = page.saturating_sub(1) * per_page;
            start.min(tests.len())..(start + per_page).min(tests.len())
        }
    };
    if faults.failing_test_offsets.iter().any(|(p, offset)| *p == id && range.contains(offset)) {
        return HttpResponse::InternalServerError().json(json!({ "error": "internal server error" }));
    }
    let page: Vec<Value> = tests[range].iter().map(|t| test_json(t, account)).collect();
    HttpResponse::Ok().json(json!({ "exploratory_tests": page }))
}

async fn one_test(req: HttpRequest, state: Shared, id: web::Path<i64>) -> HttpResponse {
    serve(&req, &state, |account, _| match account.tests.get(&id) {
        Some(t) => HttpResponse::Ok().json(json!({ "exploratory_test": test_json(t, account) })),
        None => not_found(),
    })
}

#[derive(Deserialize)]
struct BugFilter {
    filter_test_cycle_ids: Option<String>,
}

async fn bugs(req: HttpRequest, state: Shared, filter: web::Query<BugFilter>) -> HttpResponse {
    serve(&req, &state, |account, faults| list_bugs(account, faults, &filter))
}

fn list_bugs(account: &Account, faults: &Faults, filter: &BugFilter) -> HttpResponse {
    let ids: HashSet<i64> = filter
        .filter_test_cycle_ids
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    if faults.bug_batch_limit.is_some_and(|limit| ids.len() > limit) {
        return HttpResponse::build(actix_web::http::StatusCode::from_u16(524).unwrap_or_default())
            .body("A timeout occurred");
    }
    let found: Vec<Value> =
        account.bugs.values().filter(|b| ids.contains(&b.test_id)).map(|b| bug_json(b, account)).collect();
    HttpResponse::Ok().json(json!({ "bugs": found }))
}
