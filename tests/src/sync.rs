//! Support for sync tests: a tenant connected to a simulated TestIO account, workers built as in production against
//! the test database, and snapshots that compare the mirror with the simulator's truth.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::app::{TEST_TOKEN_KEYS, TestApp, TestUser, defaults_without_env, spawn_app_with};
use crate::database::TestDatabase;
use crate::testio_sim::{Account, Shape, Simulator};

/// Worker settings for tests: the declared defaults (never the environment), the test database, the test token keys,
/// fast polling, quick retries. The allowed base URLs are the production default, which admits no simulator: a test
/// that syncs sets `allowed_base_urls` (the fixture's workers do, see [`SyncFixture::worker_settings`]).
pub fn worker_settings(db: &TestDatabase) -> worker::Settings {
    worker_settings_for(&db.runtime_url())
}

/// [`worker_settings`] for a database URL (a child process has the URL, not the [`TestDatabase`]).
pub fn worker_settings_for(database_url: &str) -> worker::Settings {
    let mut settings: worker::Settings = defaults_without_env();
    settings.database_url = database_url.into();
    settings.database_max_connections = 4;
    settings.database_startup_timeout_secs = 5;
    settings.token_keys = Some(TEST_TOKEN_KEYS.into());
    settings.poll_interval_ms = 50;
    settings.backoff_base_ms = 5;
    settings.max_retry_after_secs = 5;
    settings.request_timeout_secs = 5;
    settings.allowed_base_urls = "https://api.test.io/".to_owned();
    // No metrics port (the metrics tests bind one on port 0).
    settings.metrics_addr = String::new();
    crate::app::unlimited_plans(&mut settings.plans);
    settings
}

/// How many pairs of sync runs of one tenant overlapped in time (never any: a tenant is synced by one worker at once).
pub async fn overlapping_runs(db: &TestDatabase) -> i64 {
    db.count(
        "SELECT count(*) FROM sync_runs a JOIN sync_runs b
           ON a.tenant_id = b.tenant_id AND a.id < b.id
          AND a.started_at < b.finished_at AND b.started_at < a.finished_at",
    )
    .await
}

pub async fn build_worker(settings: &worker::Settings) -> worker::Worker {
    worker::Worker::build(settings, CancellationToken::new()).await.expect("the worker did not build")
}

/// An app, a simulator, and one tenant whose owner connected it to a simulated account.
pub struct SyncFixture {
    pub app: TestApp,
    pub sim: Simulator,
    pub owner: TestUser,
    pub tenant: uuid::Uuid,
    pub token: String,
    /// `TESTIO_ALLOWED_BASE_URLS` of the app and of the fixture's workers: the simulator, and whatever else the test
    /// asked for.
    pub allowed_base_urls: String,
}

impl SyncFixture {
    /// A tenant connected to a generated account of `shape`; the app and the workers allow only the simulator.
    pub async fn connected(shape: Shape) -> Self {
        Self::connected_allowing(shape, &[]).await
    }

    /// [`SyncFixture::connected`], the app and the workers also allowing the base URLs `extra`.
    pub async fn connected_allowing(shape: Shape, extra: &[&str]) -> Self {
        let sim = Simulator::start().await;
        let allowed: Vec<&str> = std::iter::once(sim.base_url.as_str()).chain(extra.iter().copied()).collect();
        let allowed = allowed.join(",");
        Self::connected_to(sim, shape, &allowed).await
    }

    /// A tenant connected to a generated account of `shape` on `sim`, the app and the workers allowing exactly
    /// `allowed_base_urls` (which must admit the simulator).
    pub async fn connected_to(sim: Simulator, shape: Shape, allowed_base_urls: &str) -> Self {
        Self::connected_to_account(sim, Account::generate(1, shape), allowed_base_urls).await
    }

    /// A tenant connected to `account` on a new simulator; the app and the workers allow only the simulator.
    pub async fn with_account(account: Account) -> Self {
        let sim = Simulator::start().await;
        let allowed = sim.base_url.clone();
        Self::connected_to_account(sim, account, &allowed).await
    }

