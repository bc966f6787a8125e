//! Known data for the query API's tests (issue 12): a small, deterministic mirror written through the sync's own write
//! path (`entity::mirror::upsert_*` in a [`TenantTxn`] as the runtime role, so the triggers keep the counters and the
//! foreign key fills `testio_bugs.product_id`), and a fixture with two tenants whose TestIO ids overlap.
//!
//! The data set covers every test status (and one TestIO word we do not know), every testing type (and none, and an
//! unknown one), missing `start_at`/`end_at`, equal `end_at` values, titles with `%`, `_`, `\`, regex characters and
//! mixed case, goals and instructions in `raw`; bugs of every severity and status (and unknown words, and none),
//! `auto_accepted` and `known` true/false/null, missing `reported_at` and equal ones. The tests compute what the API
//! must answer from these rows (see [`KnownData`]'s accessors).

use chrono::{DateTime, Duration, TimeZone, Utc};
use entity::mirror::{BugRow, ProductRow, TestRow};
use entity::{TenantId, TenantTxn};
use serde_json::{Value, json};
use testio::model::{TestStatus, Word};

use crate::app::{TestApp, TestUser, spawn_app};
use crate::database::TestDatabase;

/// Every test status the API knows, in the contract's order.
pub const TEST_STATUSES: [&str; 7] =
    ["initialized", "customer_finalized", "waiting", "running", "locked", "archived", "cancelled"];
/// Every testing type the API knows.
pub const TESTING_TYPES: [&str; 6] = ["coverage", "focused", "rapid", "usability", "custom", "external"];
/// Every bug severity the API knows.
pub const BUG_SEVERITIES: [&str; 6] = ["low", "high", "critical", "visual", "content", "custom"];
/// Every bug status the API knows (as stored; the filter also takes `auto_accepted`).
pub const BUG_STATUSES: [&str; 3] = ["forwarded", "accepted", "rejected"];

/// The instant the known data's timestamps are counted from: 2026-10-01T00:00:00Z.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).single().unwrap()
}

/// `t0 + hours`.
pub fn at(hours: i64) -> DateTime<Utc> {
    t0() + Duration::hours(hours)
}

/// RFC 3339 with a `Z`, as a query parameter takes it.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A tenant's mirror as the sync would write it.
#[derive(Debug, Clone, Default)]
pub struct KnownData {
    pub products: Vec<ProductRow>,
    pub tests: Vec<TestRow>,
    pub bugs: Vec<BugRow>,
}

fn product(id: i64, name: &str, product_type: Option<&str>) -> ProductRow {
    let raw = json!({ "id": id, "name": name, "type": product_type, "section": { "id": id * 10 } });
    ProductRow { testio_id: id, name: name.to_owned(), product_type: product_type.map(str::to_owned), raw }
}

/// A test; `raw` holds every field (so a changed field changes `raw`, which is what the upsert compares).
#[allow(clippy::too_many_arguments)]
pub fn test_row(
    id: i64,
    product_id: i64,
    title: &str,
    status: &str,
    testing_type: Option<&str>,
    start_at: Option<DateTime<Utc>>,
    end_at: Option<DateTime<Utc>>,
    goal: Option<&str>,
    instructions: Option<&str>,
) -> TestRow {
    let mut raw = json!({
        "id": id,
        "title": title,
        "status": status,
        "testing_type": testing_type,
        "product": { "id": product_id },
        "start_at": start_at.map(rfc3339),
        "end_at": end_at.map(rfc3339),
        "review_status": "review_successful",
    });
    if let Some(goal) = goal {
        raw["goal_text"] = json!(goal);
    }
    if let Some(instructions) = instructions {
        raw["instructions_text"] = json!(instructions);
    }
    TestRow {
        testio_id: id,
        product_id,
        title: title.to_owned(),
        status: Word::<TestStatus>::new(status),
        testing_type: testing_type.map(str::to_owned),
        review_status: Some("review_successful".to_owned()),
        start_at,
        end_at,
        raw,
    }
}

