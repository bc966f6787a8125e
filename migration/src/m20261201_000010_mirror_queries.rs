//! The read side of the mirror (issue 12): indexes for every filter and sort of the query API, text search, a bug's
//! product, and per-product counters for the statistics.
//!
//! - **Sort indexes.** Every sort key of the lists has a btree index `(tenant_id, key, testio_id)`, so a keyset page
//!   (`(key, testio_id) > ($1, $2)`) is one index range scan in either direction. A missing timestamp sorts as
//!   `+infinity` and a missing word as `''`: the sort keys are never NULL, so the row comparison of a keyset page is
//!   total. The keys of nullable columns are stored generated columns (`end_key = coalesce(end_at, 'infinity')`...)
//!   rather than index expressions: under row-level security Postgres only lets *leakproof* conditions into an index
//!   scan, and it does not count `coalesce(..)` as such, whereas a comparison of a plain column is.
//! - **Text search.** `q` is a case-insensitive substring match (`ILIKE`) over a test's title, goal and instructions
//!   (a bug's title, expected and actual result), served by a trigram GIN index (`pg_trgm`, a trusted extension:
//!   the database owner may create it). The index holds only the text: with `tenant_id` in it too (`btree_gin`),
//!   every search of a large tenant intersected that tenant's whole posting list, and a search of 500,000 bugs took
//!   0.8 s instead of 0.06 s; the tenant is checked on the matching rows instead.
//!   Row-level security does not let a pattern reach that index, though: `ILIKE` is not leakproof, so under RLS
//!   Postgres may only test it after the tenant filter, row by row. The search therefore runs in SECURITY DEFINER
//!   functions owned by the NOLOGIN role `testio_search`, for which a SELECT-only policy on the two tables is `true`:
//!   `testio_tests_matching(pattern, max_rows)` (and `testio_bugs_matching`) returns at most `max_rows` ids of the
//!   *transaction's* tenant (`app.tenant_id`, the setting RLS uses) whose text matches, through the trigram index.
//!   The runtime role may only execute them; the rows themselves are then read under RLS as always. A list uses them
//!   for rare words only: a common word is found faster by testing the rows of the page in sort order (see
//!   `entity::mirror::query::Search`).
//! - **A bug's product.** `testio_bugs.product_id` is the product of its test, kept by the foreign key
//!   `(tenant_id, test_id, product_id) → testio_tests` with `ON UPDATE CASCADE`: a test that moves to another product
//!   takes its bugs along, and a bug can be filtered and sorted by product without a join.
//! - **Counters.** `testio_stat_counts` holds, per product, how many tests have each status and testing type and how
//!   many bugs each severity and status (and how many were auto-accepted). Statement-level triggers with transition
//!   tables keep it in step with every write in the same transaction (one aggregate per statement, not per row), so
//!   the statistics of a tenant with 500,000 bugs are a read of a few hundred rows. A decrement only ever updates an
//!   existing counter: when a product (or the tenant) is deleted, its counters go with it by cascade.

use sea_orm_migration::prelude::*;

use crate::sql::{run, tenant_rls};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// What a test's `q` searches; the query API uses the same expression (the index only serves an identical one).
pub const TEST_SEARCH: &str =
    "(title || ' ' || coalesce(raw->>'goal_text', '') || ' ' || coalesce(raw->>'instructions_text', ''))";
/// What a bug's `q` searches.
pub const BUG_SEARCH: &str =
    "(title || ' ' || coalesce(raw->>'expected_result', '') || ' ' || coalesce(raw->>'actual_result', ''))";

/// The counters of a test row: (metric, value) pairs.
const TEST_METRICS: &str = "('test_status', status), ('test_testing_type', coalesce(testing_type, ''))";
/// The counters of a bug row.
const BUG_METRICS: &str = "('bug_severity', coalesce(severity, '')), ('bug_status', coalesce(status, '')), \
                           ('bug_auto_accepted', coalesce(auto_accepted, false)::text)";

/// `rows` counted by product and `metrics`, as (tenant_id, product_id, metric, value, n) with `sign` before the count.
fn counted(rows: &str, metrics: &str, sign: &str) -> String {
    format!(
        "SELECT tenant_id, product_id, m.metric, m.value, {sign}count(*) AS n
           FROM {rows}, LATERAL (VALUES {metrics}) AS m(metric, value)
          GROUP BY 1, 2, 3, 4"
    )
}

