//! Proof that tenant isolation is enforced by Postgres itself, connected as the runtime role the services use.

use entity::audit::{self, Actor, AuditAction, Event, Origin};
use entity::audit_logs::Outcome;
use entity::tenant_users::{self, Role};
use entity::{TenantId, TenantTxn, UserId, tenants, users};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait};
use tests::TestDatabase;

struct Seeded {
    tenant: TenantId,
    user: UserId,
}

/// Two tenants, each with a member and an audit entry, written through `TenantTxn` as the runtime role.
async fn seed(db: &DatabaseConnection) -> (Seeded, Seeded) {
    let mut out = Vec::new();
    for name in ["alpha", "beta"] {
        let tenant = tenants::create(db, name, name).await.unwrap();
        let user =
            users::create(db, users::NewUser { email: &format!("{name}@example.com"), name, password_hash: None })
                .await
                .unwrap();
        let txn = TenantTxn::begin(db, tenant.id).await.unwrap();
        tenant_users::add(&txn, user.id, &user.email, Role::Owner).await.unwrap();
        entity::invitations::create(
            &txn,
            entity::invitations::NewInvitation {
                id: uuid::Uuid::now_v7(),
                email: "invitee@example.com",
                role: Role::Member,
                token_hash: format!("invite-{name}").into_bytes(),
                invited_by: user.id,
                expires_at: chrono::Utc::now() + chrono::Duration::days(1),
            },
        )
        .await
        .unwrap();
        entity::api_keys::create(
            &txn,
            entity::api_keys::NewApiKey {
                id: uuid::Uuid::now_v7(),
                name: "ci",
                prefix: "thk_x".into(),
                secret_hash: format!("key-{name}").into_bytes(),
                role: Role::Viewer,
                created_by: user.id,
            },
        )
        .await
        .unwrap();
        seed_mirror(&txn, name).await;
        let payload = serde_json::json!({ "id": format!("evt_{name}"), "type": "invoice.paid" });
        assert!(
            entity::billing::store_event(&txn, &format!("evt_{name}"), "invoice.paid", chrono::Utc::now(), &payload)
                .await
                .unwrap()
        );
        let claim = entity::idempotency::Claim {
            principal: "user:seed",
            key_hash: name,
            operation: "create_api_key",
            request_hash: [7; 32],
        };
        assert_eq!(entity::idempotency::claim(&txn, &claim).await.unwrap(), entity::idempotency::Claimed::New);
        let event = Event::new(AuditAction::TenantCreate, Actor::user(user.id))
            .on(tenant.id)
            .outcome(Outcome::Success)
            .metadata(serde_json::json!({ "name": name }));
        let origin = Origin { ip_address: Some("192.0.2.7".parse().unwrap()), ..Default::default() };
        audit::record(&txn, event, &origin).await.unwrap();
        txn.commit().await.unwrap();
        out.push(Seeded { tenant: tenant.id, user: user.id });
    }
    // The audit events into the hash chain (its tables are tenant tables too).
    let sealed = entity::audit::chain::seal_pending(db).await.unwrap();
    assert_eq!(sealed.events, 2, "{sealed:?}");
    let beta = out.pop().unwrap();
    let alpha = out.pop().unwrap();
    (alpha, beta)
}

/// A connection, one product, test and bug, a scan cursor, a gap and a sync run: every mirror table gets a row.
async fn seed_mirror(txn: &TenantTxn, name: &str) {
    use entity::mirror::{self, BugRow, ProductRow, TestRow};
    use entity::sync::{BackfillProgress, Gap};
    let keys = common::token_cipher::TokenKeys::from_config(Some(&tests::app::TEST_TOKEN_KEYS.into())).unwrap();
    entity::testio_connections::save(
        txn,
        entity::testio_connections::NewConnection {
            base_url: "http://127.0.0.1:1/customer/v2/".into(),
            token: keys.seal(txn.tenant_id(), &format!("token-{name}").into()).unwrap(),
            token_last4: "1234".into(),
            saved_by: None,
            sync_interval_secs: None,
        },
    )
    .await
    .unwrap();
    let raw = serde_json::json!({ "tenant": name });
    let product = ProductRow { testio_id: 1, name: name.into(), product_type: None, raw: raw.clone() };
    assert_eq!(mirror::upsert_products(txn, &[product]).await.unwrap().new, [1]);
    let test = TestRow {
        testio_id: 10,
        product_id: 1,
        title: name.into(),
        status: testio::model::TestStatus::Running.into(),
        testing_type: None,
        review_status: None,
        start_at: None,
        end_at: None,
        raw: raw.clone(),
    };
    assert_eq!(mirror::upsert_tests(txn, &[test]).await.unwrap().new, [10], "same TestIO id in both tenants");
    let bug = BugRow {
        testio_id: 100,
        test_id: 10,
        title: name.into(),
        severity: None,
        status: None,
        known: None,
        auto_accepted: None,
        reported_at: None,
        raw,
    };
    assert_eq!(mirror::upsert_bugs(txn, &[bug]).await.unwrap().new, [100]);
    entity::sync::set_backfill_cursor(txn, 1, BackfillProgress::At(50)).await.unwrap();
    assert!(entity::sync::open_gap(txn, &Gap::test_page(1, 7, "500".into())).await.unwrap());
    entity::sync_runs::request(txn, entity::sync_runs::SyncTrigger::Api, false, None).await.unwrap();
}