/// A bug; `raw` holds every field and the texts `q` searches besides the title.
#[allow(clippy::too_many_arguments)]
pub fn bug_row(
    id: i64,
    test_id: i64,
    title: &str,
    severity: Option<&str>,
    status: Option<&str>,
    auto_accepted: Option<bool>,
    known: Option<bool>,
    reported_at: Option<DateTime<Utc>>,
    expected: &str,
    actual: &str,
) -> BugRow {
    let raw = json!({
        "id": id,
        "title": title,
        "severity": severity,
        "status": status,
        "auto_accepted": auto_accepted,
        "known": known,
        "reported_at": reported_at.map(rfc3339),
        "expected_result": expected,
        "actual_result": actual,
        "test": { "id": test_id },
    });
    BugRow {
        testio_id: id,
        test_id,
        title: title.to_owned(),
        severity: severity.map(str::to_owned),
        status: status.map(str::to_owned),
        known,
        auto_accepted,
        reported_at,
        raw,
    }
}

/// Bug titles, cycled through (so that titles tie).
const BUG_TITLES: [&str; 7] = [
    "Crash on save",
    "crash ON SAVE twice",
    "100% CPU",
    "under_score field",
    "back\\slash in path",
    "Regex (a|b)* fails",
    "Typo in footer",
];

impl KnownData {
    /// The main tenant's mirror: 4 products (one without tests), 17 tests, 30 bugs.
    pub fn main() -> Self {
        let products = vec![
            product(101, "Web shop", Some("website")),
            product(102, "android app", Some("mobile_app_android")),
            product(103, "Zeta 100% _under_ \\ back", None),
            product(104, "Empty product", Some("website")),
        ];
        let h = |days: i64| Some(at(days * 24));
        let tests = vec![
            test_row(
                1001,
                101,
                "Checkout flow",
                "running",
                Some("coverage"),
                h(0),
                h(2),
                Some("Find payment bugs"),
                Some("Use the VISA card"),
            ),
            test_row(1002, 101, "checkout FLOW regression", "locked", Some("focused"), h(1), h(3), None, None),
            test_row(1003, 101, "Login 100% coverage", "waiting", Some("rapid"), h(2), h(3), Some("Log in"), None),
            test_row(1004, 101, "Search under_score", "initialized", Some("usability"), None, None, None, None),
            test_row(
                1005,
                101,
                "Back\\slash path C:\\temp",
                "customer_finalized",
                Some("custom"),
                h(4),
                h(6),
                None,
                Some("Open C:\\temp"),
            ),
            test_row(1006, 101, "Archived release", "archived", Some("external"), h(5), h(3), None, None),
            test_row(1007, 101, "Cancelled run", "cancelled", None, h(1), None, None, None),
            test_row(1008, 102, "Android smoke", "running", Some("coverage"), None, h(10), None, None),
            test_row(1009, 102, "ANDROID deep", "paused", Some("exotic"), h(7), h(10), None, None),
            test_row(1010, 102, "Regex .* [a-z]+ (x|y) ^$", "archived", Some("rapid"), h(8), h(9), None, None),
            test_row(1011, 102, "Percent %d format", "archived", Some("focused"), h(3), h(5), None, None),
            test_row(1012, 102, "plain lowercase title", "locked", None, h(6), h(12), None, None),
            test_row(1013, 103, "Zeta", "waiting", Some("usability"), None, None, None, None),
            test_row(1014, 103, "ümlaut Ünïcode", "running", Some("custom"), h(9), h(11), None, None),
            test_row(
                1015,
                103,
                "Goal only match",
                "archived",
                Some("coverage"),
                h(10),
                h(11),
                Some("Contains the NEEDLE phrase"),
                None,
            ),
            test_row(
                1016,
                103,
                "Instructions only",
                "cancelled",
                Some("external"),
                h(11),
                h(13),
                None,
                Some("a needle in the instructions, 50% off_sale \\path"),
            ),
            test_row(1017, 101, "Checkout flow", "archived", Some("coverage"), h(12), h(14), None, None),
        ];
        let severities = [
            Some("low"),
            Some("high"),
            Some("critical"),
            Some("visual"),
            Some("content"),
            Some("custom"),
            Some("blocker"),
            None,
        ];
        let statuses = [Some("forwarded"), Some("accepted"), Some("rejected"), Some("pending"), None];
        let tri = [Some(true), Some(false), None];
        // The first 15 tests get bugs (1016 and 1017 have none).
        let with_bugs: Vec<i64> = tests.iter().take(15).map(|t| t.testio_id).collect();
        let bugs = (0..30usize)
            .map(|i| {
                let reported = if i % 7 == 3 { None } else { Some(at(100 + (i / 2) as i64)) };
                let expected = if i % 10 == 4 { "Should show the NEEDLE" } else { "Works" };
                let actual = if i % 10 == 9 { "Shows 50% off_sale \\path" } else { "Broken" };
                bug_row(
                    5000 + i as i64,
                    with_bugs[(i * 7) % with_bugs.len()],
                    BUG_TITLES[i % BUG_TITLES.len()],
                    severities[i % severities.len()],
                    statuses[i % statuses.len()],
                    tri[i % 3],
                    tri[(i / 3) % 3],
                    reported,
                    expected,
                    actual,
                )
            })
            .collect();
        Self { products, tests, bugs }
    }

