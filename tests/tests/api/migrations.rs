//! Every migration goes up and comes down again, on a database full of data.

use entity::tenant_users::Role;
use entity::{TenantTxn, tenant_users, tenants, users};
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use tests::TestDatabase;

/// Every table of the schema at the head migration.
const ALL_TABLES: [&str; 18] = [
    "api_keys",
    "audit_logs",
    "auth_throttle",
    "email_verifications",
    "invitations",
    "refresh_tokens",
    "seaql_migrations",
    "sessions",
    "sync_gaps",
    "sync_runs",
    "tenant_users",
    "tenants",
    "testio_bugs",
    "testio_connections",
    "testio_products",
    "testio_scan_cursors",
    "testio_tests",
    "users",
];

async fn tables(db: &impl ConnectionTrait) -> Vec<String> {
    db.query_all_raw(Statement::from_string(
        DbBackend::Postgres,
        "SELECT tablename::text AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    ))
    .await
    .unwrap()
    .iter()
    .map(|r| r.try_get("", "t").unwrap())
    .collect()
}

async fn populate(runtime: &DatabaseConnection, tag: &str) {
    let tenant = tenants::create(runtime, tag, tag).await.unwrap();
    let user =
        users::create(runtime, users::NewUser { email: &format!("{tag}@example.com"), name: tag, password_hash: None })
            .await
            .unwrap();
    let txn = TenantTxn::begin(runtime, tenant.id).await.unwrap();
    tenant_users::add(&txn, user.id, &user.email, Role::Owner).await.unwrap();
    txn.commit().await.unwrap();
}

#[tokio::test]
async fn migrations_go_up_down_to_zero_and_up_again_on_a_populated_database() {
    let db = TestDatabase::empty().await;
    let owner = db.connect_owner().await;
    let total = Migrator::migrations().len();

    Migrator::up(&owner, None).await.unwrap();
    assert_eq!(tables(&owner).await, ALL_TABLES);
    let runtime = db.connect_runtime().await;
    populate(&runtime, "first").await;
    runtime.close().await.unwrap();

    // Down one step at a time, so that every `down` runs against what its `up` built.
    for remaining in (0..total).rev() {
        Migrator::down(&owner, Some(1)).await.unwrap();
        let applied = Migrator::get_applied_migrations(&owner).await.unwrap();
        assert_eq!(applied.len(), remaining);
    }
    assert_eq!(tables(&owner).await, ["seaql_migrations"]);

    Migrator::up(&owner, None).await.unwrap();
    let runtime = db.connect_runtime().await;
    populate(&runtime, "second").await;
    assert_eq!(tables(&owner).await, ALL_TABLES);
}
