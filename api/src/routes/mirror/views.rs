//! Response bodies of the query API.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use entity::mirror::query::{BugCount, BugItem, Counter, ProductItem, TestItem};
use serde::Serialize;
use serde_json::Value as Json;
use utoipa::ToSchema;

use super::vocab::{
    OTHER, bug_severities, bug_severity_schema, bug_status_schema, bug_statuses, shown, shown_opt, test_status_schema,
    test_statuses, testing_type_schema, testing_types,
};

/// Counts by word. Every known word is present (0 when none); unknown words are counted under `other`, and a missing
/// value under `none`.
pub type Counts = BTreeMap<String, u64>;

/// A product of the tenant's TestIO account.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductView {
    /// TestIO's id of the product.
    pub id: i64,
    pub name: String,
    /// TestIO's product type (`website`, `mobile_app_ios`...), as sent.
    pub product_type: Option<String>,
    /// Tests of the product in the mirror.
    pub tests_total: u64,
    /// Bugs of the product in the mirror.
    pub bugs_total: u64,
    /// When the mirror first stored the product.
    pub first_synced_at: DateTime<Utc>,
    /// When the mirror last stored a change of it.
    pub changed_at: DateTime<Utc>,
    /// The product as TestIO sent it (only with `include=raw`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub raw: Option<Json>,
}

impl From<ProductItem> for ProductView {
    fn from(p: ProductItem) -> Self {
        Self {
            id: p.testio_id,
            name: p.name,
            product_type: p.product_type,
            tests_total: u64::try_from(p.tests_total).unwrap_or_default(),
            bugs_total: u64::try_from(p.bugs_total).unwrap_or_default(),
            first_synced_at: p.first_synced_at,
            changed_at: p.changed_at,
            raw: p.raw,
        }
    }
}

/// A test (TestIO's exploratory test).
#[derive(Debug, Serialize, ToSchema)]
pub struct TestView {
    /// TestIO's id of the test.
    pub id: i64,
    pub product_id: i64,
    pub title: String,
    /// `other` when TestIO sent a status this server does not know (see `status_raw`).
    #[schema(schema_with = test_status_schema)]
    pub status: String,
    /// The status as TestIO sent it, only when `status` is `other`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_raw: Option<String>,
    #[schema(schema_with = testing_type_schema)]
    pub testing_type: Option<String>,
    /// The testing type as TestIO sent it, only when `testing_type` is `other`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub testing_type_raw: Option<String>,
    pub review_status: Option<String>,
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
    pub first_synced_at: DateTime<Utc>,
    pub changed_at: DateTime<Utc>,
    /// The test as TestIO sent it, without environment credentials (only with `include=raw`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub raw: Option<Json>,
}

impl From<TestItem> for TestView {
    fn from(t: TestItem) -> Self {
        let (status, status_raw) = shown(&t.status, &test_statuses());
        let (testing_type, testing_type_raw) = shown_opt(t.testing_type.as_deref(), &testing_types());
        Self {
            id: t.testio_id,
            product_id: t.product_id,
            title: t.title,
            status,
            status_raw,
            testing_type,
            testing_type_raw,
            review_status: t.review_status,
            start_at: t.start_at,
            end_at: t.end_at,
            first_synced_at: t.first_synced_at,
            changed_at: t.changed_at,
            raw: t.raw,
        }
    }
}

/// A bug.
#[derive(Debug, Serialize, ToSchema)]
pub struct BugView {
    /// TestIO's id of the bug.
    pub id: i64,
    pub test_id: i64,
    /// The product of its test.
    pub product_id: i64,
    pub title: String,
    #[schema(schema_with = bug_severity_schema)]
    pub severity: Option<String>,
    /// The severity as TestIO sent it, only when `severity` is `other`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity_raw: Option<String>,
    #[schema(schema_with = bug_status_schema)]
    pub status: Option<String>,
    /// The status as TestIO sent it, only when `status` is `other`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_raw: Option<String>,
    pub known: Option<bool>,
    pub auto_accepted: Option<bool>,
    pub reported_at: Option<DateTime<Utc>>,
    pub first_synced_at: DateTime<Utc>,
    pub changed_at: DateTime<Utc>,
    /// The bug as TestIO sent it (only with `include=raw`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub raw: Option<Json>,
}