/// The statement-level triggers that keep the counters of `table` in step: the rows a statement inserted count up,
/// the rows it deleted count down, and an update does both (old rows down, new rows up).
fn count_trigger(table: &str, metrics: &str) -> String {
    let delta = |rows: &str, sign: &str| {
        format!("delta := delta || coalesce((SELECT jsonb_agg(x) FROM ({}) AS x), '[]');", counted(rows, metrics, sign))
    };
    let (up, down) = (delta("new_rows", ""), delta("old_rows", "-"));
    format!(
        r#"
        CREATE FUNCTION {table}_count() RETURNS trigger LANGUAGE plpgsql AS $fn$
        DECLARE
            delta jsonb := '[]';
        BEGIN
            IF TG_OP IN ('INSERT', 'UPDATE') THEN
                {up}
            END IF;
            IF TG_OP IN ('UPDATE', 'DELETE') THEN
                {down}
            END IF;
            IF jsonb_array_length(delta) > 0 THEN
                PERFORM testio_stat_apply(delta);
            END IF;
            RETURN NULL;
        END
        $fn$;
        CREATE TRIGGER {table}_count_insert AFTER INSERT ON {table}
            REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {table}_count();
        CREATE TRIGGER {table}_count_update AFTER UPDATE ON {table}
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {table}_count();
        CREATE TRIGGER {table}_count_delete AFTER DELETE ON {table}
            REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {table}_count();
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
            CREATE EXTENSION IF NOT EXISTS pg_trgm;

            -- A bug's product: filled from its test (the owner must see every tenant's rows for that).
            ALTER TABLE testio_bugs NO FORCE ROW LEVEL SECURITY;
            ALTER TABLE testio_tests NO FORCE ROW LEVEL SECURITY;
            ALTER TABLE testio_bugs ADD COLUMN product_id bigint;
            UPDATE testio_bugs b SET product_id = t.product_id
              FROM testio_tests t WHERE t.tenant_id = b.tenant_id AND t.testio_id = b.test_id;
            ALTER TABLE testio_bugs ALTER COLUMN product_id SET NOT NULL;
            ALTER TABLE testio_bugs FORCE ROW LEVEL SECURITY;
            ALTER TABLE testio_tests FORCE ROW LEVEL SECURITY;
            CREATE UNIQUE INDEX testio_tests_product_key ON testio_tests (tenant_id, testio_id, product_id);
            ALTER TABLE testio_bugs DROP CONSTRAINT testio_bugs_tenant_id_test_id_fkey;
            ALTER TABLE testio_bugs ADD CONSTRAINT testio_bugs_test_fkey FOREIGN KEY (tenant_id, test_id, product_id)
                REFERENCES testio_tests (tenant_id, testio_id, product_id) ON DELETE CASCADE ON UPDATE CASCADE;

            -- Sort keys that are never NULL (see the module comment).
            ALTER TABLE testio_tests
                ADD COLUMN end_key   timestamptz NOT NULL GENERATED ALWAYS AS (coalesce(end_at, 'infinity')) STORED,
                ADD COLUMN start_key timestamptz NOT NULL GENERATED ALWAYS AS (coalesce(start_at, 'infinity')) STORED;
            ALTER TABLE testio_bugs
                ADD COLUMN reported_key timestamptz NOT NULL
                    GENERATED ALWAYS AS (coalesce(reported_at, 'infinity')) STORED,
                ADD COLUMN severity_key text NOT NULL GENERATED ALWAYS AS (coalesce(severity, '')) STORED,
                ADD COLUMN status_key   text NOT NULL GENERATED ALWAYS AS (coalesce(status, '')) STORED;

            -- Tests: one index per sort key (and the product filter with the default sort), plus the filters.
            CREATE INDEX testio_tests_end_at_sort ON testio_tests (tenant_id, end_key, testio_id);
            CREATE INDEX testio_tests_start_at_sort ON testio_tests (tenant_id, start_key, testio_id);
            CREATE INDEX testio_tests_title_sort ON testio_tests (tenant_id, title, testio_id);
            DROP INDEX testio_tests_status_idx;
            CREATE INDEX testio_tests_status_sort ON testio_tests (tenant_id, status, testio_id);
            CREATE INDEX testio_tests_status_end_at_sort ON testio_tests (tenant_id, status, end_key, testio_id);
            CREATE INDEX testio_tests_product_end_at_sort ON testio_tests (tenant_id, product_id, end_key, testio_id);
            CREATE INDEX testio_tests_testing_type_idx ON testio_tests (tenant_id, testing_type);
            CREATE INDEX testio_tests_search ON testio_tests USING gin ({TEST_SEARCH} gin_trgm_ops);

            -- Bugs: the same shape.
            CREATE INDEX testio_bugs_reported_at_sort ON testio_bugs (tenant_id, reported_key, testio_id);
            CREATE INDEX testio_bugs_title_sort ON testio_bugs (tenant_id, title, testio_id);
            CREATE INDEX testio_bugs_severity_sort ON testio_bugs (tenant_id, severity_key, testio_id);
            DROP INDEX testio_bugs_status_idx;
            CREATE INDEX testio_bugs_status_sort ON testio_bugs (tenant_id, status_key, testio_id);
            CREATE INDEX testio_bugs_product_reported_at_sort
                ON testio_bugs (tenant_id, product_id, reported_key, testio_id);
            CREATE INDEX testio_bugs_auto_accepted_idx ON testio_bugs (tenant_id, testio_id) WHERE auto_accepted;
            CREATE INDEX testio_bugs_known_idx ON testio_bugs (tenant_id, known);
            CREATE INDEX testio_bugs_search ON testio_bugs USING gin ({BUG_SEARCH} gin_trgm_ops);

            -- Index-backed text search for the tenant of the transaction (see the module comment).
            -- The role is cluster-wide: `migration bootstrap` creates it and makes the owner a member.
            DO $$
            BEGIN
                IF NOT pg_has_role(current_user, 'testio_search', 'MEMBER') THEN
                    RAISE EXCEPTION 'role testio_search is missing or % is not a member of it: run the bootstrap '
                                    '(`migration bootstrap`, as a superuser) before migrating', current_user;
                END IF;
            END
            $$;
            GRANT USAGE, CREATE ON SCHEMA public TO testio_search;
            GRANT SELECT ON testio_tests, testio_bugs TO testio_search;
            CREATE POLICY testio_tests_search ON testio_tests FOR SELECT TO testio_search USING (true);
            CREATE POLICY testio_bugs_search ON testio_bugs FOR SELECT TO testio_search USING (true);
            CREATE FUNCTION testio_tests_matching(pattern text, max_rows integer) RETURNS TABLE (testio_id bigint)
                LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
                SELECT testio_id FROM testio_tests
                 WHERE tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
                   AND {TEST_SEARCH} ILIKE pattern
                 LIMIT max_rows;
            $fn$;
            CREATE FUNCTION testio_bugs_matching(pattern text, max_rows integer) RETURNS TABLE (testio_id bigint)
                LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
                SELECT testio_id FROM testio_bugs
                 WHERE tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
                   AND {BUG_SEARCH} ILIKE pattern
                 LIMIT max_rows;
            $fn$;
            ALTER FUNCTION testio_tests_matching(text, integer) OWNER TO testio_search;
            ALTER FUNCTION testio_bugs_matching(text, integer) OWNER TO testio_search;
            REVOKE ALL ON FUNCTION testio_tests_matching(text, integer), testio_bugs_matching(text, integer) FROM PUBLIC;
            GRANT EXECUTE ON FUNCTION testio_tests_matching(text, integer), testio_bugs_matching(text, integer)
                TO testio_runtime;

            -- Products: the list's sort.
            CREATE INDEX testio_products_name_sort ON testio_products (tenant_id, name, testio_id);

            CREATE TABLE testio_stat_counts (
                tenant_id  uuid   NOT NULL,
                product_id bigint NOT NULL,
                metric     text   NOT NULL CHECK (metric IN ('test_status', 'test_testing_type', 'bug_severity',
                                                             'bug_status', 'bug_auto_accepted')),
                -- The stored word; '' for none.
                value      text   NOT NULL,
                n          bigint NOT NULL,
                PRIMARY KEY (tenant_id, product_id, metric, value),
                FOREIGN KEY (tenant_id, product_id) REFERENCES testio_products (tenant_id, testio_id) ON DELETE CASCADE
            );
            GRANT SELECT, INSERT, UPDATE ON testio_stat_counts TO testio_runtime;

            -- Adds `delta` (rows of tenant_id, product_id, metric, value, n) to the counters. Decrements never create
            -- a counter: a missing one means its product is being deleted.
            CREATE FUNCTION testio_stat_apply(delta jsonb) RETURNS void LANGUAGE sql AS $fn$
                WITH d AS (
                    SELECT tenant_id, product_id, metric, value, sum(n)::bigint AS n
                      FROM jsonb_to_recordset(delta)
                           AS r(tenant_id uuid, product_id bigint, metric text, value text, n bigint)
                     GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0
                ), down AS (
                    UPDATE testio_stat_counts c SET n = c.n + d.n FROM d
                     WHERE d.n < 0 AND c.tenant_id = d.tenant_id AND c.product_id = d.product_id
                       AND c.metric = d.metric AND c.value = d.value
                )
                INSERT INTO testio_stat_counts AS c (tenant_id, product_id, metric, value, n)
                SELECT tenant_id, product_id, metric, value, n FROM d WHERE n > 0
                ON CONFLICT (tenant_id, product_id, metric, value) DO UPDATE SET n = c.n + EXCLUDED.n;
            $fn$;
            "#
            ),
        )
        .await?;
        run(manager, &count_trigger("testio_tests", TEST_METRICS)).await?;
        run(manager, &count_trigger("testio_bugs", BUG_METRICS)).await?;
        run(manager, &tenant_rls("testio_stat_counts")).await?;
        // Counters for the rows already mirrored (the owner must see every tenant's rows).
        run(
            manager,
            &format!(
                r#"
            ALTER TABLE testio_stat_counts NO FORCE ROW LEVEL SECURITY;
            ALTER TABLE testio_bugs NO FORCE ROW LEVEL SECURITY;
            ALTER TABLE testio_tests NO FORCE ROW LEVEL SECURITY;
            INSERT INTO testio_stat_counts (tenant_id, product_id, metric, value, n)
            {tests} UNION ALL {bugs};
            ALTER TABLE testio_stat_counts FORCE ROW LEVEL SECURITY;
            ALTER TABLE testio_bugs FORCE ROW LEVEL SECURITY;
            ALTER TABLE testio_tests FORCE ROW LEVEL SECURITY;
            "#,
                tests = counted("testio_tests", TEST_METRICS, ""),
                bugs = counted("testio_bugs", BUG_METRICS, ""),
            ),
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(
            manager,
            r#"
            DROP FUNCTION testio_tests_matching(text, integer);
            DROP FUNCTION testio_bugs_matching(text, integer);
            DROP POLICY testio_tests_search ON testio_tests;
            DROP POLICY testio_bugs_search ON testio_bugs;
            REVOKE SELECT ON testio_tests, testio_bugs FROM testio_search;
            REVOKE USAGE, CREATE ON SCHEMA public FROM testio_search;
            DROP TRIGGER testio_tests_count_insert ON testio_tests;
            DROP TRIGGER testio_tests_count_update ON testio_tests;
            DROP TRIGGER testio_tests_count_delete ON testio_tests;
            DROP TRIGGER testio_bugs_count_insert ON testio_bugs;
            DROP TRIGGER testio_bugs_count_update ON testio_bugs;
            DROP TRIGGER testio_bugs_count_delete ON testio_bugs;
            DROP FUNCTION testio_tests_count();
            DROP FUNCTION testio_bugs_count();
            DROP FUNCTION testio_stat_apply(jsonb);
            DROP TABLE testio_stat_counts;
            DROP INDEX testio_products_name_sort;
            DROP INDEX testio_bugs_search;
            DROP INDEX testio_bugs_known_idx;
            DROP INDEX testio_bugs_auto_accepted_idx;
            DROP INDEX testio_bugs_product_reported_at_sort;
            DROP INDEX testio_bugs_status_sort;
            CREATE INDEX testio_bugs_status_idx ON testio_bugs (tenant_id, status);
            DROP INDEX testio_bugs_severity_sort;
            DROP INDEX testio_bugs_title_sort;
            DROP INDEX testio_bugs_reported_at_sort;
            DROP INDEX testio_tests_search;
            DROP INDEX testio_tests_testing_type_idx;
            DROP INDEX testio_tests_product_end_at_sort;
            DROP INDEX testio_tests_status_end_at_sort;
            DROP INDEX testio_tests_status_sort;
            CREATE INDEX testio_tests_status_idx ON testio_tests (tenant_id, status);
            DROP INDEX testio_tests_title_sort;
            DROP INDEX testio_tests_start_at_sort;
            DROP INDEX testio_tests_end_at_sort;
            ALTER TABLE testio_tests DROP COLUMN end_key, DROP COLUMN start_key;
            ALTER TABLE testio_bugs DROP COLUMN reported_key, DROP COLUMN severity_key, DROP COLUMN status_key;
            ALTER TABLE testio_bugs DROP CONSTRAINT testio_bugs_test_fkey;
            ALTER TABLE testio_bugs ADD CONSTRAINT testio_bugs_tenant_id_test_id_fkey FOREIGN KEY (tenant_id, test_id)
                REFERENCES testio_tests (tenant_id, testio_id) ON DELETE CASCADE;
            DROP INDEX testio_tests_product_key;
            ALTER TABLE testio_bugs DROP COLUMN product_id;
            DROP EXTENSION IF EXISTS pg_trgm;
            "#,
        )
        .await
    }
}
