//! `GET /v1/tenants/{tenant_id}/bugs` and `GET .../bugs/{bug_id}`.

use actix_web::{HttpRequest, HttpResponse, get, web};
use anyhow::Context;
use entity::TenantId;
use entity::mirror::query::{self, BugFilter, BugQuery, BugSort};

use super::products::GetItem;
use super::query_string::QueryString;
use super::views::{BugPage, BugView};
use super::vocab::{AUTO_ACCEPTED, bug_severities, bug_severity_filter, bug_status_filter, bug_status_filters};
use super::{PageParams, page_response, read_access};
use crate::auth::principal::Caller;
use crate::error::{ApiError, ProblemDetails};
use crate::pagination::CursorScope;
use crate::routes::params::{BugPath, TenantPath};
use crate::state::AppState;

/// The query parameters of the bug list (documentation; the handler reads them strictly with [`QueryString`]).
/// Multi-valued filters take repeated keys or comma-separated values; different filters combine with AND, the values
/// of one filter with OR.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListBugs {
    /// Only bugs of these tests (TestIO ids).
    #[param(explode = true, style = Form)]
    pub test_id: Option<Vec<i64>>,
    /// Only bugs of these products.
    #[param(explode = true, style = Form)]
    pub product_id: Option<Vec<i64>>,
    /// Only bugs of these severities.
    #[param(explode = true, style = Form, schema_with = bug_severity_filter)]
    pub severity: Option<Vec<String>>,
    /// Only bugs with these statuses; `auto_accepted` selects the bugs accepted automatically.
    #[param(explode = true, style = Form, schema_with = bug_status_filter)]
    pub status: Option<Vec<String>>,
    /// Only bugs TestIO marks as known (`true`) or not known (`false`).
    pub known: Option<bool>,
    /// Bugs reported at or after this instant (RFC 3339).
    pub reported_from: Option<chrono::DateTime<chrono::Utc>>,
    /// Bugs reported at or before this instant.
    pub reported_to: Option<chrono::DateTime<chrono::Utc>>,
    /// Text that the title, expected or actual result contain (case-insensitive; `%`, `_` and `\` are literal).
    #[param(min_length = 1, max_length = 200)]
    pub q: Option<String>,
    /// `reported_at`, `severity`, `status` or `title`, ascending, or descending with a leading `-` (default
    /// `-reported_at`). Ties are broken by id in the same direction; a missing date sorts after every date.
    #[param(pattern = "^-?(reported_at|severity|status|title)$", example = "-reported_at")]
    pub sort: Option<String>,
}

const PARAMS: &[&str] = &[
    "test_id",
    "product_id",
    "severity",
    "status",
    "known",
    "reported_from",
    "reported_to",
    "q",
    "sort",
    "limit",
    "cursor",
    "page",
    "per_page",
    "include",
];
const SORTS: &[(&str, BugSort)] = &[
    ("reported_at", BugSort::ReportedAt),
    ("severity", BugSort::Severity),
    ("status", BugSort::Status),
    ("title", BugSort::Title),
];

/// The tenant's bugs, filtered, sorted and paged (every member).
#[utoipa::path(
    tag = "mirror",
    params(TenantPath, ListBugs, PageParams),
    responses((status = 200, body = BugPage), (status = 400, body = ProblemDetails), (status = 404, body = ProblemDetails)),
)]
#[get("")]
pub async fn list_bugs(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<TenantPath>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let tenant = TenantId(path.tenant_id);
    let params = QueryString::parse(req.query_string(), PARAMS)?;
    let mut statuses = params.words("status", &bug_status_filters())?;
    let auto_accepted = statuses.iter().any(|s| s == AUTO_ACCEPTED);
    statuses.retain(|s| s != AUTO_ACCEPTED);
    let filter = BugFilter {
        test_ids: params.ids("test_id")?,
        product_ids: params.ids("product_id")?,
        severities: params.words("severity", &bug_severities())?,
        statuses,
        auto_accepted,
        known: params.bool("known")?,
        reported: params.range("reported_from", "reported_to")?,
        q: params.q()?,
    };
    let (sort_name, sort, direction) = params.sort(SORTS, "-reported_at")?;
    let include_raw = params.include_raw()?;
    let scope = CursorScope::new(tenant, "bugs", &sort_name, &filter)?;
    let asked = params.paging()?.window(&state.cursors, &scope)?;
    let access = read_access(&state, &caller, tenant).await?;
    let query = BugQuery { filter, sort, direction, window: asked.window.clone(), include_raw };
    let page = query::list_bugs(&access.txn, &query).await.context("Failed to list the bugs")?;
    access.commit().await?;
    page_response(&state, page, &asked, scope, |b| b.keyset(sort), BugView::from)
}

/// One bug (every member).
#[utoipa::path(
    tag = "mirror",
    params(BugPath, GetItem),
    responses((status = 200, body = BugView), (status = 400, body = ProblemDetails), (status = 404, body = ProblemDetails)),
)]
#[get("/{bug_id}")]
pub async fn get_bug(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<BugPath>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let include_raw = QueryString::parse(req.query_string(), &["include"])?.include_raw()?;
    let access = read_access(&state, &caller, TenantId(path.tenant_id)).await?;
    let bug = query::bug(&access.txn, path.bug_id, include_raw)
        .await
        .context("Failed to read the bug")?
        .ok_or_else(|| ApiError::not_found("Bug"))?;
    access.commit().await?;
    Ok(HttpResponse::Ok().json(BugView::from(bug)))
}