    /// The other tenant's mirror: the same TestIO ids as [`KnownData::main`] for some rows (with other content), and
    /// ids of its own (product 201, test 2001, bug 6001).
    pub fn other() -> Self {
        let products = vec![product(101, "Other tenant's shop", Some("website")), product(201, "Other only", None)];
        let tests = vec![
            test_row(
                1001,
                101,
                "Other tenant's checkout",
                "archived",
                Some("focused"),
                Some(at(0)),
                Some(at(1)),
                None,
                None,
            ),
            test_row(
                1002,
                201,
                "Other tenant needle",
                "running",
                Some("coverage"),
                Some(at(0)),
                Some(at(2)),
                Some("needle"),
                None,
            ),
            test_row(2001, 201, "Other only test", "running", None, None, None, None, None),
        ];
        let bugs = vec![
            bug_row(
                5000,
                1001,
                "Other tenant's bug",
                Some("low"),
                Some("accepted"),
                Some(true),
                Some(true),
                Some(at(1)),
                "needle",
                "x",
            ),
            bug_row(
                5001,
                1002,
                "Other tenant's second bug",
                Some("high"),
                Some("rejected"),
                None,
                None,
                None,
                "x",
                "y",
            ),
            bug_row(
                6001,
                2001,
                "Other only bug",
                Some("critical"),
                Some("forwarded"),
                Some(false),
                Some(false),
                None,
                "x",
                "y",
            ),
        ];
        Self { products, tests, bugs }
    }

    /// Writes the rows into `tenant`'s mirror with the sync's upserts, as the runtime role, in one transaction.
    pub async fn write(&self, db: &TestDatabase, tenant: uuid::Uuid) {
        let runtime = db.connect_runtime().await;
        let txn = TenantTxn::begin(&runtime, TenantId(tenant)).await.unwrap();
        entity::mirror::upsert_products(&txn, &self.products).await.unwrap();
        entity::mirror::upsert_tests(&txn, &self.tests).await.unwrap();
        entity::mirror::upsert_bugs(&txn, &self.bugs).await.unwrap();
        txn.commit().await.unwrap();
        runtime.close().await.unwrap();
    }

    pub fn test(&self, id: i64) -> &TestRow {
        self.tests.iter().find(|t| t.testio_id == id).unwrap_or_else(|| panic!("no test {id} in the known data"))
    }

    pub fn bug(&self, id: i64) -> &BugRow {
        self.bugs.iter().find(|b| b.testio_id == id).unwrap_or_else(|| panic!("no bug {id} in the known data"))
    }

    /// The product of a bug: its test's.
    pub fn product_of_bug(&self, bug: &BugRow) -> i64 {
        self.test(bug.test_id).product_id
    }

    /// The test ids of a product.
    pub fn tests_of(&self, product_id: i64) -> Vec<&TestRow> {
        self.tests.iter().filter(|t| t.product_id == product_id).collect()
    }

    /// The bugs of a product (through their tests).
    pub fn bugs_of_product(&self, product_id: i64) -> Vec<&BugRow> {
        self.bugs.iter().filter(|b| self.product_of_bug(b) == product_id).collect()
    }

