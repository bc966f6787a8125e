//! Cheaper reads of the mirror (issue 12, measured with `cargo bench -p tests --bench query`):
//!
//! - **Stored search text.** `q` was `ILIKE` over an expression of `title` and two fields of `raw`: every row it
//!   tested decompressed `raw` and lower-cased the text again, about 6 µs a row (12 ms for the 2,000 rows of a
//!   probe). `search_text` is that text lower-cased once, when the row is written (a stored generated column), and
//!   `q` becomes `search_text LIKE lower(pattern)`: the same match (Postgres' `ILIKE` is `lower(text) LIKE
//!   lower(pattern)`), about 4x cheaper a row. The trigram indexes and the definer search functions of migration 10
//!   move to the column.
//! - **A version of the counters.** `testio_mirror_versions` holds, per tenant, a number that changes (from one
//!   sequence, so it never repeats) in the same transaction as any change to what the statistics show: a counter of
//!   `testio_stat_counts` (through `testio_stat_apply`) or a product (added, renamed, deleted). The API keeps each
//!   tenant's counted statistics in memory under that version, and reads only the version and the sync state while
//!   it has not moved. A tenant's row is left when the tenant is deleted (a few bytes; no foreign key, because the
//!   products' cascade bumps the version while the tenant is being deleted).

use sea_orm_migration::prelude::*;

use crate::m20261201_000010_mirror_queries::{BUG_SEARCH, TEST_SEARCH};
use crate::sql::{run, tenant_rls};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The definer search function of `table` over `text` (`search_text LIKE lower(pattern)`, or migration 10's
/// `expression ILIKE pattern`).
fn matching(table: &str, condition: &str) -> String {
    format!(
        r#"
        CREATE OR REPLACE FUNCTION {table}_matching(pattern text, max_rows integer) RETURNS TABLE (testio_id bigint)
            LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
            SELECT testio_id FROM {table}
             WHERE tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
               AND {condition}
             LIMIT max_rows;
        $fn$;
        "#
    )
}

/// `testio_stat_apply` of migration 10, plus (`bump`) a new version for every tenant whose counters it changed.
fn stat_apply(bump: bool) -> String {
    let bump = if bump {
        "bump AS (
             INSERT INTO testio_mirror_versions AS v (tenant_id, version)
             SELECT tenant_id, nextval('testio_mirror_version_seq') FROM (SELECT DISTINCT tenant_id FROM d) AS t
             ON CONFLICT (tenant_id) DO UPDATE SET version = EXCLUDED.version
         ),"
    } else {
        ""
    };
    format!(
        r#"
        CREATE OR REPLACE FUNCTION testio_stat_apply(delta jsonb) RETURNS void LANGUAGE sql AS $fn$
            WITH d AS (
                SELECT tenant_id, product_id, metric, value, sum(n)::bigint AS n
                  FROM jsonb_to_recordset(delta)
                       AS r(tenant_id uuid, product_id bigint, metric text, value text, n bigint)
                 GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0
            ), {bump} down AS (
                UPDATE testio_stat_counts c SET n = c.n + d.n FROM d
                 WHERE d.n < 0 AND c.tenant_id = d.tenant_id AND c.product_id = d.product_id
                   AND c.metric = d.metric AND c.value = d.value
            )
            INSERT INTO testio_stat_counts AS c (tenant_id, product_id, metric, value, n)
            SELECT tenant_id, product_id, metric, value, n FROM d WHERE n > 0
            ON CONFLICT (tenant_id, product_id, metric, value) DO UPDATE SET n = c.n + EXCLUDED.n;
        $fn$;
        "#
    )
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(
            manager,
            &format!(
                r#"
            ALTER TABLE testio_tests
                ADD COLUMN search_text text NOT NULL GENERATED ALWAYS AS (lower({TEST_SEARCH})) STORED;
            ALTER TABLE testio_bugs
                ADD COLUMN search_text text NOT NULL GENERATED ALWAYS AS (lower({BUG_SEARCH})) STORED;
            DROP INDEX testio_tests_search;
            DROP INDEX testio_bugs_search;
            CREATE INDEX testio_tests_search ON testio_tests USING gin (search_text gin_trgm_ops);
            CREATE INDEX testio_bugs_search ON testio_bugs USING gin (search_text gin_trgm_ops);
            {tests}
            {bugs}

            CREATE SEQUENCE testio_mirror_version_seq;
            GRANT USAGE ON SEQUENCE testio_mirror_version_seq TO testio_runtime;
            CREATE TABLE testio_mirror_versions (
                tenant_id uuid   PRIMARY KEY,
                version   bigint NOT NULL
            );
            GRANT SELECT, INSERT, UPDATE ON testio_mirror_versions TO testio_runtime;
            {rls}
            {apply}
            CREATE FUNCTION testio_products_touch() RETURNS trigger LANGUAGE plpgsql AS $fn$
            BEGIN
                IF TG_OP = 'DELETE' THEN
                    INSERT INTO testio_mirror_versions AS v (tenant_id, version)
                    SELECT tenant_id, nextval('testio_mirror_version_seq')
                      FROM (SELECT DISTINCT tenant_id FROM old_rows) AS t
                    ON CONFLICT (tenant_id) DO UPDATE SET version = EXCLUDED.version;
                ELSE
                    INSERT INTO testio_mirror_versions AS v (tenant_id, version)
                    SELECT tenant_id, nextval('testio_mirror_version_seq')
                      FROM (SELECT DISTINCT tenant_id FROM new_rows) AS t
                    ON CONFLICT (tenant_id) DO UPDATE SET version = EXCLUDED.version;
                END IF;
                RETURN NULL;
            END
            $fn$;
            CREATE TRIGGER testio_products_touch_insert AFTER INSERT ON testio_products
                REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION testio_products_touch();
            CREATE TRIGGER testio_products_touch_update AFTER UPDATE ON testio_products
                REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION testio_products_touch();
            CREATE TRIGGER testio_products_touch_delete AFTER DELETE ON testio_products
                REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION testio_products_touch();
            "#,
                tests = matching("testio_tests", "search_text LIKE lower(pattern)"),
                bugs = matching("testio_bugs", "search_text LIKE lower(pattern)"),
                rls = tenant_rls("testio_mirror_versions"),
                apply = stat_apply(true),
            ),
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(
            manager,
            &format!(
                r#"
            DROP TRIGGER testio_products_touch_insert ON testio_products;
            DROP TRIGGER testio_products_touch_update ON testio_products;
            DROP TRIGGER testio_products_touch_delete ON testio_products;
            DROP FUNCTION testio_products_touch();
            {apply}
            DROP TABLE testio_mirror_versions;
            DROP SEQUENCE testio_mirror_version_seq;
            {tests}
            {bugs}
            DROP INDEX testio_tests_search;
            DROP INDEX testio_bugs_search;
            ALTER TABLE testio_tests DROP COLUMN search_text;
            ALTER TABLE testio_bugs DROP COLUMN search_text;
            CREATE INDEX testio_tests_search ON testio_tests USING gin ({TEST_SEARCH} gin_trgm_ops);
            CREATE INDEX testio_bugs_search ON testio_bugs USING gin ({BUG_SEARCH} gin_trgm_ops);
            "#,
                apply = stat_apply(false),
                tests = matching("testio_tests", &format!("{TEST_SEARCH} ILIKE pattern")),
                bugs = matching("testio_bugs", &format!("{BUG_SEARCH} ILIKE pattern")),
            ),
        )
        .await
    }
}
