//! Citus readiness, read from the migrated schema's catalog: the database can be spread over several machines with
//! Citus (`create_distributed_table` on `tenant_id`, `create_reference_table` for the global tables) without changing
//! a key. Every table is classified; every tenant-owned table is under row-level security, and its primary key, unique
//! constraints and unique indexes include `tenant_id`; every foreign key between tenant tables includes `tenant_id` on
//! both sides (so the rows it joins live on the same shard); reference tables point only at reference tables. The
//! README's "Scaling out" plan is the one this schema asks for, statement by statement.

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use tests::TestDatabase;

/// Global tables: replicated to every node (`create_reference_table`), in the order they can be made so (a table
/// after those it points at).
const REFERENCE_TABLES: [&str; 7] =
    ["users", "tenants", "sessions", "refresh_tokens", "email_verifications", "auth_throttle", "audit_chain_progress"];

/// Tables that stay on the coordinator only: the migrations' own, and the rate-limit buckets (unlogged, written on
/// every request: replicated, each write would go to every node).
const LOCAL_TABLES: [&str; 2] = ["rate_limits", "seaql_migrations"];

async fn strings(db: &impl ConnectionTrait, sql: &str) -> Vec<Vec<String>> {
    db.query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .unwrap()
        .into_iter()
        .map(|row| {
            let mut values = Vec::new();
            let mut i = 0;
            while let Ok(value) = row.try_get_by_index::<Option<String>>(i) {
                values.push(value.unwrap_or_default());
                i += 1;
            }
            values
        })
        .collect()
}

/// The `create_distributed_table` / `create_reference_table` statements the schema asks for, in dependency order
/// (referenced tables first).
fn plan(distributed: &[String]) -> Vec<String> {
    let mut statements: Vec<String> =
        REFERENCE_TABLES.iter().map(|t| format!("SELECT create_reference_table('{t}');")).collect();
    // `tenant_users` first, the colocation group every other tenant table joins.
    let mut ordered: Vec<&String> = distributed.iter().collect();
    ordered.sort_by_key(|t| {
        let rank = match t.as_str() {
            "tenant_users" => 0,
            "testio_products" => 1,
            "testio_tests" => 2,
            _ => 3,
        };
        (rank, t.to_string())
    });
    for table in ordered {
        statements.push(if table == "tenant_users" {
            "SELECT create_distributed_table('tenant_users', 'tenant_id');".to_owned()
        } else {
            format!("SELECT create_distributed_table('{table}', 'tenant_id', colocate_with => 'tenant_users');")
        });
    }
    statements
}

#[tokio::test]
async fn every_tenant_table_is_distributable_on_tenant_id_and_every_other_table_is_a_reference_or_local_table() {
    let db = TestDatabase::migrated().await;
    let owner = db.superuser().await;
    let tables = strings(
        owner,
        "SELECT c.relname::text,
                CASE WHEN EXISTS (SELECT 1 FROM pg_attribute a
                                   WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
                     THEN 'tenant' ELSE 'global' END,
                CASE WHEN c.relrowsecurity AND c.relforcerowsecurity THEN 'rls' ELSE 'open' END
           FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') ORDER BY 1",
    )
    .await;
    let mut distributed = Vec::new();
    for row in &tables {
        let (table, kind, rls) = (&row[0], row[1].as_str(), row[2].as_str());
        let classified = REFERENCE_TABLES.contains(&table.as_str()) || LOCAL_TABLES.contains(&table.as_str());
        match kind {
            "tenant" => {
                assert!(!classified, "{table} has tenant_id but is listed as global");
                assert_eq!(rls, "rls", "{table} is tenant-owned but not under (forced) row-level security");
                distributed.push(table.clone());
            }
            _ => assert!(classified, "{table} has no tenant_id and is not listed as a reference or local table"),
        }
    }
    for listed in REFERENCE_TABLES.iter().chain(&LOCAL_TABLES) {
        assert!(tables.iter().any(|r| &r[0] == listed), "{listed} is listed but does not exist");
    }
    assert!(distributed.len() >= 17, "{distributed:?}");

    // Every primary key, unique constraint and unique index of a tenant table includes tenant_id.
    let uniques = strings(
        owner,
        "SELECT t.relname::text, i.relname::text,
                (SELECT string_agg(a.attname, ',' ORDER BY k.ord) FROM unnest(x.indkey) WITH ORDINALITY k(attnum, ord)
                   JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum)
           FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid
          WHERE t.relnamespace = 'public'::regnamespace AND (x.indisunique OR x.indisprimary)",
    )
    .await;
    for row in &uniques {
        if distributed.contains(&row[0]) {
            let columns: Vec<&str> = row[2].split(',').collect();
            assert!(columns.contains(&"tenant_id"), "{}.{} ({}) does not include tenant_id", row[0], row[1], row[2]);
        }
    }

    // Foreign keys: between tenant tables on tenant_id at the same position on both sides; from tenant tables
    // otherwise only to reference tables; from reference tables only to reference tables.
    let foreign_keys = strings(
        owner,
        "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text, c.conname::text,
                (SELECT string_agg(a.attname, ',' ORDER BY k.ord) FROM unnest(c.conkey) WITH ORDINALITY k(attnum, ord)
                   JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum),
                (SELECT string_agg(a.attname, ',' ORDER BY k.ord) FROM unnest(c.confkey) WITH ORDINALITY k(attnum, ord)
                   JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum)
           FROM pg_constraint c WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace",
    )
    .await;
    assert!(foreign_keys.len() >= 10);
    for row in &foreign_keys {
        let (from, to, name) = (&row[0], &row[1], &row[2]);
        let (from_columns, to_columns): (Vec<&str>, Vec<&str>) =
            (row[3].split(',').collect(), row[4].split(',').collect());
        match (distributed.contains(from), distributed.contains(to)) {
            (true, true) => {
                let at = from_columns.iter().position(|c| *c == "tenant_id");
                assert!(at.is_some(), "{from}.{name} joins tenant tables without tenant_id");
                assert_eq!(
                    at,
                    to_columns.iter().position(|c| *c == "tenant_id"),
                    "{from}.{name}: tenant_id misaligned"
                );
            }
            (true, false) => assert!(REFERENCE_TABLES.contains(&to.as_str()), "{from}.{name} points at {to}"),
            (false, true) => panic!("{from}.{name}: a global table points at the tenant table {to}"),
            (false, false) => assert!(
                REFERENCE_TABLES.contains(&from.as_str()) && REFERENCE_TABLES.contains(&to.as_str()),
                "{from}.{name} -> {to}"
            ),
        }
    }

    // The README gives this very plan.
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
    for statement in plan(&distributed) {
        assert!(readme.contains(&statement), "the README's scaling-out plan lacks `{statement}`");
    }
}
