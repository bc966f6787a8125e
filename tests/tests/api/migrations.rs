//! Every migration goes up and comes down again, on a database full of data.

use entity::tenant_users::Role;
use entity::{TenantTxn, tenant_users, tenants, users};
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use tests::TestDatabase;

/// Every table of the schema at the head migration.
const ALL_TABLES: [&str; 26] = [
    "api_keys",
    "audit_chain",
    "audit_chain_heads",
    "audit_chain_progress",
    "audit_logs",
    "auth_throttle",
    "email_verifications",
    "idempotency_keys",
    "invitations",
    "rate_limits",
    "refresh_tokens",
    "seaql_migrations",
    "sessions",
    "stripe_events",
    "sync_gaps",
    "sync_runs",
    "tenant_users",
    "tenants",
    "testio_bugs",
    "testio_connections",
    "testio_mirror_versions",
    "testio_products",
    "testio_scan_cursors",
    "testio_stat_counts",
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

/// Migration 10 (the query API's) on a database that already mirrors two tenants whose TestIO ids overlap: every
/// bug gets its test's product (in its own tenant), and the counters equal a count of the rows.
#[tokio::test]
async fn the_mirror_queries_migration_fills_the_bugs_products_and_the_counters_of_mirrored_rows() {
    use entity::mirror::{ProductRow, TestRow, upsert_products, upsert_tests};
    use sea_orm::TransactionTrait;
    use testio::model::{TestStatus, Word};

    let db = TestDatabase::empty().await;
    let owner = db.connect_owner().await;
    let names: Vec<String> = Migrator::migrations().iter().map(|m| m.name().to_owned()).collect();
    let before = names.iter().position(|n| n == "m20261201_000010_mirror_queries").expect("no migration 10");
    Migrator::up(&owner, Some(u32::try_from(before).unwrap())).await.unwrap();
    assert_eq!(Migrator::get_applied_migrations(&owner).await.unwrap().len(), before);

    let runtime = db.connect_runtime().await;
    let statuses = ["running", "archived", "locked", "running", "a_new_status"];
    let mut tenants = Vec::new();
    for (tag, shift) in [("alpha", 0_i64), ("beta", 1)] {
        // In SQL: the entity knows today's columns, this schema is migration 9's.
        let tenant = TenantIdOnly { id: entity::TenantId(uuid::Uuid::now_v7()) };
        runtime
            .execute_unprepared(&format!(
                "INSERT INTO tenants (id, name, slug) VALUES ('{}', '{tag}', '{tag}')",
                tenant.id.0
            ))
            .await
            .unwrap();
        let txn = TenantTxn::begin(&runtime, tenant.id).await.unwrap();
        let products: Vec<ProductRow> = (1..=2)
            .map(|p| ProductRow {
                testio_id: p,
                name: format!("{tag} {p}"),
                product_type: None,
                raw: serde_json::json!({ "id": p }),
            })
            .collect();
        upsert_products(&txn, &products).await.unwrap();
        // The same test ids in both tenants, in other products.
        let tests: Vec<TestRow> = (1..=5_i64)
            .map(|t| TestRow {
                testio_id: t,
                product_id: 1 + (t + shift) % 2,
                title: format!("{tag} test {t}"),
                status: Word::<TestStatus>::new(statuses[(t as usize + shift as usize) % statuses.len()]),
                testing_type: (t % 3 != 0).then(|| "coverage".to_owned()),
                review_status: None,
                start_at: None,
                end_at: None,
                raw: serde_json::json!({ "id": t }),
            })
            .collect();
        upsert_tests(&txn, &tests).await.unwrap();
        txn.commit().await.unwrap();
        // Bugs as the runtime role under the tenant's setting (the entity's upsert already writes migration 10's
        // column).
        let txn = runtime.begin().await.unwrap();
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT set_config('app.tenant_id', $1, true)",
            [tenant.id.0.to_string().into()],
        ))
        .await
        .unwrap();
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO testio_bugs (tenant_id, testio_id, test_id, title, severity, status, known, auto_accepted, raw)
             SELECT $1::uuid, b, 1 + b % 5, 'bug ' || b,
                    (array['low', 'high', NULL, 'blocker'])[1 + b % 4], (array['accepted', 'rejected', NULL])[1 + b % 3],
                    b % 2 = 0, CASE WHEN b % 3 = 0 THEN NULL ELSE b % 2 = 1 END, jsonb_build_object('id', b)
               FROM generate_series(1, 12 + $2::int) b",
            [tenant.id.0.into(), (shift as i32).into()],
        ))
        .await
        .unwrap();
        txn.commit().await.unwrap();
        tenants.push(tenant.id);
    }
    runtime.close().await.unwrap();

    Migrator::up(&owner, None).await.unwrap();
    assert_eq!(db.count("SELECT count(*) FROM testio_bugs").await, 12 + 13);
    let strays = db
        .count(
            "SELECT count(*) FROM testio_bugs b LEFT JOIN testio_tests t
                 ON t.tenant_id = b.tenant_id AND t.testio_id = b.test_id
              WHERE b.product_id IS DISTINCT FROM t.product_id",
        )
        .await;
    assert_eq!(strays, 0, "every bug has its own tenant's test's product");
    let differences = db.count(tests::mirror::COUNTERS_OFF_BY).await;
    assert_eq!(differences, 0, "testio_stat_counts differs from the rows it counts");
    // One figure checked by hand: alpha's product 2 holds tests 1, 3 and 5, of which 3 and 5 are `running`.
    let running = db
        .count(&format!(
            "SELECT coalesce(sum(n), 0)::bigint FROM testio_stat_counts WHERE tenant_id = '{}' AND product_id = 2
                AND metric = 'test_status' AND value = 'running'",
            tenants[0].0
        ))
        .await;
    assert_eq!(running, 2);
    let counted =
        db.count("SELECT coalesce(sum(n), 0)::bigint FROM testio_stat_counts WHERE metric = 'bug_status'").await;
    assert_eq!(counted, 25, "every bug is counted once by status");
}

/// A tenant inserted by hand into an older schema.
struct TenantIdOnly {
    id: entity::TenantId,
}