impl From<BugItem> for BugView {
    fn from(b: BugItem) -> Self {
        let (severity, severity_raw) = shown_opt(b.severity.as_deref(), &bug_severities());
        let (status, status_raw) = shown_opt(b.status.as_deref(), &bug_statuses());
        Self {
            id: b.testio_id,
            test_id: b.test_id,
            product_id: b.product_id,
            title: b.title,
            severity,
            severity_raw,
            status,
            status_raw,
            known: b.known,
            auto_accepted: b.auto_accepted,
            reported_at: b.reported_at,
            first_synced_at: b.first_synced_at,
            changed_at: b.changed_at,
            raw: b.raw,
        }
    }
}

macro_rules! page {
    ($(#[$meta:meta])* $name:ident, $item:ty) => {
        $(#[$meta])*
        #[derive(Debug, Serialize, ToSchema)]
        pub struct $name {
            pub items: Vec<$item>,
            /// Pass as `cursor` to get the next page; `null` on the last page (and with `page`/`per_page`).
            pub next_cursor: Option<String>,
            /// With `page`/`per_page`: this page's number.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub page: Option<u64>,
            /// With `page`/`per_page`: the page size.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub per_page: Option<u64>,
            /// With `page`/`per_page`: how many items the list has. Exact at any size when the list is filtered
            /// by nothing but products and one of status, testing type or severity (or auto-acceptance); otherwise
            /// exact up to 10,000, else at least 10,000 (`total_exact`).
            #[serde(skip_serializing_if = "Option::is_none")]
            pub total: Option<u64>,
            /// Whether `total` is exact (`false`: the list has at least `total` items).
            #[serde(skip_serializing_if = "Option::is_none")]
            pub total_exact: Option<bool>,
        }
    };
}

page!(
    /// A page of products.
    ProductPage,
    ProductView
);
page!(
    /// A page of tests.
    TestPage,
    TestView
);
page!(
    /// A page of bugs.
    BugPage,
    BugView
);

/// Tests and bugs counted by status, type and severity.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Summary {
    pub tests_total: u64,
    /// By status: every known status, plus `other`.
    pub tests_by_status: Counts,
    /// By testing type: every known type, plus `other` and `none`.
    pub tests_by_testing_type: Counts,
    pub bugs_total: u64,
    /// By severity: every known severity, plus `other` and `none`.
    pub bugs_by_severity: Counts,
    /// By status (`forwarded`, `accepted`, `rejected`), plus `other` and `none`.
    pub bugs_by_status: Counts,
    /// Bugs accepted automatically (also counted as `accepted` when TestIO says so).
    pub bugs_auto_accepted: u64,
    /// accepted / (accepted + rejected); `null` before any bug was decided.
    pub acceptance_rate: Option<f64>,
}

fn zeros(words: &[&str], extra: &[&str]) -> Counts {
    words.iter().chain(extra).map(|w| ((*w).to_owned(), 0)).collect()
}

fn add(counts: &mut Counts, known: &[&str], word: &str, n: u64) {
    let key = if word.is_empty() {
        "none"
    } else if known.contains(&word) {
        word
    } else {
        OTHER
    };
    *counts.entry(key.to_owned()).or_default() += n;
}

fn rate(counts: &Counts) -> Option<f64> {
    let accepted = counts.get("accepted").copied().unwrap_or_default();
    let decided = accepted + counts.get("rejected").copied().unwrap_or_default();
    (decided > 0).then(|| accepted as f64 / decided as f64)
}

impl Summary {
    fn empty() -> Self {
        Self {
            tests_by_status: zeros(&test_statuses(), &[OTHER]),
            tests_by_testing_type: zeros(&testing_types(), &[OTHER, "none"]),
            bugs_by_severity: zeros(&bug_severities(), &[OTHER, "none"]),
            bugs_by_status: zeros(&bug_statuses(), &[OTHER, "none"]),
            ..Self::default()
        }
    }

    /// The summary of `counters` (of one product or all).
    pub fn of<'a>(counters: impl IntoIterator<Item = &'a Counter>) -> Self {
        let mut s = Self::empty();
        let (statuses, types, severities, bug_statuses) =
            (test_statuses(), testing_types(), bug_severities(), bug_statuses());
        for c in counters {
            let n = u64::try_from(c.n).unwrap_or_default();
            match c.metric.as_str() {
                "test_status" => {
                    s.tests_total += n;
                    add(&mut s.tests_by_status, &statuses, &c.value, n);
                }
                "test_testing_type" => add(&mut s.tests_by_testing_type, &types, &c.value, n),
                "bug_severity" => add(&mut s.bugs_by_severity, &severities, &c.value, n),
                "bug_status" => {
                    s.bugs_total += n;
                    add(&mut s.bugs_by_status, &bug_statuses, &c.value, n);
                }
                "bug_auto_accepted" if c.value == "true" => s.bugs_auto_accepted += n,
                _ => {}
            }
        }
        s.acceptance_rate = rate(&s.bugs_by_status);
        s
    }
}

