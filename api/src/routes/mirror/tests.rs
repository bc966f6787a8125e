//! `GET /v1/tenants/{tenant_id}/tests` and `GET .../tests/{test_id}`.

use actix_web::{HttpRequest, HttpResponse, get, web};
use anyhow::Context;
use entity::TenantId;
use entity::mirror::query::{self, TestFilter, TestQuery, TestSort};

use super::products::GetItem;
use super::query_string::QueryString;
use super::views::{BugSummary, TestDetailView, TestPage, TestView};
use super::vocab::{test_status_filter, test_statuses, testing_type_filter, testing_types};
use super::{PageParams, page_response, read_access};
use crate::auth::principal::Caller;
use crate::error::{ApiError, ProblemDetails};
use crate::pagination::CursorScope;
use crate::routes::params::{TenantPath, TestPath};
use crate::state::AppState;

/// The query parameters of the test list (documentation; the handler reads them strictly with [`QueryString`]).
/// Multi-valued filters take repeated keys or comma-separated values; different filters combine with AND, the values
/// of one filter with OR.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListTests {
    /// Only tests of these products (TestIO ids).
    #[param(explode = true, style = Form)]
    pub product_id: Option<Vec<i64>>,
    /// Only tests with these statuses.
    #[param(explode = true, style = Form, schema_with = test_status_filter)]
    pub status: Option<Vec<String>>,
    /// Only tests of these testing types.
    #[param(explode = true, style = Form, schema_with = testing_type_filter)]
    pub testing_type: Option<Vec<String>>,
    /// Tests starting at or after this instant (RFC 3339).
    pub start_from: Option<chrono::DateTime<chrono::Utc>>,
    /// Tests starting at or before this instant.
    pub start_to: Option<chrono::DateTime<chrono::Utc>>,
    /// Tests ending at or after this instant.
    pub end_from: Option<chrono::DateTime<chrono::Utc>>,
    /// Tests ending at or before this instant.
    pub end_to: Option<chrono::DateTime<chrono::Utc>>,
    /// Text that the title, goal or instructions contain (case-insensitive; `%`, `_` and `\` are literal).
    #[param(min_length = 1, max_length = 200)]
    pub q: Option<String>,
    /// `end_at`, `start_at`, `title` or `status`, ascending, or descending with a leading `-` (default `-end_at`).
    /// Ties are broken by id in the same direction; a missing date sorts after every date.
    #[param(pattern = "^-?(end_at|start_at|title|status)$", example = "-end_at")]
    pub sort: Option<String>,
}

const PARAMS: &[&str] = &[
    "product_id",
    "status",
    "testing_type",
    "start_from",
    "start_to",
    "end_from",
    "end_to",
    "q",
    "sort",
    "limit",
    "cursor",
    "page",
    "per_page",
    "include",
];
const SORTS: &[(&str, TestSort)] = &[
    ("end_at", TestSort::EndAt),
    ("start_at", TestSort::StartAt),
    ("title", TestSort::Title),
    ("status", TestSort::Status),
];

/// The tenant's TestIO tests, filtered, sorted and paged (every member).
#[utoipa::path(
    tag = "mirror",
    params(TenantPath, ListTests, PageParams),
    responses((status = 200, body = TestPage), (status = 400, body = ProblemDetails), (status = 404, body = ProblemDetails)),
)]
#[get("")]
pub async fn list_tests(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<TenantPath>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let tenant = TenantId(path.tenant_id);
    let params = QueryString::parse(req.query_string(), PARAMS)?;
    let filter = TestFilter {
        product_ids: params.ids("product_id")?,
        statuses: params.words("status", &test_statuses())?,
        testing_types: params.words("testing_type", &testing_types())?,
        start: params.range("start_from", "start_to")?,
        end: params.range("end_from", "end_to")?,
        q: params.q()?,
    };
    let (sort_name, sort, direction) = params.sort(SORTS, "-end_at")?;
    let include_raw = params.include_raw()?;
    let scope = CursorScope::new(tenant, "tests", &sort_name, &filter)?;
    let asked = params.paging()?.window(&state.cursors, &scope)?;
    let access = read_access(&state, &caller, tenant).await?;
    let query = TestQuery { filter, sort, direction, window: asked.window.clone(), include_raw };
    let page = query::list_tests(&access.txn, &query).await.context("Failed to list the tests")?;
    access.commit().await?;
    page_response(&state, page, &asked, scope, |t| t.keyset(sort), TestView::from)
}

/// One test with its bugs counted (every member).
#[utoipa::path(
    tag = "mirror",
    params(TestPath, GetItem),
    responses((status = 200, body = TestDetailView), (status = 400, body = ProblemDetails), (status = 404, body = ProblemDetails)),
)]
#[get("/{test_id}")]
pub async fn get_test(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<TestPath>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let include_raw = QueryString::parse(req.query_string(), &["include"])?.include_raw()?;
    let access = read_access(&state, &caller, TenantId(path.tenant_id)).await?;
    let detail = query::test(&access.txn, path.test_id, include_raw)
        .await
        .context("Failed to read the test")?
        .ok_or_else(|| ApiError::not_found("Test"))?;
    access.commit().await?;
    Ok(HttpResponse::Ok()
        .json(TestDetailView { test: TestView::from(detail.test), bugs: BugSummary::of(&detail.bugs) }))
}
