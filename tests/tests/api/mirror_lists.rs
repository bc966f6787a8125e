//! The query API's lists and items against known data (issue 12): every filter alone and combined, every sort in both
//! directions (the expected order computed here from the seed with the contract's rules: a missing timestamp sorts as
//! +infinity, ties by id in the same direction), keyset paging at limits 1, 2 and 3 without gaps or duplicates, offset
//! paging with totals, `include=raw`, the detail counts, 404s, and who may read.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::mirror::{BugRow, ProductRow, TestRow};
use futures_util::StreamExt;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};
use tests::app::Anonymous;
use tests::mirror::{
    BUG_SEVERITIES, BUG_STATUSES, KnownData, MirrorFixture, TEST_STATUSES, TESTING_TYPES, at, ids, query, rfc3339,
    time, try_get, walk_keyset,
};

/// A sort key as the contract orders it: a missing timestamp after every other, words by the database's collation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    /// (missing, microseconds): a missing timestamp is +infinity.
    Time(bool, i64),
    /// A word's rank in the database's collation.
    Word(i64),
    /// The id itself.
    Id,
}

fn time_key(t: Option<DateTime<Utc>>) -> Key {
    match t {
        None => Key::Time(true, 0),
        Some(t) => Key::Time(false, t.timestamp_micros()),
    }
}

/// Ranks of words in the database's collation (titles sort as Postgres compares them, not as Rust does).
struct Collation(HashMap<String, i64>);

impl Collation {
    async fn of(f: &MirrorFixture) -> Self {
        let mut words: Vec<String> = vec![String::new()];
        for data in [&f.data, &f.other_data] {
            words.extend(data.products.iter().map(|p| p.name.clone()));
            words.extend(data.tests.iter().flat_map(|t| [t.title.clone(), t.status.as_str().to_owned()]));
            words.extend(data.bugs.iter().map(|b| b.title.clone()));
            words.extend(data.bugs.iter().filter_map(|b| b.severity.clone()));
            words.extend(data.bugs.iter().filter_map(|b| b.status.clone()));
        }
        let rows = f
            .app
            .db
            .superuser()
            .await
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT w, (dense_rank() OVER (ORDER BY w))::bigint AS r FROM jsonb_array_elements_text($1::jsonb) w",
                [json!(words).into()],
            ))
            .await
            .unwrap();
        Self(rows.iter().map(|r| (r.try_get("", "w").unwrap(), r.try_get("", "r").unwrap())).collect())
    }

    fn word(&self, w: &str) -> Key {
        Key::Word(self.0[w])
    }
}

/// Ids of `items` in the order of `sort` (`key` ascending, `-key` descending; ties by id in the same direction).
fn ordered<T>(items: Vec<&T>, sort: &str, key: impl Fn(&T) -> Key, id: impl Fn(&T) -> i64) -> Vec<i64> {
    let mut keyed: Vec<(Key, i64)> = items.into_iter().map(|item| (key(item), id(item))).collect();
    keyed.sort();
    if sort.starts_with('-') {
        keyed.reverse();
    }
    keyed.into_iter().map(|(_, id)| id).collect()
}

const TEST_SORTS: [&str; 8] = ["end_at", "-end_at", "start_at", "-start_at", "title", "-title", "status", "-status"];
const BUG_SORTS: [&str; 8] =
    ["reported_at", "-reported_at", "severity", "-severity", "status", "-status", "title", "-title"];
const PRODUCT_SORTS: [&str; 4] = ["name", "-name", "id", "-id"];

fn test_key(c: &Collation, sort: &str, t: &TestRow) -> Key {
    match sort.trim_start_matches('-') {
        "end_at" => time_key(t.end_at),
        "start_at" => time_key(t.start_at),
        "title" => c.word(&t.title),
        // The stored word (what the index holds), also for a word the API shows as `other`.
        "status" => c.word(t.status.as_str()),
        other => panic!("no test sort {other}"),
    }
}

fn bug_key(c: &Collation, sort: &str, b: &BugRow) -> Key {
    match sort.trim_start_matches('-') {
        "reported_at" => time_key(b.reported_at),
        // The contract does not say where a missing severity or status sorts; the data layer sorts it as `''`.
        "severity" => c.word(b.severity.as_deref().unwrap_or("")),
        "status" => c.word(b.status.as_deref().unwrap_or("")),
        "title" => c.word(&b.title),
        other => panic!("no bug sort {other}"),
    }
}

fn product_key(c: &Collation, sort: &str, p: &ProductRow) -> Key {
    match sort.trim_start_matches('-') {
        "name" => c.word(&p.name),
        "id" => Key::Id,
        other => panic!("no product sort {other}"),
    }
}

fn expected_tests(data: &KnownData, c: &Collation, sort: &str, keep: &dyn Fn(&TestRow) -> bool) -> Vec<i64> {
    ordered(data.tests.iter().filter(|t| keep(t)).collect(), sort, |t| test_key(c, sort, t), |t| t.testio_id)
}

fn expected_bugs(data: &KnownData, c: &Collation, sort: &str, keep: &dyn Fn(&BugRow) -> bool) -> Vec<i64> {
    ordered(data.bugs.iter().filter(|b| keep(b)).collect(), sort, |b| bug_key(c, sort, b), |b| b.testio_id)
}

fn expected_products(data: &KnownData, c: &Collation, sort: &str) -> Vec<i64> {
    ordered(data.products.iter().collect(), sort, |p| product_key(c, sort, p), |p| p.testio_id)
}