/// Every table with a `tenant_id` column: the list grows by itself as tables are added.
async fn tenant_tables(db: &impl ConnectionTrait) -> Vec<String> {
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT c.relname::text AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' \
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY 1",
        ))
        .await
        .unwrap();
    let tables: Vec<String> = rows.iter().map(|r| r.try_get("", "name").unwrap()).collect();
    assert!(tables.contains(&"tenant_users".to_owned()) && tables.contains(&"audit_logs".to_owned()));
    tables
}

async fn count(db: &impl ConnectionTrait, sql: &str) -> i64 {
    db.query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap()
}

async fn set_tenant(txn: &impl ConnectionTrait, tenant: TenantId) {
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT set_config('app.tenant_id', $1, true)",
        [tenant.to_string().into()],
    ))
    .await
    .unwrap();
}

fn sqlstate(err: &sea_orm::DbErr) -> Option<String> {
    match err {
        sea_orm::DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e))
        | sea_orm::DbErr::Query(sea_orm::RuntimeErr::SqlxError(e)) => {
            e.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned())
        }
        _ => None,
    }
}

#[tokio::test]
async fn with_no_tenant_set_every_tenant_table_returns_zero_rows() {
    let db = TestDatabase::migrated().await;
    let runtime = db.connect_runtime().await;
    seed(&runtime).await;
    let superuser = db.superuser().await;

    for table in tenant_tables(&runtime).await {
        assert!(count(superuser, &format!("SELECT count(*) FROM {table}")).await > 0, "{table} was not seeded");
        assert_eq!(count(&runtime, &format!("SELECT count(*) FROM {table}")).await, 0, "{table} leaks rows");
    }
}

#[tokio::test]
async fn a_select_without_where_returns_only_the_current_tenants_rows() {
    let db = TestDatabase::migrated().await;
    let runtime = db.connect_runtime().await;
    let (alpha, _beta) = seed(&runtime).await;

    let txn = runtime.begin().await.unwrap();
    set_tenant(&txn, alpha.tenant).await;
    for table in tenant_tables(&txn).await {
        let sql = format!("SELECT count(*) FROM {table} WHERE tenant_id <> '{}'", alpha.tenant);
        assert_eq!(count(&txn, &sql).await, 0, "{table} shows another tenant's rows");
        assert!(count(&txn, &format!("SELECT count(*) FROM {table}")).await > 0, "{table} hides own rows");
    }
    txn.rollback().await.unwrap();

    // The same through the entity layer.
    let txn = TenantTxn::begin(&runtime, alpha.tenant).await.unwrap();
    let members = tenant_users::list(&txn).await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].user_id, alpha.user);
    let entries = entity::audit_logs::latest(&txn, 10).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].tenant_id, alpha.tenant);
    assert_eq!(entries[0].ip_address.map(|ip| ip.ip().to_string()).as_deref(), Some("192.0.2.7"));
}

#[tokio::test]
async fn writes_naming_another_tenant_are_refused() {
    let db = TestDatabase::migrated().await;
    let runtime = db.connect_runtime().await;
    let (alpha, beta) = seed(&runtime).await;

    let refused = [
        format!(
            "INSERT INTO tenant_users (tenant_id, user_id, email, role) VALUES ('{}', '{}', 'x@example.com', 'owner')",
            beta.tenant, alpha.user
        ),
        format!("UPDATE tenant_users SET tenant_id = '{}' WHERE user_id = '{}'", beta.tenant, alpha.user),
        format!(
            "INSERT INTO audit_logs (tenant_id, id, actor_type, action, target_type, outcome) \
             VALUES ('{}', gen_random_uuid(), 'system', 'tenant.update', 'tenant', 'success')",
            beta.tenant
        ),
    ];
    for sql in refused {
        let txn = runtime.begin().await.unwrap();
        set_tenant(&txn, alpha.tenant).await;
        let err = txn.execute_unprepared(&sql).await.expect_err(&sql);
        assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{sql}: {err}");
    }

    // Rows of another tenant are invisible to UPDATE and DELETE: nothing changes.
    let txn = runtime.begin().await.unwrap();
    set_tenant(&txn, alpha.tenant).await;
    let updated = txn
        .execute_unprepared(&format!("UPDATE tenant_users SET role = 'viewer' WHERE tenant_id = '{}'", beta.tenant))
        .await
        .unwrap();
    let deleted =
        txn.execute_unprepared(&format!("DELETE FROM tenant_users WHERE tenant_id = '{}'", beta.tenant)).await.unwrap();
    txn.commit().await.unwrap();
    assert_eq!((updated.rows_affected(), deleted.rows_affected()), (0, 0));
    let superuser = db.superuser().await;
    let sql = format!("SELECT count(*) FROM tenant_users WHERE tenant_id = '{}' AND role = 'owner'", beta.tenant);
    assert_eq!(count(superuser, &sql).await, 1);

    // With no tenant at all, no insert passes either.
    let err = runtime
        .execute_unprepared(&format!(
            "INSERT INTO tenant_users (tenant_id, user_id, email, role) VALUES ('{}', '{}', 'y@example.com', 'owner')",
            alpha.tenant, beta.user
        ))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"));
}