    /// The counts the API must show for `tests` and `bugs` (a product's, a test's, or the whole tenant's).
    pub fn summary<'a>(
        tests: impl IntoIterator<Item = &'a TestRow>,
        bugs: impl IntoIterator<Item = &'a BugRow>,
    ) -> Summary {
        let mut s = Summary::default();
        for t in tests {
            s.tests_total += 1;
            *s.tests_by_status.entry(status_word(t.status.as_str(), &TEST_STATUSES)).or_default() += 1;
            let kind = match t.testing_type.as_deref() {
                None => "none".to_owned(),
                Some(word) => status_word(word, &TESTING_TYPES),
            };
            *s.tests_by_testing_type.entry(kind).or_default() += 1;
        }
        for b in bugs {
            s.bugs_total += 1;
            match b.severity.as_deref() {
                Some(severity) if BUG_SEVERITIES.contains(&severity) => {
                    *s.bugs_by_known_severity.entry(severity.to_owned()).or_default() += 1
                }
                Some(_) => s.bugs_other_severity += 1,
                None => {}
            }
            match b.status.as_deref() {
                Some(status) if BUG_STATUSES.contains(&status) => {
                    *s.bugs_by_known_status.entry(status.to_owned()).or_default() += 1
                }
                Some(_) => s.bugs_other_status += 1,
                None => {}
            }
            if b.auto_accepted == Some(true) {
                s.bugs_auto_accepted += 1;
            }
        }
        s
    }
}

/// `word` if it is one of `known`, else `other`.
fn status_word(word: &str, known: &[&str]) -> String {
    if known.contains(&word) { word.to_owned() } else { "other".to_owned() }
}

/// Counts the API must show (see the contract's `Summary`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub tests_total: i64,
    /// Every word counted, unknown ones under `other`.
    pub tests_by_status: std::collections::BTreeMap<String, i64>,
    /// Unknown types under `other`, none under `none`.
    pub tests_by_testing_type: std::collections::BTreeMap<String, i64>,
    pub bugs_total: i64,
    /// Known severities only (the contract does not say where a missing one is counted).
    pub bugs_by_known_severity: std::collections::BTreeMap<String, i64>,
    /// Known statuses only.
    pub bugs_by_known_status: std::collections::BTreeMap<String, i64>,
    /// Bugs with a severity TestIO sent that the API does not know (shown as `other`).
    pub bugs_other_severity: i64,
    /// Bugs with a status the API does not know (shown as `other`).
    pub bugs_other_status: i64,
    pub bugs_auto_accepted: i64,
}

impl Summary {
    /// accepted / (accepted + rejected), `None` when both are 0.
    pub fn acceptance_rate(&self) -> Option<f64> {
        let accepted = self.bugs_by_known_status.get("accepted").copied().unwrap_or(0);
        let rejected = self.bugs_by_known_status.get("rejected").copied().unwrap_or(0);
        (accepted + rejected > 0).then(|| accepted as f64 / (accepted + rejected) as f64)
    }

    /// Asserts that `view` (a JSON `Summary`, with the maps named `prefix`: `tests_by_status` or `by_status` ..)
    /// shows these counts. `what` names the view in failure messages.
    #[track_caller]
    pub fn assert_matches(&self, view: &Value, what: &str) {
        assert_eq!(view["tests_total"], self.tests_total, "{what}: tests_total in {view}");
        self.assert_tests_maps(&view["tests_by_status"], &view["tests_by_testing_type"], what);
        self.assert_bugs(
            &view["bugs_total"],
            &view["bugs_by_severity"],
            &view["bugs_by_status"],
            &view["bugs_auto_accepted"],
            &view["acceptance_rate"],
            what,
        );
    }

    #[track_caller]
    pub fn assert_tests_maps(&self, by_status: &Value, by_type: &Value, what: &str) {
        let by_status = by_status.as_object().unwrap_or_else(|| panic!("{what}: tests_by_status is {by_status}"));
        for status in TEST_STATUSES {
            let expected = self.tests_by_status.get(status).copied().unwrap_or(0);
            assert_eq!(by_status.get(status).and_then(Value::as_i64), Some(expected), "{what}: tests {status}");
        }
        let other = self.tests_by_status.get("other").copied().unwrap_or(0);
        assert_eq!(by_status.get("other").and_then(Value::as_i64).unwrap_or(0), other, "{what}: tests other");
        let sum: i64 = by_status.values().filter_map(Value::as_i64).sum();
        assert_eq!(sum, self.tests_total, "{what}: tests_by_status does not add up: {by_status:?}");
        let by_type = by_type.as_object().unwrap_or_else(|| panic!("{what}: tests_by_testing_type is {by_type}"));
        for kind in TESTING_TYPES.iter().copied().chain(["none", "other"]) {
            let expected = self.tests_by_testing_type.get(kind).copied().unwrap_or(0);
            assert_eq!(by_type.get(kind).and_then(Value::as_i64).unwrap_or(0), expected, "{what}: testing type {kind}");
        }
        let sum: i64 = by_type.values().filter_map(Value::as_i64).sum();
        assert_eq!(sum, self.tests_total, "{what}: tests_by_testing_type does not add up: {by_type:?}");
    }