    /// [`SyncFixture::connected_to`] with a given account.
    pub async fn connected_to_account(sim: Simulator, account: Account, allowed_base_urls: &str) -> Self {
        let allowed_base_urls = allowed_base_urls.to_owned();
        let app = spawn_app_with(|s| s.testio_allowed_base_urls = allowed_base_urls.clone()).await;
        let owner = app.register("owner@example.com").await;
        let tenant = app.create_tenant(&owner, "acme").await;
        let token = "token-acme-0001".to_owned();
        sim.add_account(&token, account);
        let fixture = Self { app, sim, owner, tenant, token, allowed_base_urls };
        fixture.connect_ok(fixture.tenant, &fixture.token).await;
        fixture
    }

    /// `PUT .../testio-connection` as the owner.
    pub async fn connect(&self, tenant: uuid::Uuid, token: &str) -> reqwest::Response {
        self.app.put_connection(&self.owner, tenant, json!({ "token": token, "base_url": self.sim.base_url })).await
    }

    /// Settings of a worker on the fixture's database that allows what the app allows.
    pub fn worker_settings(&self) -> worker::Settings {
        let mut settings = worker_settings(&self.app.db);
        settings.allowed_base_urls = self.allowed_base_urls.clone();
        settings
    }

    /// One sync of the fixture's tenant by a fresh worker; returns the run as the API shows it.
    pub async fn sync(&self, full: bool) -> Value {
        self.sync_tenant(self.tenant, full).await
    }

    pub async fn sync_tenant(&self, tenant: uuid::Uuid, full: bool) -> Value {
        self.sync_tenant_with(&self.worker_settings(), tenant, full).await
    }

    /// One sync of `tenant` by a fresh worker built with `settings`; returns the run as the API shows it.
    pub async fn sync_tenant_with(&self, settings: &worker::Settings, tenant: uuid::Uuid, full: bool) -> Value {
        self.sync_tenant_on(&build_worker(settings).await, tenant, full).await
    }

    /// One sync of `tenant` by `worker` (built once for many runs: building one checks the database role); returns
    /// the run as the API shows it.
    pub async fn sync_tenant_on(&self, worker: &worker::Worker, tenant: uuid::Uuid, full: bool) -> Value {
        let finished = worker.sync_tenant(entity::TenantId(tenant), full).await.expect("the sync errored");
        let run = finished.run.unwrap_or_else(|| panic!("no run: {}", finished.note));
        let response = self.app.get_sync_run(&self.owner, tenant, run.id).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// One sync of the fixture's tenant by a fresh worker built with `settings`.
    pub async fn sync_with(&self, settings: &worker::Settings, full: bool) -> Value {
        self.sync_tenant_with(settings, self.tenant, full).await
    }

    /// [`SyncFixture::connect`], which must succeed.
    async fn connect_ok(&self, tenant: uuid::Uuid, token: &str) {
        let response = self.connect(tenant, token).await;
        assert_eq!(response.status(), 200, "connecting failed: {}", response.text().await.unwrap_or_default());
    }

    /// `GET .../testio-connection` of `tenant` as the owner.
    pub async fn connection_of(&self, tenant: uuid::Uuid) -> Value {
        let response = self.app.get_connection(&self.owner, tenant).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// `GET .../testio-connection` of the fixture's tenant as the owner.
    pub async fn connection(&self) -> Value {
        self.connection_of(self.tenant).await
    }

    /// Another tenant of the owner, `slug`, connected to `account` on the fixture's simulator under `token`.
    pub async fn add_tenant(&self, slug: &str, token: &str, account: Account) -> uuid::Uuid {
        let tenant = self.app.create_tenant(&self.owner, slug).await;
        self.sim.add_account(token, account);
        self.connect_ok(tenant, token).await;
        tenant
    }

    /// The simulator's account behind `token`.
    pub fn truth_of(&self, token: &str) -> Snapshot {
        let mut account = None;
        self.sim.modify(token, |a| account = Some(a.clone()));
        Snapshot::of_account(&account.expect("no such account"))
    }

    pub fn truth(&self) -> Snapshot {
        self.truth_of(&self.token)
    }

    pub async fn mirror(&self) -> Snapshot {
        Snapshot::of_mirror(&self.app.db, self.tenant).await
    }
}

/// (product id, status, title, end_at) of a test.
pub type TestFields = (i64, String, String, Option<DateTime<Utc>>);

/// The fields that must agree between TestIO and the mirror.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    pub products: BTreeMap<i64, String>,
    pub tests: BTreeMap<i64, TestFields>,
    /// id -> (test id, status, severity)
    pub bugs: BTreeMap<i64, (i64, String, String)>,
}

impl Snapshot {
    pub fn of_account(account: &Account) -> Self {
        Self {
            products: account.products.values().map(|p| (p.id, p.name.clone())).collect(),
            tests: account
                .tests
                .values()
                .map(|t| {
                    (t.id, (t.product_id, t.status.to_string(), t.title.clone(), Some(t.end_at.with_timezone(&Utc))))
                })
                .collect(),
            bugs: account
                .bugs
                .values()
                .map(|b| (b.id, (b.test_id, b.status.to_string(), b.severity.to_string())))
                .collect(),
        }
    }