#[tokio::test]
async fn the_audit_log_is_append_only() {
    let db = TestDatabase::migrated().await;
    let runtime = db.connect_runtime().await;
    let (alpha, _) = seed(&runtime).await;

    for sql in ["UPDATE audit_logs SET action = 'x.y'", "DELETE FROM audit_logs", "TRUNCATE audit_logs"] {
        let txn = runtime.begin().await.unwrap();
        set_tenant(&txn, alpha.tenant).await;
        let err = txn.execute_unprepared(sql).await.expect_err(sql);
        assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{sql}: {err}");
    }
    // Not even the owner may rewrite history.
    let superuser = db.superuser().await;
    let err = superuser.execute_unprepared("UPDATE audit_logs SET action = 'x.y'").await.unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
}

#[tokio::test]
async fn the_tenant_setting_never_outlives_its_transaction() {
    let db = TestDatabase::migrated().await;
    let runtime = db.connect_runtime().await;
    let (alpha, _) = seed(&runtime).await;
    // One connection, so the next statement surely reuses the connection the transaction used.
    let single = sea_orm::Database::connect(
        sea_orm::ConnectOptions::new(db.runtime_url()).max_connections(1).min_connections(1).to_owned(),
    )
    .await
    .unwrap();

    let txn = TenantTxn::begin(&single, alpha.tenant).await.unwrap();
    assert_eq!(tenant_users::list(&txn).await.unwrap().len(), 1);
    txn.commit().await.unwrap();
    assert_eq!(count(&single, "SELECT count(*) FROM tenant_users").await, 0);

    // Dropping without commit rolls back the work and the setting.
    let extra = users::create(&single, users::NewUser { email: "extra@example.com", name: "x", password_hash: None })
        .await
        .unwrap();
    let txn = TenantTxn::begin(&single, alpha.tenant).await.unwrap();
    tenant_users::add(&txn, extra.id, &extra.email, Role::Member).await.unwrap();
    drop(txn);
    let txn = TenantTxn::begin(&single, alpha.tenant).await.unwrap();
    assert_eq!(tenant_users::list(&txn).await.unwrap().len(), 1, "a dropped TenantTxn must roll back");
    assert!(tenant_users::find_for_user(&txn, extra.id).await.unwrap().is_none());
}

#[tokio::test]
async fn the_runtime_role_cannot_switch_off_row_level_security() {
    let db = TestDatabase::migrated().await;
    let runtime = db.connect_runtime().await;
    seed(&runtime).await;

    for sql in [
        "ALTER TABLE tenant_users DISABLE ROW LEVEL SECURITY",
        "ALTER TABLE tenant_users NO FORCE ROW LEVEL SECURITY",
        "DROP POLICY tenant_users_tenant_isolation ON tenant_users",
        "SET ROLE testio_owner",
        "CREATE TABLE sneaky (tenant_id uuid)",
    ] {
        let err = runtime.execute_unprepared(sql).await.expect_err(sql);
        assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{sql}: {err}");
    }
    // row_security = off makes a query that RLS would filter fail instead of returning everything.
    let txn = runtime.begin().await.unwrap();
    txn.execute_unprepared("SET LOCAL row_security = off").await.unwrap();
    let err = txn.execute_unprepared("SELECT * FROM tenant_users").await.unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{err}");
}

#[tokio::test]
async fn unique_constraints_are_per_tenant() {
    let db = TestDatabase::migrated().await;
    let runtime = db.connect_runtime().await;
    let (alpha, beta) = seed(&runtime).await;

    // The same user may belong to two tenants, but only once to each.
    let txn = TenantTxn::begin(&runtime, beta.tenant).await.unwrap();
    tenant_users::add(&txn, alpha.user, "alpha@example.com", Role::Viewer).await.unwrap();
    txn.commit().await.unwrap();
    let txn = TenantTxn::begin(&runtime, beta.tenant).await.unwrap();
    let err = tenant_users::add(&txn, alpha.user, "alpha@example.com", Role::Viewer).await.unwrap_err();
    assert!(matches!(err.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))), "{err}");
}

