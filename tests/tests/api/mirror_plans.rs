//! The query API's plans (issue 12): with a tenant big enough that the planner prefers indexes (20,000 tests, 50,000
//! bugs) next to several smaller ones, `EXPLAIN` of every list statement — every filter, every sort in both
//! directions, first and deep keyset pages, offset pages and their counts — run as the runtime role in a `TenantTxn`
//! (row-level security active) has no sequential scan of `testio_tests` or `testio_bugs`; and the text search's inner
//! query, run as `testio_search`, uses the trigram indexes.

use chrono::{TimeZone, Utc};
use entity::mirror::query::{
    self, BugFilter, BugQuery, BugSort, Direction, Keyset, ProductQuery, ProductSort, SortValue, TestFilter, TestQuery,
    TestSort, TimeRange, Window,
};
use entity::{TenantId, TenantTxn};
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use serde_json::Value;
use tests::TestApp;
use tests::mirror::ids;

const BIG_TESTS: i64 = 20_000;
const BIG_BUGS: i64 = 50_000;
const SMALL_TENANTS: usize = 5;
const SMALL_TESTS: i64 = 1_000;
const SMALL_BUGS: i64 = 2_000;
const PRODUCTS: i64 = 20;
/// The indexes of the two tables (to check the bulk load left them as they were).
const INDEX_COUNT: &str = "SELECT count(*) FROM pg_index WHERE indrelid IN ('testio_tests'::regclass, 'testio_bugs'::regclass) AND indisvalid";

/// The rows of `tenant`'s mirror: `tests` tests and `bugs` bugs in [`PRODUCTS`] products, every 1,000th test and bug
/// mentioning "needle" (one statement per table: the counters' triggers run once each).
fn fill_sql(tenant: uuid::Uuid, tests: i64, bugs: i64) -> String {
    let statuses = "array['initialized','customer_finalized','waiting','running','locked','archived','cancelled']";
    let kinds = "array['coverage','focused','rapid','usability','custom','external']";
    let severities = "array['low','high','critical','visual','content','custom']";
    let bug_statuses = "array['forwarded','accepted','rejected']";
    format!(
        "INSERT INTO testio_products (tenant_id, testio_id, name, product_type, raw)
         SELECT '{tenant}', p, 'Product ' || p, 'website', jsonb_build_object('id', p)
           FROM generate_series(1, {PRODUCTS}) p;
         INSERT INTO testio_tests (tenant_id, testio_id, product_id, title, status, testing_type, review_status,
                                   start_at, end_at, raw)
         SELECT '{tenant}', 100000 + i, 1 + i % {PRODUCTS}, 'Test ' || i || ' ' || left(md5(i::text), 10),
                ({statuses})[1 + i % 7],
                CASE WHEN i % 11 = 0 THEN NULL ELSE ({kinds})[1 + i % 6] END,
                'review_successful',
                CASE WHEN i % 13 = 0 THEN NULL ELSE timestamptz '2024-01-01' + i * interval '37 minutes' END,
                CASE WHEN i % 17 = 0 THEN NULL ELSE timestamptz '2024-01-03' + i * interval '37 minutes' END,
                jsonb_build_object('id', 100000 + i,
                                   'goal_text', 'goal ' || left(md5((i * 7)::text), 12)
                                                || CASE WHEN i % 1000 = 0 THEN ' needle' ELSE '' END,
                                   'instructions_text', 'steps ' || left(md5((i * 3)::text), 12))
           FROM generate_series(1, {tests}) i;
         INSERT INTO testio_bugs (tenant_id, testio_id, test_id, product_id, title, severity, status, known,
                                  auto_accepted, reported_at, raw)
         SELECT '{tenant}', 1000000 + j, 100000 + t, 1 + t % {PRODUCTS},
                'Bug ' || j || ' ' || left(md5(j::text), 10)
                       || CASE WHEN j % 1000 = 0 THEN ' needle' ELSE '' END,
                CASE WHEN j % 19 = 0 THEN NULL ELSE ({severities})[1 + j % 6] END,
                CASE WHEN j % 23 = 0 THEN NULL ELSE ({bug_statuses})[1 + j % 3] END,
                CASE j % 3 WHEN 0 THEN true WHEN 1 THEN false END,
                j % 5 = 0,
                CASE WHEN j % 29 = 0 THEN NULL ELSE timestamptz '2024-01-02' + j * interval '11 minutes' END,
                jsonb_build_object('id', 1000000 + j, 'expected_result', 'expected ' || left(md5((j * 5)::text), 8),
                                   'actual_result', 'actual ' || left(md5((j * 2)::text), 8))
           FROM generate_series(1, {bugs}) j, LATERAL (SELECT 1 + j % {tests} AS t) tt;"
    )
}

