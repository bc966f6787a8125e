//! Databases for tests. The first test of a run migrates a template database (named after the migrations'
//! fingerprint, so an edited migration gets a new template); every test then gets its own `CREATE DATABASE ..
//! TEMPLATE ..` copy, which takes milliseconds, and drops it when done.
//!
//! Everything here follows `TEST_ADMIN_DATABASE_URL` ([`admin_url`]): the cluster's address included
//! ([`postgres_address`]), so that a test can put a fault proxy in front of the same Postgres.

use migration::bootstrap::{Target, database_privileges_sql, ensure_roles, exec, quote_ident, role_exists};
use migration::{Migrator, MigratorTrait, SCHEMA_FINGERPRINT};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use secrecy::SecretString;
use tokio::sync::OnceCell;

/// Owner of every test database: migrations run as it.
pub const OWNER_ROLE: &str = "testio_owner";
/// The login role the API and the worker use (a member of `testio_runtime`).
pub const RUNTIME_ROLE: &str = "testio_app";
/// A runtime-group member with BYPASSRLS, used only to prove that the services refuse such a role.
pub const BYPASSRLS_PROBE_ROLE: &str = "testio_test_bypassrls";

/// Serialises template creation across test processes (cargo test, nextest) sharing one cluster.
const TEMPLATE_LOCK_KEY: i64 = 0x7e57_104b;

static TEMPLATE: OnceCell<String> = OnceCell::const_new();

/// The superuser URL used to create roles and databases.
pub fn admin_url() -> String {
    std::env::var("TEST_ADMIN_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The address of the test cluster: the host and port of [`admin_url`] (port 5432 when it names none).
pub fn postgres_address() -> std::net::SocketAddr {
    use std::net::ToSocketAddrs;
    let url = url::Url::parse(&admin_url()).expect("TEST_ADMIN_DATABASE_URL is not a URL");
    let host = url.host_str().expect("TEST_ADMIN_DATABASE_URL names no host");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host, url.port().unwrap_or(5432))
        .to_socket_addrs()
        .unwrap_or_else(|e| panic!("cannot resolve the host of TEST_ADMIN_DATABASE_URL ({host}): {e}"))
        .next()
        .unwrap_or_else(|| panic!("the host of TEST_ADMIN_DATABASE_URL ({host}) has no address"))
}

/// The admin URL with another user and database (and no password: the local cluster trusts loopback).
pub fn url_for(user: &str, database: &str) -> String {
    let mut url = url::Url::parse(&admin_url()).expect("TEST_ADMIN_DATABASE_URL is not a URL");
    url.set_username(user).expect("cannot set user");
    if user != url::Url::parse(&admin_url()).unwrap().username() {
        url.set_password(None).expect("cannot clear password");
    }
    url.set_path(database);
    url.to_string()
}

/// A database that exists for one test and is dropped (connections and all) when this value is dropped.
pub struct TestDatabase {
    pub name: String,
    /// One small superuser pool per test, opened on first use by [`TestDatabase::superuser`].
    superuser: OnceCell<DatabaseConnection>,
}

impl TestDatabase {
    /// A fresh copy of the migrated template.
    pub async fn migrated() -> Self {
        let template = template().await;
        let name = format!("testio_test_{}", uuid::Uuid::new_v4().simple());
        let admin = admin().await;
        exec(
            &admin,
            format!("CREATE DATABASE {} TEMPLATE {} OWNER {OWNER_ROLE}", quote_ident(&name), quote_ident(template)),
        )
        .await
        .expect("failed to clone the template database");
        // A clone does not inherit the template's database privileges: take PUBLIC's CONNECT and TEMP again.
        exec(&admin, database_privileges_sql(&name)).await.expect("failed to revoke PUBLIC's privileges on the clone");
        admin.close().await.ok();
        Self { name, superuser: OnceCell::new() }
    }

    /// An empty database owned by the owner role, for migration tests.
    pub async fn empty() -> Self {
        template().await; // makes sure the roles exist
        let name = format!("testio_test_{}", uuid::Uuid::new_v4().simple());
        let admin = admin().await;
        exec(&admin, format!("CREATE DATABASE {} OWNER {OWNER_ROLE}", quote_ident(&name)))
            .await
            .expect("failed to create an empty database");
        admin.close().await.ok();
        Self { name, superuser: OnceCell::new() }
    }

    /// URL for the runtime role (what the services use).
    pub fn runtime_url(&self) -> String {
        url_for(RUNTIME_ROLE, &self.name)
    }

    /// URL for the owner role (what migrations use).
    pub fn owner_url(&self) -> String {
        url_for(OWNER_ROLE, &self.name)
    }

    /// URL for the superuser, to look behind row-level security in assertions.
    pub fn superuser_url(&self) -> String {
        let mut url = url::Url::parse(&admin_url()).expect("TEST_ADMIN_DATABASE_URL is not a URL");
        url.set_path(&self.name);
        url.to_string()
    }

    pub async fn connect_runtime(&self) -> DatabaseConnection {
        Database::connect(self.runtime_url()).await.expect("cannot connect as the runtime role")
    }

    pub async fn connect_owner(&self) -> DatabaseConnection {
        Database::connect(self.owner_url()).await.expect("cannot connect as the owner role")
    }

    /// The test's superuser connection, to look behind row-level security in assertions and to reach states no
    /// endpoint makes. Opened once and shared by every helper (polling loops included), so that a test costs one pool,
    /// not one per query; it goes with the database (`DROP DATABASE .. WITH (FORCE)` ends its sessions).
    pub async fn superuser(&self) -> &DatabaseConnection {
        self.superuser
            .get_or_init(|| async {
                let options =
                    sea_orm::ConnectOptions::new(self.superuser_url()).max_connections(4).min_connections(0).to_owned();
                Database::connect(options).await.expect("cannot connect as the superuser")
            })
            .await
    }

    /// The number (`bigint`) in the first column of the one row `sql` returns, read as the superuser: for counts
    /// that assertions and polling loops compare.
    pub async fn count(&self, sql: &str) -> i64 {
        let row = self
            .superuser()
            .await
            .query_one_raw(sea_orm::Statement::from_string(sea_orm::DbBackend::Postgres, sql))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .unwrap_or_else(|| panic!("{sql}: no row"));
        row.try_get_by_index(0).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Polls `sql` (see [`TestDatabase::count`]) every 20 ms until it reaches `at_least`; panics after 30 s.
    pub async fn wait_until_count(&self, sql: &str, at_least: i64) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let n = self.count(sql).await;
            if n >= at_least {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {sql} >= {at_least} (at {n})");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // The shared superuser pool goes first: its sessions end with the database, its handle with this value.
        drop(self.superuser.take());
        let name = self.name.clone();
        // Drop runs inside the test's runtime; do the async cleanup on a thread of its own and wait for it.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    if let Ok(admin) = Database::connect(admin_url()).await {
                        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(&name));
                        let _ = admin.execute_unprepared(&sql).await;
                        let _ = admin.close().await;
                    }
                });
            }
        });
        let _ = cleanup.join();
    }
}