    #[track_caller]
    pub fn assert_bugs(
        &self,
        total: &Value,
        by_severity: &Value,
        by_status: &Value,
        auto_accepted: &Value,
        acceptance_rate: &Value,
        what: &str,
    ) {
        assert_eq!(*total, self.bugs_total, "{what}: bugs total");
        let by_severity =
            by_severity.as_object().unwrap_or_else(|| panic!("{what}: bugs by severity is {by_severity}"));
        for severity in BUG_SEVERITIES {
            let expected = self.bugs_by_known_severity.get(severity).copied().unwrap_or(0);
            let got = by_severity.get(severity).and_then(Value::as_i64).unwrap_or(0);
            assert_eq!(got, expected, "{what}: bugs of severity {severity}: {by_severity:?}");
        }
        let by_status = by_status.as_object().unwrap_or_else(|| panic!("{what}: bugs by status is {by_status}"));
        for status in BUG_STATUSES {
            let expected = self.bugs_by_known_status.get(status).copied().unwrap_or(0);
            let got = by_status.get(status).and_then(Value::as_i64).unwrap_or(0);
            assert_eq!(got, expected, "{what}: bugs of status {status}: {by_status:?}");
        }
        // Unknown words are `other`; every bug is counted once in each map (where a missing word goes, the contract
        // does not say: the sums say it goes somewhere).
        let other = by_severity.get("other").and_then(Value::as_i64).unwrap_or(0);
        assert_eq!(other, self.bugs_other_severity, "{what}: bugs of an unknown severity: {by_severity:?}");
        let other = by_status.get("other").and_then(Value::as_i64).unwrap_or(0);
        assert_eq!(other, self.bugs_other_status, "{what}: bugs of an unknown status: {by_status:?}");
        for (name, map) in [("severity", by_severity), ("status", by_status)] {
            let sum: i64 = map.values().filter_map(Value::as_i64).sum();
            assert_eq!(sum, self.bugs_total, "{what}: bugs by {name} do not add up to the total: {map:?}");
        }
        assert_eq!(*auto_accepted, self.bugs_auto_accepted, "{what}: auto-accepted bugs");
        match (self.acceptance_rate(), acceptance_rate.as_f64()) {
            (None, _) => assert!(acceptance_rate.is_null(), "{what}: acceptance_rate {acceptance_rate}, expected null"),
            (Some(expected), Some(got)) => {
                assert!((expected - got).abs() < 1e-9, "{what}: acceptance_rate {got}, expected {expected}")
            }
            (Some(expected), None) => panic!("{what}: acceptance_rate {acceptance_rate}, expected {expected}"),
        }
    }
}

/// An app with two tenants owned by one user: `main` holding [`KnownData::main`], `other` holding
/// [`KnownData::other`] (TestIO ids overlap), and a member of every role plus a viewer API key on `main`.
pub struct MirrorFixture {
    pub app: TestApp,
    pub owner: TestUser,
    pub main: uuid::Uuid,
    pub other: uuid::Uuid,
    pub data: KnownData,
    pub other_data: KnownData,
}

impl MirrorFixture {
    pub async fn seeded() -> Self {
        let app = spawn_app().await;
        let owner = app.register("owner@example.com").await;
        let main = app.create_tenant(&owner, "main").await;
        let other = app.create_tenant(&owner, "other").await;
        let data = KnownData::main();
        let other_data = KnownData::other();
        data.write(&app.db, main).await;
        other_data.write(&app.db, other).await;
        Self { app, owner, main, other, data, other_data }
    }

    /// `GET .../{path_and_query}` of `main` as the owner; the status must be 200; returns the body.
    pub async fn ok(&self, path_and_query: &str) -> Value {
        self.ok_on(self.main, path_and_query).await
    }