/// A case-insensitive substring of one of `texts` (`q` trimmed).
fn matches(q: &str, texts: &[Option<&str>]) -> bool {
    let q = q.trim().to_lowercase();
    texts.iter().flatten().any(|text| text.to_lowercase().contains(&q))
}

fn test_matches(q: &str, t: &TestRow) -> bool {
    matches(q, &[Some(&t.title), t.raw["goal_text"].as_str(), t.raw["instructions_text"].as_str()])
}

fn bug_matches(q: &str, b: &BugRow) -> bool {
    matches(q, &[Some(&b.title), b.raw["expected_result"].as_str(), b.raw["actual_result"].as_str()])
}

fn within(t: Option<DateTime<Utc>>, from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> bool {
    t.is_some_and(|t| from.is_none_or(|from| t >= from) && to.is_none_or(|to| t <= to))
}

type TestPredicate = Box<dyn Fn(&TestRow) -> bool>;
type BugPredicate = Box<dyn Fn(&BugRow) -> bool>;

/// Query parameters as owned pairs.
fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn h(days: i64) -> DateTime<Utc> {
    at(days * 24)
}

/// The test filters: each alone, the repeated and comma forms, and combinations.
fn test_cases() -> Vec<(Vec<(String, String)>, TestPredicate)> {
    let mut cases: Vec<(Vec<(String, String)>, TestPredicate)> = vec![
        (vec![], Box::new(|_| true)),
        (pairs(&[("product_id", "101")]), Box::new(|t| t.product_id == 101)),
        (pairs(&[("product_id", "101"), ("product_id", "103")]), Box::new(|t| [101, 103].contains(&t.product_id))),
        (pairs(&[("product_id", "101,102")]), Box::new(|t| [101, 102].contains(&t.product_id))),
        (pairs(&[("product_id", "104")]), Box::new(|_| false)),
        (pairs(&[("product_id", "201")]), Box::new(|_| false)),
        (
            pairs(&[("status", "running,locked"), ("status", "archived")]),
            Box::new(|t| ["running", "locked", "archived"].contains(&t.status.as_str())),
        ),
        (
            pairs(&[("testing_type", "coverage,focused")]),
            Box::new(|t| matches!(t.testing_type.as_deref(), Some("coverage" | "focused"))),
        ),
        (
            pairs(&[("testing_type", "rapid"), ("testing_type", "external")]),
            Box::new(|t| matches!(t.testing_type.as_deref(), Some("rapid" | "external"))),
        ),
    ];
    for status in TEST_STATUSES {
        cases.push((pairs(&[("status", status)]), Box::new(move |t| t.status.as_str() == status)));
    }
    for kind in TESTING_TYPES {
        cases.push((pairs(&[("testing_type", kind)]), Box::new(move |t| t.testing_type.as_deref() == Some(kind))));
    }
    // Ranges: both ends inclusive (the bounds are values of the data), a missing timestamp never matches.
    let ranges: [(&str, Option<i64>, Option<i64>); 8] = [
        ("start", Some(2), None),
        ("start", None, Some(2)),
        ("start", Some(2), Some(2)),
        ("start", Some(1), Some(9)),
        ("end", Some(3), None),
        ("end", None, Some(3)),
        ("end", Some(3), Some(3)),
        ("end", Some(5), Some(11)),
    ];
    for (field, from, to) in ranges {
        let mut p = Vec::new();
        if let Some(from) = from {
            p.push((format!("{field}_from"), rfc3339(h(from))));
        }
        if let Some(to) = to {
            p.push((format!("{field}_to"), rfc3339(h(to))));
        }
        let (from, to) = (from.map(h), to.map(h));
        let keep: TestPredicate = if field == "start" {
            Box::new(move |t| within(t.start_at, from, to))
        } else {
            Box::new(move |t| within(t.end_at, from, to))
        };
        cases.push((p, keep));
    }
    // A range given with an offset other than Z is the same instant.
    cases.push((
        pairs(&[("end_from", "2026-10-04T02:00:00+02:00"), ("end_to", "2026-10-03T19:00:00-05:00")]),
        Box::new(|t| within(t.end_at, Some(h(3)), Some(h(3)))),
    ));
    // Text: title, goal and instructions; case-insensitive; LIKE and regex characters literal; trimmed.
    for q in [
        "needle",
        "NEEDLE",
        " needle ",
        "checkout flow",
        "payment",
        "visa",
        "%",
        "100%",
        "%d",
        "_",
        "under_score",
        "\\",
        "C:\\temp",
        ".*",
        "(x|y)",
        "^$",
        "[a-z]+",
        "zzz_nothing",
        "Zeta",
    ] {
        cases.push((pairs(&[("q", q)]), Box::new(move |t| test_matches(q, t))));
    }
    let combos: Vec<(Vec<(String, String)>, TestPredicate)> = vec![
        (
            pairs(&[("product_id", "101"), ("status", "archived,running")]),
            Box::new(|t| t.product_id == 101 && ["archived", "running"].contains(&t.status.as_str())),
        ),
        (
            pairs(&[("product_id", "102"), ("testing_type", "rapid")]),
            Box::new(|t| t.product_id == 102 && t.testing_type.as_deref() == Some("rapid")),
        ),
        (
            vec![
                ("status".into(), "archived".into()),
                ("end_from".into(), rfc3339(h(5))),
                ("end_to".into(), rfc3339(h(11))),
            ],
            Box::new(|t| t.status.as_str() == "archived" && within(t.end_at, Some(h(5)), Some(h(11)))),
        ),
        (
            pairs(&[("q", "checkout"), ("status", "running")]),
            Box::new(|t| test_matches("checkout", t) && t.status.as_str() == "running"),
        ),
        (
            vec![
                ("product_id".into(), "101,103".into()),
                ("start_from".into(), rfc3339(h(1))),
                ("start_to".into(), rfc3339(h(10))),
                ("testing_type".into(), "coverage,custom".into()),
                ("testing_type".into(), "external,usability".into()),
            ],
            Box::new(|t| {
                [101, 103].contains(&t.product_id)
                    && within(t.start_at, Some(h(1)), Some(h(10)))
                    && matches!(t.testing_type.as_deref(), Some("coverage" | "custom" | "external" | "usability"))
            }),
        ),
        (
            pairs(&[("q", "needle"), ("product_id", "103"), ("status", "cancelled")]),
            Box::new(|t| test_matches("needle", t) && t.product_id == 103 && t.status.as_str() == "cancelled"),
        ),
        (
            vec![("end_to".into(), rfc3339(h(12))), ("start_from".into(), rfc3339(h(1)))],
            Box::new(|t| within(t.end_at, None, Some(h(12))) && within(t.start_at, Some(h(1)), None)),
        ),
        (
            vec![
                ("q".into(), "%".into()),
                ("product_id".into(), "101".into()),
                ("product_id".into(), "102".into()),
                ("end_from".into(), rfc3339(h(3))),
            ],
            Box::new(|t| {
                test_matches("%", t) && [101, 102].contains(&t.product_id) && within(t.end_at, Some(h(3)), None)
            }),
        ),
    ];
    cases.extend(combos);
    cases
}

/// The bug filters: each alone, the repeated and comma forms, and combinations.
fn bug_cases(data: &KnownData) -> Vec<(Vec<(String, String)>, BugPredicate)> {
    let product_of: HashMap<i64, i64> = data.tests.iter().map(|t| (t.testio_id, t.product_id)).collect();
    let product = move |b: &BugRow| product_of[&b.test_id];
    let p1 = product.clone();
    let p2 = product.clone();
    let p3 = product.clone();
    let status_in = |statuses: &'static [&'static str]| {
        move |b: &BugRow| {
            b.status.as_deref().is_some_and(|s| statuses.contains(&s))
                || (statuses.contains(&"auto_accepted") && b.auto_accepted == Some(true))
        }
    };
    let mut cases: Vec<(Vec<(String, String)>, BugPredicate)> = vec![
        (vec![], Box::new(|_| true)),
        (pairs(&[("test_id", "1001")]), Box::new(|b| b.test_id == 1001)),
        (
            pairs(&[("test_id", "1001,1002"), ("test_id", "1003")]),
            Box::new(|b| [1001, 1002, 1003].contains(&b.test_id)),
        ),
        (pairs(&[("test_id", "1016")]), Box::new(|_| false)),
        (pairs(&[("product_id", "101")]), Box::new(move |b| p1(b) == 101)),
        (pairs(&[("product_id", "102,103")]), Box::new(move |b| [102, 103].contains(&p2(b)))),
        (
            pairs(&[("severity", "low,critical")]),
            Box::new(|b| matches!(b.severity.as_deref(), Some("low" | "critical"))),
        ),
        (pairs(&[("status", "auto_accepted")]), Box::new(status_in(&["auto_accepted"]))),
        (pairs(&[("status", "rejected,auto_accepted")]), Box::new(status_in(&["rejected", "auto_accepted"]))),
        (pairs(&[("status", "forwarded"), ("status", "accepted")]), Box::new(status_in(&["forwarded", "accepted"]))),
        (pairs(&[("known", "true")]), Box::new(|b| b.known == Some(true))),
        (pairs(&[("known", "false")]), Box::new(|b| b.known == Some(false))),
    ];
    for severity in BUG_SEVERITIES {
        cases.push((pairs(&[("severity", severity)]), Box::new(move |b| b.severity.as_deref() == Some(severity))));
    }
    for status in BUG_STATUSES {
        cases.push((pairs(&[("status", status)]), Box::new(move |b| b.status.as_deref() == Some(status))));
    }
    let ranges: [(Option<i64>, Option<i64>); 4] =
        [(Some(105), None), (None, Some(105)), (Some(105), Some(105)), (Some(101), Some(110))];
    for (from, to) in ranges {
        let mut p = Vec::new();
        if let Some(from) = from {
            p.push(("reported_from".to_owned(), rfc3339(at(from))));
        }
        if let Some(to) = to {
            p.push(("reported_to".to_owned(), rfc3339(at(to))));
        }
        let (from, to) = (from.map(at), to.map(at));
        cases.push((p, Box::new(move |b| within(b.reported_at, from, to))));
    }
    for q in ["needle", "crash on save", "CRASH", "%", "100%", "_", "\\", "(a|b)*", "zzz", "off_sale"] {
        cases.push((pairs(&[("q", q)]), Box::new(move |b| bug_matches(q, b))));
    }
    let combos: Vec<(Vec<(String, String)>, BugPredicate)> = vec![
        (
            pairs(&[("product_id", "101"), ("severity", "high,low"), ("status", "forwarded,accepted")]),
            Box::new(move |b| {
                p3(b) == 101
                    && matches!(b.severity.as_deref(), Some("high" | "low"))
                    && matches!(b.status.as_deref(), Some("forwarded" | "accepted"))
            }),
        ),
        (
            pairs(&[("known", "false"), ("status", "auto_accepted")]),
            Box::new(|b| b.known == Some(false) && b.auto_accepted == Some(true)),
        ),
        (
            vec![
                ("test_id".into(), "1001,1008,1015".into()),
                ("reported_from".into(), rfc3339(at(101))),
                ("reported_to".into(), rfc3339(at(115))),
            ],
            Box::new(|b| {
                [1001, 1008, 1015].contains(&b.test_id) && within(b.reported_at, Some(at(101)), Some(at(115)))
            }),
        ),
        (
            pairs(&[("q", "crash"), ("severity", "low,high,critical"), ("known", "true")]),
            Box::new(|b| {
                bug_matches("crash", b)
                    && matches!(b.severity.as_deref(), Some("low" | "high" | "critical"))
                    && b.known == Some(true)
            }),
        ),
        (
            pairs(&[("status", "accepted,auto_accepted"), ("product_id", "102"), ("q", "%")]),
            Box::new(move |b| status_in(&["accepted", "auto_accepted"])(b) && product(b) == 102 && bug_matches("%", b)),
        ),
    ];
    cases.extend(combos);
    cases
}