async fn admin() -> DatabaseConnection {
    Database::connect(admin_url()).await.expect("cannot connect with TEST_ADMIN_DATABASE_URL: is Postgres running?")
}

/// The name of the migrated template, creating it (once per cluster and schema version) if needed.
async fn template() -> &'static String {
    TEMPLATE.get_or_init(|| async { create_template().await.expect("failed to prepare the template database") }).await
}

async fn create_template() -> anyhow::Result<String> {
    let name = format!("testio_tpl_{SCHEMA_FINGERPRINT}");
    // One connection, so that the session-level advisory lock is held by the same session that releases it.
    let admin =
        sea_orm::Database::connect(sea_orm::ConnectOptions::new(admin_url()).max_connections(1).to_owned()).await?;
    admin.execute_unprepared(&format!("SELECT pg_advisory_lock({TEMPLATE_LOCK_KEY})")).await?;
    let result = async {
        let owner = Target::from_url(&SecretString::from(url_for(OWNER_ROLE, "x")))?;
        let runtime = Target::from_url(&SecretString::from(url_for(RUNTIME_ROLE, "x")))?;
        ensure_roles(&admin, &owner, &runtime).await?;
        if !role_exists(&admin, BYPASSRLS_PROBE_ROLE).await? {
            exec(&admin, format!("CREATE ROLE {BYPASSRLS_PROBE_ROLE} LOGIN BYPASSRLS IN ROLE testio_runtime")).await?;
        }
        let exists = admin
            .query_one_raw(sea_orm::Statement::from_sql_and_values(
                sea_orm::DbBackend::Postgres,
                "SELECT 1 FROM pg_database WHERE datname = $1",
                [name.clone().into()],
            ))
            .await?
            .is_some();
        if exists {
            return Ok(());
        }
        let building = format!("{name}_building");
        exec(&admin, format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)")).await?;
        exec(&admin, format!("CREATE DATABASE {building} OWNER {OWNER_ROLE}")).await?;
        let db = Database::connect(url_for(OWNER_ROLE, &building)).await?;
        Migrator::up(&db, None).await?;
        db.close().await?;
        exec(&admin, format!("ALTER DATABASE {building} RENAME TO {name}")).await?;
        exec(&admin, format!("ALTER DATABASE {name} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false")).await?;
        anyhow::Ok(())
    }
    .await;
    admin.execute_unprepared(&format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK_KEY})")).await?;
    admin.close().await?;
    result.map(|()| name)
}