/// Loads every `(tenant, tests, bugs)` as the superuser, in one transaction, then `ANALYZE`s. To keep this under a
/// few seconds, the secondary indexes of the two tables are dropped first and created again afterwards from their
/// own definitions (`pg_get_indexdef`): same names, same definitions, built in bulk instead of row by row.
async fn bulk_load(app: &TestApp, loads: &[(uuid::Uuid, i64, i64)]) {
    let inserts: String = loads.iter().map(|(tenant, tests, bugs)| fill_sql(*tenant, *tests, *bugs)).collect();
    app.sql(&format!(
        "BEGIN;
         CREATE TEMP TABLE secondary_indexes AS
             SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition
               FROM pg_index i
              WHERE i.indrelid IN ('testio_tests'::regclass, 'testio_bugs'::regclass)
                AND NOT i.indisunique AND NOT i.indisprimary;
         DO $$ DECLARE r record; BEGIN
             FOR r IN SELECT name FROM secondary_indexes LOOP EXECUTE 'DROP INDEX ' || r.name; END LOOP;
         END $$;
         {inserts}
         SET LOCAL maintenance_work_mem = '256MB';
         DO $$ DECLARE r record; BEGIN
             FOR r IN SELECT definition FROM secondary_indexes LOOP EXECUTE r.definition; END LOOP;
         END $$;
         DROP TABLE secondary_indexes;
         COMMIT;
         ANALYZE testio_products; ANALYZE testio_tests; ANALYZE testio_bugs; ANALYZE testio_stat_counts;"
    ))
    .await;
}