#[tokio::test]
async fn a_user_scope_reads_only_that_users_memberships_and_writes_nothing() {
    let db = TestDatabase::migrated().await;
    let runtime = db.connect_runtime().await;
    let (alpha, beta) = seed(&runtime).await;
    let txn = TenantTxn::begin(&runtime, beta.tenant).await.unwrap();
    tenant_users::add(&txn, alpha.user, "alpha@example.com", Role::Viewer).await.unwrap();
    txn.commit().await.unwrap();

    let txn = runtime.begin().await.unwrap();
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT set_config('app.user_id', $1, true)",
        [alpha.user.to_string().into()],
    ))
    .await
    .unwrap();
    assert_eq!(count(&txn, "SELECT count(*) FROM tenant_users").await, 2, "both of alpha's memberships");
    let others = format!("SELECT count(*) FROM tenant_users WHERE user_id <> '{}'", alpha.user);
    assert_eq!(count(&txn, &others).await, 0);
    for table in tenant_tables(&txn).await.into_iter().filter(|t| t != "tenant_users") {
        assert_eq!(count(&txn, &format!("SELECT count(*) FROM {table}")).await, 0, "{table} leaks to a user scope");
    }
    let promoted = txn
        .execute_unprepared(&format!("UPDATE tenant_users SET role = 'owner' WHERE user_id = '{}'", alpha.user))
        .await
        .unwrap();
    assert_eq!(promoted.rows_affected(), 0, "the user scope is read-only");
    let err = txn
        .execute_unprepared(&format!(
            "INSERT INTO tenant_users (tenant_id, user_id, email, role) VALUES ('{}', '{}', 'a@example.com', 'owner')",
            beta.tenant, alpha.user
        ))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"));
}

#[tokio::test]
async fn the_runtime_role_cannot_create_a_temporary_table_that_shadows_a_real_one() {
    let db = TestDatabase::migrated().await;
    let runtime = db.connect_runtime().await;
    let err = runtime.execute_unprepared("CREATE TEMP TABLE tenant_users (x int)").await.unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{err}");
    assert!(err.to_string().contains("permission denied to create temporary tables"), "{err}");
}

#[tokio::test]
async fn only_the_runtime_group_and_not_public_may_connect_to_the_database() {
    let db = TestDatabase::migrated().await;
    let runtime = db.connect_runtime().await;
    let may = |role: &str, privilege: &str| {
        format!("SELECT has_database_privilege('{role}', current_database(), '{privilege}')::int::bigint")
    };
    assert_eq!(count(&runtime, &may("public", "CONNECT")).await, 0);
    assert_eq!(count(&runtime, &may("public", "TEMPORARY")).await, 0);
    assert_eq!(count(&runtime, &may("testio_runtime", "CONNECT")).await, 1);
    assert_eq!(count(&runtime, &may("testio_runtime", "TEMPORARY")).await, 0);
}

#[tokio::test]
async fn service_connections_search_public_and_then_pg_temp_whatever_the_database_says() {
    let db = TestDatabase::migrated().await;
    // A database default that would put temporary objects first is overridden by the connection's startup options.
    let superuser = db.superuser().await;
    superuser
        .execute_unprepared(&format!("ALTER DATABASE \"{}\" SET search_path = pg_temp, public", db.name))
        .await
        .unwrap();
    let settings = entity::db::PoolSettings {
        max_connections: 1,
        acquire_timeout: std::time::Duration::from_secs(5),
        connect_timeout: std::time::Duration::from_secs(5),
        ..Default::default()
    };
    let service = entity::db::connect(&db.runtime_url(), &settings).await.unwrap();
    let row = service.query_one_raw(Statement::from_string(DbBackend::Postgres, "SHOW search_path")).await.unwrap();
    let search_path: String = row.unwrap().try_get("", "search_path").unwrap();
    assert_eq!(search_path, "public, pg_temp");
}

#[tokio::test]
async fn the_role_check_refuses_a_database_where_public_may_create_temporary_tables_again() {
    let db = TestDatabase::migrated().await;
    let runtime = db.connect_runtime().await;
    common::role_check::verify_runtime_role(&runtime).await.expect("the runtime role is safe on a migrated database");

    let superuser = db.superuser().await;
    superuser.execute_unprepared(&format!("GRANT TEMPORARY ON DATABASE \"{}\" TO PUBLIC", db.name)).await.unwrap();
    let err = common::role_check::verify_runtime_role(&runtime).await.unwrap_err().to_string();
    assert!(err.contains(&format!("may create temporary tables in database {}", db.name)), "{err}");
}