    /// The tenant's mirror, read as the superuser (so RLS cannot hide a stray row from the comparison).
    pub async fn of_mirror(db: &TestDatabase, tenant: uuid::Uuid) -> Self {
        let conn = db.superuser().await;
        let rows =
            |sql: &str| conn.query_all_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, [tenant.into()]));
        let products = rows("SELECT testio_id, name FROM testio_products WHERE tenant_id = $1").await.unwrap();
        let tests = rows("SELECT testio_id, product_id, status, title, end_at FROM testio_tests WHERE tenant_id = $1")
            .await
            .unwrap();
        let bugs =
            rows("SELECT testio_id, test_id, status, severity FROM testio_bugs WHERE tenant_id = $1").await.unwrap();
        Self {
            products: products
                .iter()
                .map(|r| (r.try_get("", "testio_id").unwrap(), r.try_get("", "name").unwrap()))
                .collect(),
            tests: tests
                .iter()
                .map(|r| {
                    (
                        r.try_get("", "testio_id").unwrap(),
                        (
                            r.try_get("", "product_id").unwrap(),
                            r.try_get("", "status").unwrap(),
                            r.try_get("", "title").unwrap(),
                            r.try_get("", "end_at").unwrap(),
                        ),
                    )
                })
                .collect(),
            bugs: bugs
                .iter()
                .map(|r| {
                    (
                        r.try_get("", "testio_id").unwrap(),
                        (
                            r.try_get("", "test_id").unwrap(),
                            r.try_get::<Option<String>>("", "status").unwrap().unwrap_or_default(),
                            r.try_get::<Option<String>>("", "severity").unwrap().unwrap_or_default(),
                        ),
                    )
                })
                .collect(),
        }
    }

    pub fn sizes(&self) -> (usize, usize, usize) {
        (self.products.len(), self.tests.len(), self.bugs.len())
    }
}

/// Asserts equality with a readable summary of the first differences instead of two huge dumps.
#[track_caller]
pub fn assert_same(mirror: &Snapshot, truth: &Snapshot) {
    fn diff<V: PartialEq + std::fmt::Debug>(what: &str, m: &BTreeMap<i64, V>, t: &BTreeMap<i64, V>) -> Vec<String> {
        let mut out = Vec::new();
        for (id, v) in t {
            match m.get(id) {
                None => out.push(format!("{what} {id} missing from the mirror")),
                Some(mv) if mv != v => out.push(format!("{what} {id}: mirror {mv:?} != truth {v:?}")),
                _ => {}
            }
        }
        out.extend(m.keys().filter(|id| !t.contains_key(id)).map(|id| format!("{what} {id} should not be mirrored")));
        out
    }
    let mut problems = diff("product", &mirror.products, &truth.products);
    problems.extend(diff("test", &mirror.tests, &truth.tests));
    problems.extend(diff("bug", &mirror.bugs, &truth.bugs));
    assert!(
        problems.is_empty(),
        "mirror != truth ({} differences; mirror {:?}, truth {:?}):\n{}",
        problems.len(),
        mirror.sizes(),
        truth.sizes(),
        problems.iter().take(15).cloned().collect::<Vec<_>>().join("\n")
    );
}