/// Every `Seq Scan` of `testio_tests` or `testio_bugs` anywhere in an `EXPLAIN (FORMAT JSON)` plan.
fn seq_scans(plan: &Value, found: &mut Vec<String>) {
    match plan {
        Value::Object(node) => {
            if node.get("Node Type").and_then(Value::as_str) == Some("Seq Scan") {
                let relation = node.get("Relation Name").and_then(Value::as_str).unwrap_or("");
                if ["testio_tests", "testio_bugs"].contains(&relation) {
                    found.push(relation.to_owned());
                }
            }
            node.values().for_each(|v| seq_scans(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| seq_scans(v, found)),
        _ => {}
    }
}

/// Every index a plan uses.
fn indexes(plan: &Value, found: &mut Vec<String>) {
    match plan {
        Value::Object(node) => {
            if let Some(index) = node.get("Index Name").and_then(Value::as_str) {
                found.push(index.to_owned());
            }
            node.values().for_each(|v| indexes(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| indexes(v, found)),
        _ => {}
    }
}

fn directions() -> [Direction; 2] {
    [Direction::Asc, Direction::Desc]
}

fn mid() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).single().unwrap()
}

/// The windows every list statement is explained with: the first page, deep keyset pages (a timestamp, +infinity or
/// a word as the key), a deep offset page.
fn windows(values: &[SortValue]) -> Vec<Window> {
    let mut out = vec![Window::Keyset { after: None, limit: 50 }];
    for value in values {
        out.push(Window::Keyset { after: Some(Keyset { value: value.clone(), id: 110_000 }), limit: 50 });
    }
    out.push(Window::Offset { offset: 5_000, limit: 50 });
    out
}

fn test_filters() -> Vec<(&'static str, TestFilter)> {
    let range = TimeRange { from: Some(mid()), to: Some(mid() + chrono::Duration::days(20)) };
    vec![
        ("none", TestFilter::default()),
        ("product_id", TestFilter { product_ids: vec![3], ..Default::default() }),
        ("product_ids", TestFilter { product_ids: vec![3, 7, 11], ..Default::default() }),
        ("status", TestFilter { statuses: vec!["running".into()], ..Default::default() }),
        ("statuses", TestFilter { statuses: vec!["running".into(), "locked".into()], ..Default::default() }),
        ("testing_type", TestFilter { testing_types: vec!["rapid".into()], ..Default::default() }),
        ("start", TestFilter { start: range, ..Default::default() }),
        ("start_from", TestFilter { start: TimeRange { from: Some(mid()), to: None }, ..Default::default() }),
        ("end", TestFilter { end: range, ..Default::default() }),
        ("end_to", TestFilter { end: TimeRange { from: None, to: Some(mid()) }, ..Default::default() }),
        ("q", TestFilter { q: Some("needle".into()), ..Default::default() }),
        (
            "product+status+end",
            TestFilter {
                product_ids: vec![3],
                statuses: vec!["archived".into(), "cancelled".into()],
                end: range,
                ..Default::default()
            },
        ),
        (
            "type+start+q",
            TestFilter {
                testing_types: vec!["focused".into()],
                start: range,
                q: Some("goal".into()),
                ..Default::default()
            },
        ),
    ]
}

fn bug_filters() -> Vec<(&'static str, BugFilter)> {
    let range = TimeRange { from: Some(mid()), to: Some(mid() + chrono::Duration::days(20)) };
    vec![
        ("none", BugFilter::default()),
        ("test_id", BugFilter { test_ids: vec![100_005], ..Default::default() }),
        ("test_ids", BugFilter { test_ids: vec![100_005, 100_006, 120_000], ..Default::default() }),
        ("product_id", BugFilter { product_ids: vec![3], ..Default::default() }),
        ("severity", BugFilter { severities: vec!["high".into()], ..Default::default() }),
        ("status", BugFilter { statuses: vec!["accepted".into()], ..Default::default() }),
        ("auto_accepted", BugFilter { auto_accepted: true, ..Default::default() }),
        (
            "status+auto_accepted",
            BugFilter { statuses: vec!["rejected".into()], auto_accepted: true, ..Default::default() },
        ),
        ("known", BugFilter { known: Some(true), ..Default::default() }),
        ("not known", BugFilter { known: Some(false), ..Default::default() }),
        ("reported", BugFilter { reported: range, ..Default::default() }),
        ("q", BugFilter { q: Some("needle".into()), ..Default::default() }),
        (
            "product+severity+status+known+reported",
            BugFilter {
                product_ids: vec![3],
                severities: vec!["low".into(), "critical".into()],
                statuses: vec!["forwarded".into()],
                known: Some(false),
                reported: range,
                ..Default::default()
            },
        ),
        ("test+q", BugFilter { test_ids: vec![100_005], q: Some("bug".into()), ..Default::default() }),
    ]
}

/// Explains every statement of every list for `tenant` and returns what scans the tables sequentially.
async fn seq_scanning_statements(runtime: &sea_orm::DatabaseConnection, tenant: uuid::Uuid) -> (usize, Vec<String>) {
    let txn = TenantTxn::begin(runtime, TenantId(tenant)).await.unwrap();
    let mut statements: Vec<(String, Statement)> = Vec::new();
    for (name, filter) in test_filters() {
        for sort in [TestSort::EndAt, TestSort::StartAt, TestSort::Title, TestSort::Status] {
            let values = match sort {
                TestSort::EndAt | TestSort::StartAt => vec![SortValue::Time(Some(mid())), SortValue::Time(None)],
                TestSort::Title => vec![SortValue::Text("Test 5".into())],
                TestSort::Status => vec![SortValue::Text("locked".into())],
            };
            for direction in directions() {
                for window in windows(&values) {
                    let q = TestQuery {
                        filter: filter.clone(),
                        sort,
                        direction,
                        window: window.clone(),
                        include_raw: true,
                    };
                    statements.push((format!("tests {name} {sort:?} {direction:?} {window:?}"), q.statement()));
                }
            }
        }
        let q = TestQuery {
            filter: filter.clone(),
            sort: TestSort::EndAt,
            direction: Direction::Desc,
            window: Window::Offset { offset: 0, limit: 50 },
            include_raw: false,
        };
        statements.push((format!("tests {name} count"), q.count_statement()));
    }
    for (name, filter) in bug_filters() {
        for sort in [BugSort::ReportedAt, BugSort::Severity, BugSort::Status, BugSort::Title] {
            let values = match sort {
                BugSort::ReportedAt => vec![SortValue::Time(Some(mid())), SortValue::Time(None)],
                BugSort::Title => vec![SortValue::Text("Bug 5".into())],
                BugSort::Severity => vec![SortValue::Text("high".into()), SortValue::Text(String::new())],
                BugSort::Status => vec![SortValue::Text("accepted".into())],
            };
            for direction in directions() {
                for window in windows(&values) {
                    let q =
                        BugQuery { filter: filter.clone(), sort, direction, window: window.clone(), include_raw: true };
                    statements.push((format!("bugs {name} {sort:?} {direction:?} {window:?}"), q.statement()));
                }
            }
        }
        let q = BugQuery {
            filter: filter.clone(),
            sort: BugSort::ReportedAt,
            direction: Direction::Desc,
            window: Window::Offset { offset: 0, limit: 50 },
            include_raw: false,
        };
        statements.push((format!("bugs {name} count"), q.count_statement()));
    }
    for sort in [ProductSort::Name, ProductSort::Id] {
        let values = match sort {
            ProductSort::Name => vec![SortValue::Text("Product 5".into())],
            ProductSort::Id => vec![SortValue::Id],
        };
        for direction in directions() {
            for window in windows(&values) {
                let q = ProductQuery { sort, direction, window: window.clone(), include_raw: false };
                statements.push((format!("products {sort:?} {direction:?} {window:?}"), q.statement()));
            }
        }
    }
    // The detail routes, with and without their raw JSON (a test's counts its bugs through the test_id index).
    for include_raw in [false, true] {
        statements.push((format!("test detail raw={include_raw}"), query::test_statement(BIG_TESTS / 2, include_raw)));
        statements.push((format!("bug detail raw={include_raw}"), query::bug_statement(BIG_BUGS / 2, include_raw)));
    }
    let mut failures = Vec::new();
    for (name, statement) in &statements {
        let plan = query::explain(&txn, statement).await.unwrap_or_else(|e| panic!("EXPLAIN {name}: {e}"));
        let mut found = Vec::new();
        seq_scans(&plan, &mut found);
        if !found.is_empty() {
            failures.push(format!("{name}: Seq Scan on {}\n    {}\n    {plan}", found.join(", "), statement.sql));
        }
    }
    txn.rollback().await.unwrap();
    (statements.len(), failures)
}

/// The index the search function's inner query uses, explained as `testio_search` for `tenant`.
async fn search_indexes(app: &TestApp, tenant: uuid::Uuid, table: &str, text: &str) -> (Vec<String>, Value) {
    let db = app.db.superuser().await;
    let txn = db.begin().await.unwrap();
    txn.execute_unprepared("SET LOCAL ROLE testio_search").await.unwrap();
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT set_config('app.tenant_id', $1, true)",
        [tenant.to_string().into()],
    ))
    .await
    .unwrap();
    // The function's body (migration 12), with the pattern the API binds for q=needle.
    let sql = format!(
        "EXPLAIN (FORMAT JSON) SELECT testio_id FROM {table}
          WHERE tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid AND {text} LIKE lower($1)"
    );
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            &sql,
            [query::like_pattern("needle").into()],
        ))
        .await
        .unwrap()
        .unwrap();
    let plan: Value = row.try_get("", "QUERY PLAN").unwrap();
    txn.rollback().await.unwrap();
    let mut found = Vec::new();
    indexes(&plan, &mut found);
    (found, plan)
}