/// GETs every `(path, expected ids)` (a few at a time) and fails with every difference, not just the first.
async fn check_lists(f: &MirrorFixture, checks: Vec<(String, Vec<i64>)>) {
    let total = checks.len();
    let results: Vec<Option<String>> = futures_util::stream::iter(checks)
        .map(|(path, expected)| async move {
            match try_get(&f.app, &f.owner, f.main, &path).await {
                Err(e) => Some(format!("GET {path}: {e}")),
                Ok(page) if page["items"].is_array() && ids(&page) == expected => None,
                Ok(page) => Some(format!(
                    "GET {path}\n    expected {expected:?}\n    got      {:?}",
                    page["items"].as_array().map(|items| items.iter().map(|i| i["id"].clone()).collect::<Vec<_>>())
                )),
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let failures: Vec<String> = results.into_iter().flatten().collect();
    assert!(failures.is_empty(), "{} of {total} lists are wrong:\n{}", failures.len(), failures.join("\n"));
}

/// Each path's `total` is exact and equal to the expected size.
async fn check_totals(f: &MirrorFixture, checks: Vec<(String, usize)>) {
    let total = checks.len();
    let results: Vec<Option<String>> = futures_util::stream::iter(checks)
        .map(|(path, expected)| async move {
            match try_get(&f.app, &f.owner, f.main, &path).await {
                Err(e) => Some(format!("GET {path}: {e}")),
                Ok(page) if (&page["total"], &page["total_exact"]) == (&json!(expected), &json!(true)) => None,
                Ok(page) => Some(format!(
                    "GET {path}: total {} (exact {}), expected {expected}",
                    page["total"], page["total_exact"]
                )),
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let failures: Vec<String> = results.into_iter().flatten().collect();
    assert!(failures.is_empty(), "{} of {total} totals are wrong:\n{}", failures.len(), failures.join("\n"));
}

fn with(pairs: &[(String, String)], extra: &[(&str, &str)]) -> String {
    let mut all: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    all.extend_from_slice(extra);
    query("", &all).trim_start_matches('?').to_owned()
}

async fn every_test_filter_alone_and_combined_under_every_sort(f: &MirrorFixture, c: &Collation) {
    let mut checks = Vec::new();
    let mut totals = Vec::new();
    for (i, (params, keep)) in test_cases().into_iter().enumerate() {
        // The default sort is -end_at.
        checks.push((
            format!("tests?{}", with(&params, &[("limit", "200")])),
            expected_tests(&f.data, c, "-end_at", &keep),
        ));
        // Its total (from the counters when they cover the filter, else counted row by row).
        let size = expected_tests(&f.data, c, "-end_at", &keep).len();
        totals.push((format!("tests?{}", with(&params, &[("page", "1"), ("per_page", "1")])), size));
        // No filter and combinations under every sort; a single filter under one more (each sort in turn).
        let sorts = if params.len() == 1 { vec![TEST_SORTS[i % TEST_SORTS.len()]] } else { TEST_SORTS.to_vec() };
        for sort in sorts {
            let path = format!("tests?{}", with(&params, &[("sort", sort), ("limit", "200")]));
            checks.push((path, expected_tests(&f.data, c, sort, &keep)));
        }
    }
    check_lists(f, checks).await;
    check_totals(f, totals).await;
}

async fn every_bug_filter_alone_and_combined_under_every_sort(f: &MirrorFixture, c: &Collation) {
    let mut checks = Vec::new();
    let mut totals = Vec::new();
    for (i, (params, keep)) in bug_cases(&f.data).into_iter().enumerate() {
        // The default sort is -reported_at.
        checks.push((
            format!("bugs?{}", with(&params, &[("limit", "200")])),
            expected_bugs(&f.data, c, "-reported_at", &keep),
        ));
        // Its total (from the counters when they cover the filter, else counted row by row).
        let size = expected_bugs(&f.data, c, "-reported_at", &keep).len();
        totals.push((format!("bugs?{}", with(&params, &[("page", "1"), ("per_page", "1")])), size));
        // No filter and combinations under every sort; a single filter under one more (each sort in turn).
        let sorts = if params.len() == 1 { vec![BUG_SORTS[i % BUG_SORTS.len()]] } else { BUG_SORTS.to_vec() };
        for sort in sorts {
            let path = format!("bugs?{}", with(&params, &[("sort", sort), ("limit", "200")]));
            checks.push((path, expected_bugs(&f.data, c, sort, &keep)));
        }
    }
    check_lists(f, checks).await;
    check_totals(f, totals).await;
}

async fn products_sort_by_name_by_default_and_by_every_sort(f: &MirrorFixture, c: &Collation) {
    let mut checks = vec![("products".to_owned(), expected_products(&f.data, c, "name"))];
    for sort in PRODUCT_SORTS {
        checks.push((format!("products?sort={sort}"), expected_products(&f.data, c, sort)));
    }
    check_lists(f, checks).await;
    // The other tenant's list is its own, although the TestIO ids overlap.
    let other = f.ok_on(f.other, "products?sort=id").await;
    assert_eq!(ids(&other), [101, 201]);
    assert_eq!(other["items"][0]["name"], "Other tenant's shop");
}

/// A keyset walk: the list, its parameters, the limit, the ids expected in order.
type Walk = (String, Vec<(String, String)>, usize, Vec<i64>);

/// An offset-paged list: the list, its parameters, the ids expected in order.
type OffsetCase<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<i64>);

/// Every list, sort and limit 1, 2, 3 walked to the end through `next_cursor`: exactly the expected order, nothing
/// twice, nothing left out; also with filters, which the cursor must keep.
async fn keyset_paging_walks_every_sort_without_gaps_or_duplicates(f: &MirrorFixture, c: &Collation) {
    let mut walks: Vec<Walk> = Vec::new();
    for limit in [1, 2, 3] {
        for sort in TEST_SORTS {
            walks.push(("tests".into(), pairs(&[("sort", sort)]), limit, expected_tests(&f.data, c, sort, &|_| true)));
        }
        for sort in BUG_SORTS {
            walks.push(("bugs".into(), pairs(&[("sort", sort)]), limit, expected_bugs(&f.data, c, sort, &|_| true)));
        }
        for sort in PRODUCT_SORTS {
            walks.push(("products".into(), pairs(&[("sort", sort)]), limit, expected_products(&f.data, c, sort)));
        }
    }
    walks.push(("tests".into(), vec![], 2, expected_tests(&f.data, c, "-end_at", &|_| true)));
    walks.push(("bugs".into(), vec![], 3, expected_bugs(&f.data, c, "-reported_at", &|_| true)));
    walks.push(("products".into(), vec![], 1, expected_products(&f.data, c, "name")));
    for sort in TEST_SORTS {
        let open = ["initialized", "customer_finalized", "waiting", "running", "locked", "cancelled"];
        let keep = |t: &TestRow| [101, 102].contains(&t.product_id) && open.contains(&t.status.as_str());
        let params = pairs(&[
            ("product_id", "101,102"),
            ("status", "initialized,customer_finalized,waiting,running,locked,cancelled"),
            ("sort", sort),
        ]);
        walks.push(("tests".into(), params, 2, expected_tests(&f.data, c, sort, &keep)));
    }
    for sort in BUG_SORTS {
        let params = vec![("known".to_owned(), "true".to_owned()), ("sort".to_owned(), sort.to_owned())];
        walks.push(("bugs".into(), params, 2, expected_bugs(&f.data, c, sort, &|b| b.known == Some(true))));
    }
    let total = walks.len();
    let failures: Vec<String> = futures_util::stream::iter(walks)
        .map(|(list, params, limit, expected)| async move {
            let borrowed: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let what = format!("{list}?{} at limit {limit}", with(&params, &[]));
            match walk_keyset(&f.app, &f.owner, f.main, &list, &borrowed, limit).await {
                Err(e) => Some(format!("{what}: {e}")),
                Ok(items) => {
                    let got: Vec<i64> = items.iter().map(|i| i["id"].as_i64().unwrap_or(-1)).collect();
                    (got != expected).then(|| format!("{what}\n    expected {expected:?}\n    got      {got:?}"))
                }
            }
        })
        .buffer_unordered(4)
        .filter_map(|r| async move { r })
        .collect()
        .await;
    assert!(failures.is_empty(), "{} of {total} walks are wrong:\n{}", failures.len(), failures.join("\n"));
}

async fn a_keyset_page_has_the_documented_shape(f: &MirrorFixture) {
    // Default limit 50: everything on one page, no cursor.
    let all = f.ok("tests").await;
    assert_eq!(ids(&all).len(), f.data.tests.len());
    assert!(all.get("next_cursor").is_some(), "next_cursor is part of every keyset page: {all}");
    assert!(all["next_cursor"].is_null(), "{all}");
    for absent in ["page", "per_page", "total", "total_exact"] {
        assert!(all.get(absent).is_none_or(Value::is_null), "{absent} in a keyset page: {all}");
    }
    // Exactly `limit` rows left: the last page says so (no cursor to an empty page).
    let first = f.ok(&format!("tests?limit={}", f.data.tests.len() - 1)).await;
    let cursor = first["next_cursor"].as_str().expect("a next_cursor when rows remain").to_owned();
    let last = f.ok(&query("tests", &[("limit", "1"), ("cursor", &cursor)])).await;
    assert_eq!(ids(&last).len(), 1);
    assert!(last["next_cursor"].is_null(), "{last}");
    let exact = f.ok(&format!("tests?limit={}", f.data.tests.len())).await;
    assert!(exact["next_cursor"].is_null(), "a full last page has no cursor: {exact}");
    let bugs = f.ok("bugs?limit=200").await;
    assert_eq!(ids(&bugs).len(), f.data.bugs.len());
    let products = f.ok("products?limit=200").await;
    assert_eq!(ids(&products).len(), f.data.products.len());
}

async fn offset_paging_counts_the_list_exactly_and_pages_it_in_order(f: &MirrorFixture, c: &Collation) {
    let cases: Vec<OffsetCase> = vec![
        ("tests", vec![], expected_tests(&f.data, c, "-end_at", &|_| true)),
        ("tests", vec![("sort", "title")], expected_tests(&f.data, c, "title", &|_| true)),
        (
            "tests",
            vec![("sort", "-start_at"), ("product_id", "101,102")],
            expected_tests(&f.data, c, "-start_at", &|t| t.product_id != 103),
        ),
        ("bugs", vec![("sort", "severity")], expected_bugs(&f.data, c, "severity", &|_| true)),
        ("bugs", vec![("known", "false")], expected_bugs(&f.data, c, "-reported_at", &|b| b.known == Some(false))),
        ("products", vec![("sort", "-id")], expected_products(&f.data, c, "-id")),
    ];
    let mut failures = Vec::new();
    for (list, params, expected) in cases {
        for per_page in [1usize, 3, 5, 50] {
            let pages = expected.len().div_ceil(per_page).max(1);
            let mut got = Vec::new();
            // One page past the end: empty, with the same total.
            for page in 1..=pages + 1 {
                let (page_text, per_page_text) = (page.to_string(), per_page.to_string());
                let mut all = params.clone();
                all.extend([("page", page_text.as_str()), ("per_page", per_page_text.as_str())]);
                let path = query(list, &all);
                let body = match try_get(&f.app, &f.owner, f.main, &path).await {
                    Ok(body) => body,
                    Err(e) => {
                        failures.push(format!("GET {path}: {e}"));
                        break;
                    }
                };
                let shape = (&body["page"], &body["per_page"], &body["total"], &body["total_exact"]);
                if shape != (&json!(page), &json!(per_page), &json!(expected.len()), &json!(true)) {
                    failures.push(format!("GET {path}: page, per_page, total, total_exact are {shape:?}"));
                }
                if body["next_cursor"].as_str().is_some() {
                    failures.push(format!("GET {path}: a next_cursor in page mode: {}", body["next_cursor"]));
                }
                got.extend(ids(&body));
            }
            if got != expected {
                failures.push(format!(
                    "{list}?{params:?} per_page {per_page}\n    expected {expected:?}\n    got      {got:?}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // per_page defaults to 50.
    let page = f.ok("bugs?page=1").await;
    assert_eq!(page["per_page"], 50, "{page}");
    assert_eq!(ids(&page).len(), f.data.bugs.len());
}

/// A test as the API must show it.
#[track_caller]
fn assert_test_view(view: &Value, t: &TestRow, raw: bool) {
    let id = t.testio_id;
    assert_eq!(view["id"], id, "{view}");
    assert_eq!(view["product_id"], t.product_id, "test {id}: {view}");
    assert_eq!(view["title"], t.title.as_str(), "test {id}: {view}");
    let status = t.status.as_str();
    if TEST_STATUSES.contains(&status) {
        assert_eq!(view["status"], status, "test {id}: {view}");
        assert!(view.get("status_raw").is_none_or(Value::is_null), "test {id}: status_raw for a known status: {view}");
    } else {
        assert_eq!((&view["status"], &view["status_raw"]), (&json!("other"), &json!(status)), "test {id}: {view}");
    }
    match t.testing_type.as_deref() {
        None => assert!(view["testing_type"].is_null(), "test {id}: {view}"),
        Some(kind) if TESTING_TYPES.contains(&kind) => {
            assert_eq!(view["testing_type"], kind, "test {id}: {view}");
            assert!(view.get("testing_type_raw").is_none_or(Value::is_null), "test {id}: {view}");
        }
        Some(kind) => assert_eq!(
            (&view["testing_type"], &view["testing_type_raw"]),
            (&json!("other"), &json!(kind)),
            "test {id}: {view}"
        ),
    }
    assert_eq!(view["review_status"], json!(t.review_status), "test {id}: {view}");
    assert_eq!(time(&view["start_at"]), t.start_at, "test {id}: start_at in {view}");
    assert_eq!(time(&view["end_at"]), t.end_at, "test {id}: end_at in {view}");
    assert!(time(&view["first_synced_at"]).is_some() && time(&view["changed_at"]).is_some(), "test {id}: {view}");
    if raw {
        assert_eq!(view["raw"], t.raw, "test {id}: raw");
    } else {
        assert!(view.get("raw").is_none(), "test {id}: raw without include=raw: {view}");
    }
}

/// A bug as the API must show it.
#[track_caller]
fn assert_bug_view(view: &Value, b: &BugRow, product_id: i64, raw: bool) {
    let id = b.testio_id;
    assert_eq!(view["id"], id, "{view}");
    assert_eq!((&view["test_id"], &view["product_id"]), (&json!(b.test_id), &json!(product_id)), "bug {id}: {view}");
    assert_eq!(view["title"], b.title.as_str(), "bug {id}: {view}");
    for (field, word, known) in
        [("severity", &b.severity, &BUG_SEVERITIES[..]), ("status", &b.status, &BUG_STATUSES[..])]
    {
        let raw_field = format!("{field}_raw");
        match word.as_deref() {
            None => assert!(view[field].is_null(), "bug {id}: {field} in {view}"),
            Some(w) if known.contains(&w) => {
                assert_eq!(view[field], w, "bug {id}: {view}");
                assert!(view.get(&raw_field).is_none_or(Value::is_null), "bug {id}: {raw_field} in {view}");
            }
            Some(w) => {
                assert_eq!((&view[field], &view[&raw_field]), (&json!("other"), &json!(w)), "bug {id}: {view}")
            }
        }
    }
    assert_eq!(view["known"], json!(b.known), "bug {id}: {view}");
    assert_eq!(view["auto_accepted"], json!(b.auto_accepted), "bug {id}: {view}");
    assert_eq!(time(&view["reported_at"]), b.reported_at, "bug {id}: {view}");
    assert!(time(&view["first_synced_at"]).is_some() && time(&view["changed_at"]).is_some(), "bug {id}: {view}");
    if raw {
        assert_eq!(view["raw"], b.raw, "bug {id}: raw");
    } else {
        assert!(view.get("raw").is_none(), "bug {id}: raw without include=raw: {view}");
    }
}

async fn items_show_every_field_and_raw_only_when_asked(f: &MirrorFixture) {
    for include_raw in [false, true] {
        let suffix = if include_raw { "&include=raw" } else { "" };
        let tests = f.ok(&format!("tests?limit=200{suffix}")).await;
        for view in tests["items"].as_array().unwrap() {
            assert_test_view(view, f.data.test(view["id"].as_i64().unwrap()), include_raw);
        }
        let bugs = f.ok(&format!("bugs?limit=200{suffix}")).await;
        for view in bugs["items"].as_array().unwrap() {
            let bug = f.data.bug(view["id"].as_i64().unwrap());
            assert_bug_view(view, bug, f.data.product_of_bug(bug), include_raw);
        }
        let products = f.ok(&format!("products?limit=200{suffix}")).await;
        for view in products["items"].as_array().unwrap() {
            let p = f.data.products.iter().find(|p| view["id"] == p.testio_id).unwrap();
            assert_eq!((&view["name"], &view["product_type"]), (&json!(p.name), &json!(p.product_type)), "{view}");
            assert_eq!(view["tests_total"], f.data.tests_of(p.testio_id).len(), "{view}");
            assert_eq!(view["bugs_total"], f.data.bugs_of_product(p.testio_id).len(), "{view}");
            if include_raw {
                assert_eq!(view["raw"], p.raw);
            } else {
                assert!(view.get("raw").is_none(), "raw without include=raw: {view}");
            }
        }
        // The detail routes too.
        let test = f.ok(&format!("tests/1001?{}", suffix.trim_start_matches('&'))).await;
        assert_test_view(&test, f.data.test(1001), include_raw);
        let bug = f.ok(&format!("bugs/5009?{}", suffix.trim_start_matches('&'))).await;
        assert_bug_view(&bug, f.data.bug(5009), f.data.product_of_bug(f.data.bug(5009)), include_raw);
        let product = f.ok(&format!("products/103?{}", suffix.trim_start_matches('&'))).await;
        assert_eq!(product.get("raw").is_some(), include_raw, "{product}");
    }
}

async fn detail_counts_equal_the_counts_of_the_known_data(f: &MirrorFixture) {
    for p in &f.data.products {
        let view = f.ok(&format!("products/{}", p.testio_id)).await;
        assert_eq!((&view["id"], &view["name"]), (&json!(p.testio_id), &json!(p.name)), "{view}");
        let tests = f.data.tests_of(p.testio_id);
        let bugs = f.data.bugs_of_product(p.testio_id);
        let expected = KnownData::summary(tests.iter().copied(), bugs.iter().copied());
        expected.assert_matches(&view, &format!("product {}", p.testio_id));
    }
    for t in &f.data.tests {
        let view = f.ok(&format!("tests/{}", t.testio_id)).await;
        assert_test_view(&view, t, false);
        let bugs: Vec<&BugRow> = f.data.bugs.iter().filter(|b| b.test_id == t.testio_id).collect();
        let expected = KnownData::summary([], bugs.iter().copied());
        let summary = &view["bugs"];
        expected.assert_bugs(
            &summary["total"],
            &summary["by_severity"],
            &summary["by_status"],
            &summary["auto_accepted"],
            &summary["acceptance_rate"],
            &format!("test {}", t.testio_id),
        );
    }
    for b in &f.data.bugs {
        let view = f.ok(&format!("bugs/{}", b.testio_id)).await;
        assert_bug_view(&view, b, f.data.product_of_bug(b), false);
    }
}

async fn unknown_ids_and_the_other_tenants_ids_are_404(f: &MirrorFixture) {
    for path in ["products/999", "tests/999999", "bugs/999999", "products/201", "tests/2001", "bugs/6001"] {
        let response = f.app.get_mirror(&f.owner, f.main, path).await;
        assert_eq!(response.status(), 404, "GET {path}");
        assert_eq!(response.headers()["content-type"], "application/problem+json", "GET {path}");
        assert_eq!(response.json::<Value>().await.unwrap()["code"], "not_found", "GET {path}");
    }
    // The same TestIO ids in both tenants: each sees its own row.
    let mine = f.ok("tests/1001").await;
    let theirs = f.ok_on(f.other, "tests/1001").await;
    assert_eq!(
        (mine["title"].as_str(), theirs["title"].as_str()),
        (Some("Checkout flow"), Some("Other tenant's checkout"))
    );
    assert_eq!(f.ok_on(f.other, "bugs/5000").await["title"], "Other tenant's bug");
    assert_eq!(f.ok_on(f.other, "products/101").await["tests_total"], 1);
    let their_tests = f.ok_on(f.other, "tests?q=needle").await;
    assert_eq!(ids(&their_tests), [1002], "search stays in the tenant");
    let my_needles = f.ok("tests?q=needle&sort=title").await;
    assert_eq!(ids(&my_needles), [1015, 1016], "search stays in the tenant");
    let their_bugs = f.ok_on(f.other, "bugs?sort=title").await;
    assert_eq!(ids(&their_bugs), [6001, 5000, 5001]);
}

// The entry points: one seeded app each (spawning one is most of a small test's cost).

#[tokio::test]
async fn filters_and_sorts_of_every_list() {
    let f = MirrorFixture::seeded().await;
    let c = Collation::of(&f).await;
    every_test_filter_alone_and_combined_under_every_sort(&f, &c).await;
    every_bug_filter_alone_and_combined_under_every_sort(&f, &c).await;
    products_sort_by_name_by_default_and_by_every_sort(&f, &c).await;
}

#[tokio::test]
async fn keyset_paging() {
    let f = MirrorFixture::seeded().await;
    let c = Collation::of(&f).await;
    a_keyset_page_has_the_documented_shape(&f).await;
    keyset_paging_walks_every_sort_without_gaps_or_duplicates(&f, &c).await;
}

#[tokio::test]
async fn offset_paging_items_details_and_404s() {
    let f = MirrorFixture::seeded().await;
    let c = Collation::of(&f).await;
    offset_paging_counts_the_list_exactly_and_pages_it_in_order(&f, &c).await;
    items_show_every_field_and_raw_only_when_asked(&f).await;
    detail_counts_equal_the_counts_of_the_known_data(&f).await;
    unknown_ids_and_the_other_tenants_ids_are_404(&f).await;
}

/// Every route of the query API.
fn routes() -> [&'static str; 7] {
    ["products", "products/101", "tests", "tests/1001", "bugs", "bugs/5001", "stats"]
}

#[tokio::test]
async fn every_role_and_a_tenant_api_key_may_read_others_may_not() {
    let f = MirrorFixture::seeded().await;
    let app = &f.app;
    let mut readers = vec![f.owner.access_token.clone()];
    for (email, role) in
        [("admin@example.com", "admin"), ("member@example.com", "member"), ("viewer@example.com", "viewer")]
    {
        readers.push(app.add_member(&f.owner, f.main, email, role).await.access_token);
    }
    let key = app.create_api_key(&f.owner, f.main, "reader", "viewer").await;
    readers.push(key["secret"].as_str().unwrap().to_owned());
    let stranger = app.register("stranger@example.com").await;
    let elsewhere = app.create_tenant(&stranger, "elsewhere").await;
    let their_key = app.create_api_key(&stranger, elsewhere, "k", "owner").await;
    let their_key = their_key["secret"].as_str().unwrap().to_owned();
    let other_tenant_key = app.create_api_key(&f.owner, f.other, "other", "owner").await;
    let other_tenant_key = other_tenant_key["secret"].as_str().unwrap().to_owned();
    for path in routes() {
        for (i, reader) in readers.iter().enumerate() {
            let response = app.get_mirror(reader.as_str(), f.main, path).await;
            assert_eq!(response.status(), 200, "reader #{i}: GET {path}");
        }
        for outsider in [&stranger.access_token, &their_key, &other_tenant_key] {
            let response = app.get_mirror(outsider.as_str(), f.main, path).await;
            assert_eq!(response.status(), 404, "an outsider: GET {path}");
            assert_eq!(response.json::<Value>().await.unwrap()["code"], "not_found", "GET {path}");
        }
        let anonymous = app.get_mirror(&Anonymous, f.main, path).await;
        assert_eq!(anonymous.status(), 401, "no credentials: GET {path}");
        assert!(anonymous.headers().contains_key("www-authenticate"), "GET {path}");
    }
    // The stranger's own tenant is empty.
    let theirs = try_get(app, &stranger, elsewhere, "tests").await.unwrap();
    assert_eq!(ids(&theirs), Vec::<i64>::new());
}

#[tokio::test]
async fn the_new_routes_are_documented_under_the_mirror_tag() {
    let spec: Value = serde_json::from_str(&api::openapi::spec_json().unwrap()).unwrap();
    let paths = spec["paths"].as_object().unwrap();
    let mut found = Vec::new();
    for route in ["products", "products/{product_id}", "tests", "tests/{test_id}", "bugs", "bugs/{bug_id}", "stats"] {
        let template = format!("/v1/tenants/{{tenant_id}}/{route}");
        let operation = &paths.get(&template).unwrap_or_else(|| panic!("{template} is not in the spec"))["get"];
        assert_eq!(operation["tags"], json!(["mirror"]), "{template}");
        found.push(template);
    }
    assert_eq!(found.len(), 7);
    // Statuses and severities are enums with `other`.
    let schemas = &spec["components"]["schemas"];
    let text = schemas.to_string();
    for word in TEST_STATUSES.iter().chain(&BUG_SEVERITIES).chain(&BUG_STATUSES).chain(&["other"]) {
        assert!(text.contains(&format!("\"{word}\"")), "no enum value {word} in the schemas");
    }
}