    /// `GET .../{path_and_query}` of `tenant` as the owner; the status must be 200; returns the body.
    pub async fn ok_on(&self, tenant: uuid::Uuid, path_and_query: &str) -> Value {
        let response = self.app.get_mirror(&self.owner, tenant, path_and_query).await;
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, 200, "GET {path_and_query}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path_and_query}: {e}: {body}"))
    }
}

/// `GET .../{path_and_query}` of `tenant` as `who`: the body when the status is 200, else a description of the answer
/// (for tests that collect every difference before failing).
pub async fn try_get(
    app: &TestApp,
    who: &(impl crate::app::Bearer + ?Sized),
    tenant: uuid::Uuid,
    path_and_query: &str,
) -> Result<Value, String> {
    let response = app.get_mirror(who, tenant, path_and_query).await;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if status != 200 {
        return Err(format!("answered {status}: {body}"));
    }
    serde_json::from_str(&body).map_err(|e| format!("answered 200 with a body that is not JSON ({e}): {body}"))
}

/// Follows `next_cursor` from the first page of `list?pairs&limit=limit` to the last, sending the same parameters
/// with each cursor; returns every item in order. Checks each page's size and that only the last has no cursor.
pub async fn walk_keyset(
    app: &TestApp,
    who: &(impl crate::app::Bearer + ?Sized),
    tenant: uuid::Uuid,
    list: &str,
    pairs: &[(&str, &str)],
    limit: usize,
) -> Result<Vec<Value>, String> {
    let limit_text = limit.to_string();
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for page_number in 1.. {
        let mut all: Vec<(&str, &str)> = pairs.to_vec();
        all.push(("limit", &limit_text));
        if let Some(cursor) = &cursor {
            all.push(("cursor", cursor));
        }
        let path = query(list, &all);
        let page = try_get(app, who, tenant, &path).await.map_err(|e| format!("GET {path}: {e}"))?;
        let page_items = page["items"].as_array().ok_or_else(|| format!("GET {path}: no items in {page}"))?;
        if page_items.len() > limit {
            return Err(format!("GET {path}: {} items on a page of {limit}", page_items.len()));
        }
        items.extend(page_items.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => {
                if page_items.is_empty() {
                    return Err(format!("GET {path}: an empty page with a next_cursor"));
                }
                cursor = Some(next.to_owned());
            }
            None => break,
        }
        if page_number > 10_000 {
            return Err(format!("GET {path}: the cursor never ends"));
        }
    }
    Ok(items)
}

/// `list?pairs` with the pairs form-encoded (what a client library sends).
pub fn query(list: &str, pairs: &[(&str, &str)]) -> String {
    let encoded = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
    if encoded.is_empty() { list.to_owned() } else { format!("{list}?{encoded}") }
}

/// The ids of a list page's items.
pub fn ids(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {page}"))
        .iter()
        .map(|item| item["id"].as_i64().unwrap_or_else(|| panic!("no id in {item}")))
        .collect()
}

/// A timestamp of a view (`null` is `None`).
pub fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str().map(|s| DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}")).with_timezone(&Utc))
}

/// How many counters of `testio_stat_counts` (all tenants) differ from a count of the mirrored rows: 0 when the
/// triggers kept them exact.
pub const COUNTERS_OFF_BY: &str = "WITH truth AS (
         SELECT tenant_id, product_id, m.metric, m.value, count(*)::bigint AS n
           FROM testio_tests, LATERAL (VALUES ('test_status', status),
                                              ('test_testing_type', coalesce(testing_type, ''))) m(metric, value)
          GROUP BY 1, 2, 3, 4
         UNION ALL
         SELECT tenant_id, product_id, m.metric, m.value, count(*)::bigint
           FROM testio_bugs, LATERAL (VALUES ('bug_severity', coalesce(severity, '')),
                                             ('bug_status', coalesce(status, '')),
                                             ('bug_auto_accepted', coalesce(auto_accepted, false)::text))
                             m(metric, value)
          GROUP BY 1, 2, 3, 4
     ), counters AS (SELECT tenant_id, product_id, metric, value, n FROM testio_stat_counts WHERE n <> 0)
     SELECT count(*) FROM ((TABLE truth EXCEPT TABLE counters) UNION ALL (TABLE counters EXCEPT TABLE truth)) d";