#[tokio::test]
async fn no_list_statement_scans_tests_or_bugs_sequentially_and_search_uses_the_trigram_indexes() {
    let app = tests::spawn_app().await;
    let owner = app.register("owner@example.com").await;
    let big = app.create_tenant(&owner, "big").await;
    let mut small = Vec::new();
    for i in 0..SMALL_TENANTS {
        small.push(app.create_tenant(&owner, &format!("small-{i}")).await);
    }
    let indexes_before = app.db.count(INDEX_COUNT).await;
    let started = std::time::Instant::now();
    let mut loads = vec![(big, BIG_TESTS, BIG_BUGS)];
    loads.extend(small.iter().map(|t| (*t, SMALL_TESTS, SMALL_BUGS)));
    bulk_load(&app, &loads).await;
    eprintln!("seeded in {:?}", started.elapsed());
    assert_eq!(app.db.count(INDEX_COUNT).await, indexes_before, "the indexes were not all created again");

    let runtime = app.db.connect_runtime().await;
    let mut failures = Vec::new();
    let mut explained = 0;
    // Under RLS the tenant is a run-time parameter: the plans are the same for every tenant; the big one's data
    // (most rows of the tables) is the hard case.
    let (n, found) = seq_scanning_statements(&runtime, big).await;
    explained += n;
    failures.extend(found);
    eprintln!("explained {explained} statements in {:?}", started.elapsed());
    assert!(explained > 700, "only {explained} statements explained");
    assert!(
        failures.is_empty(),
        "{} of {explained} statements scan a table sequentially:\n{}",
        failures.len(),
        failures.join("\n\n")
    );

    for (table, text, index) in [
        ("testio_tests", query::SEARCH_TEXT, "testio_tests_search"),
        ("testio_bugs", query::SEARCH_TEXT, "testio_bugs_search"),
    ] {
        for tenant in [big, small[0]] {
            let (used, plan) = search_indexes(&app, tenant, table, text).await;
            assert!(used.iter().any(|i| i == index), "the search of {table} does not use {index}: {used:?}\n{plan}");
        }
    }

    // A filter the counters cover has an exact total at any size; past 10,000 rows another is "at least 10,000";
    // the small tenant's is exact.
    let page = app.get_mirror_list(&owner, big, "tests", &[("page", "1"), ("per_page", "1")]).await;
    assert_eq!(page.status(), 200);
    let page: Value = page.json().await.unwrap();
    assert_eq!((&page["total"], &page["total_exact"]), (&BIG_TESTS.into(), &true.into()), "{page}");
    let bugs = app.get_mirror_list(&owner, big, "bugs", &[("page", "1"), ("per_page", "1")]).await;
    let bugs: Value = bugs.json().await.unwrap();
    assert_eq!((&bugs["total"], &bugs["total_exact"]), (&BIG_BUGS.into(), &true.into()), "{bugs}");
    let dated = [("page", "1"), ("per_page", "1"), ("reported_from", "1970-01-01T00:00:00Z")];
    let capped = app.get_mirror_list(&owner, big, "bugs", &dated).await;
    let capped: Value = capped.json().await.unwrap();
    assert_eq!((&capped["total"], &capped["total_exact"]), (&10_000.into(), &false.into()), "{capped}");
    let last = app.get_mirror_list(&owner, big, "bugs", &[("page", "200"), ("per_page", "50")]).await;
    assert_eq!(last.status(), 200, "page 200 of 50 ends at row 10,000: allowed");
    let last: Value = last.json().await.unwrap();
    assert_eq!(ids(&last).len(), 50);
    let exact = app.get_mirror_list(&owner, small[0], "tests", &[("page", "1"), ("per_page", "1")]).await;
    let exact: Value = exact.json().await.unwrap();
    assert_eq!((&exact["total"], &exact["total_exact"]), (&SMALL_TESTS.into(), &true.into()), "{exact}");
    let searched = app.get_mirror_list(&owner, big, "tests", &[("q", "NEEDLE"), ("limit", "200")]).await;
    let searched: Value = searched.json().await.unwrap();
    assert_eq!(ids(&searched).len() as i64, BIG_TESTS / 1000, "every 1,000th test mentions the needle");
    searches_page_like_the_database(&app, &owner, big).await;
    let stats = app.get_mirror(&owner, big, "stats").await;
    let stats: Value = stats.json().await.unwrap();
    assert_eq!(
        (&stats["overall"]["tests_total"], &stats["overall"]["bugs_total"]),
        (&BIG_TESTS.into(), &BIG_BUGS.into())
    );
    runtime.close().await.unwrap();
    eprintln!("done in {:?}", started.elapsed());
}