/// A product with its summary.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductDetailView {
    #[serde(flatten)]
    pub product: ProductView,
    #[serde(flatten)]
    pub summary: Summary,
}

/// The bugs of one test, counted.
#[derive(Debug, Serialize, ToSchema)]
pub struct BugSummary {
    pub total: u64,
    /// By severity: every known severity, plus `other` and `none`.
    pub by_severity: Counts,
    /// By status, plus `other` and `none`.
    pub by_status: Counts,
    pub auto_accepted: u64,
    /// accepted / (accepted + rejected); `null` before any bug was decided.
    pub acceptance_rate: Option<f64>,
}

impl BugSummary {
    pub fn of(counts: &[BugCount]) -> Self {
        let (severities, statuses) = (bug_severities(), bug_statuses());
        let mut s = Self {
            total: 0,
            by_severity: zeros(&severities, &[OTHER, "none"]),
            by_status: zeros(&statuses, &[OTHER, "none"]),
            auto_accepted: 0,
            acceptance_rate: None,
        };
        for c in counts {
            let n = u64::try_from(c.n).unwrap_or_default();
            s.total += n;
            add(&mut s.by_severity, &severities, &c.severity, n);
            add(&mut s.by_status, &statuses, &c.status, n);
            if c.auto_accepted {
                s.auto_accepted += n;
            }
        }
        s.acceptance_rate = rate(&s.by_status);
        s
    }
}

/// A test with its bugs counted.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestDetailView {
    #[serde(flatten)]
    pub test: TestView,
    pub bugs: BugSummary,
}

/// One product's line of the statistics.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductStats {
    pub product_id: i64,
    pub name: String,
    #[serde(flatten)]
    pub summary: Summary,
}

/// Why the mirror may not reflect TestIO right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StaleReason {
    /// The tenant has no TestIO connection.
    NoConnection,
    /// TestIO refused the token: the connection needs a new one.
    NeedsToken,
    /// No sync has succeeded yet.
    NeverSynced,
    /// A scheduled sync is more than 15 minutes late and none is running.
    SyncOverdue,
    /// The last finished sync failed or was interrupted.
    LastSyncFailed,
    /// Some pages or items could not be read; a later sync retries them.
    OpenGaps,
}

/// How fresh the mirror is.
#[derive(Debug, Serialize, ToSchema)]
pub struct Freshness {
    pub connected: bool,
    /// `active` or `needs_token`; `null` without a connection.
    pub connection_status: Option<String>,
    pub last_successful_sync_at: Option<DateTime<Utc>>,
    /// Status of the last finished sync run.
    pub last_sync_status: Option<String>,
    pub last_sync_finished_at: Option<DateTime<Utc>>,
    /// Every change TestIO made before this instant is in the mirror (`null` until a full verification completed
    /// without gaps).
    pub verified_through: Option<DateTime<Utc>>,
    /// When the next scheduled sync is due.
    pub next_sync_due_at: Option<DateTime<Utc>>,
    /// Unread pages or items the sync will retry.
    pub open_gaps: u64,
    /// Whether the data may be out of date: `stale_reasons` is not empty.
    pub stale: bool,
    pub stale_reasons: Vec<StaleReason>,
}

/// The tenant's statistics: overall, per product, and the freshness of the mirror.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsView {
    pub overall: Summary,
    pub products: Vec<ProductStats>,
    pub sync: Freshness,
}