/// A search through the API: list, `q`, other parameters, and the SQL order the superuser's answer is sorted by.
type SearchCase = (&'static str, &'static str, &'static [(&'static str, &'static str)], &'static str);

/// A `q` that matches thousands of rows (checked row by row along the sort index) and one that matches a few hundred
/// (looked up by id) page exactly like the same search run by the superuser, with and without another filter.
async fn searches_page_like_the_database(app: &TestApp, owner: &tests::app::TestUser, big: uuid::Uuid) {
    let cases: [SearchCase; 6] = [
        ("tests", "goal", &[], "end_key DESC, testio_id DESC"),
        ("tests", "test 1", &[("sort", "title")], "title ASC, testio_id ASC"),
        ("tests", "test 123", &[("sort", "-start_at")], "start_key DESC, testio_id DESC"),
        ("tests", "test 2", &[("status", "running")], "end_key DESC, testio_id DESC"),
        ("bugs", "expected", &[("status", "accepted"), ("sort", "-severity")], "severity_key DESC, testio_id DESC"),
        ("bugs", "bug 4", &[], "reported_key DESC, testio_id DESC"),
    ];
    for (list, q, extra, order) in cases {
        let (table, text) = match list {
            "tests" => ("testio_tests", query::TEST_SEARCH),
            _ => ("testio_bugs", query::BUG_SEARCH),
        };
        let mut conditions = vec![format!("tenant_id = '{big}'"), format!("{text} ILIKE '%{q}%'")];
        for (name, value) in extra.iter().filter(|(n, _)| *n != "sort") {
            conditions.push(format!("{name} = '{value}'"));
        }
        let sql =
            format!("SELECT testio_id FROM {table} WHERE {} ORDER BY {order} LIMIT 150", conditions.join(" AND "));
        let rows =
            app.db.superuser().await.query_all_raw(Statement::from_string(DbBackend::Postgres, sql)).await.unwrap();
        let expected: Vec<i64> = rows.iter().map(|r| r.try_get::<i64>("", "testio_id").unwrap()).collect();
        assert!(expected.len() >= 100, "{list} q={q}: the case needs matches, has {}", expected.len());

        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..3 {
            let mut params: Vec<(&str, &str)> = vec![("q", q), ("limit", "50")];
            params.extend_from_slice(extra);
            if let Some(c) = &cursor {
                params.push(("cursor", c));
            }
            let page = app.get_mirror_list(owner, big, list, &params).await;
            assert_eq!(page.status(), 200, "{list} q={q}");
            let page: Value = page.json().await.unwrap();
            seen.extend(ids(&page));
            cursor = page["next_cursor"].as_str().map(str::to_owned);
            if cursor.is_none() {
                break;
            }
        }
        let n = seen.len().min(expected.len());
        assert_eq!(seen[..n], expected[..n], "{list} q={q} {extra:?}");
    }
}
