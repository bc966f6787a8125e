//! The query API over the mirror: `/v1/tenants/{tenant_id}/{products,tests,bugs,stats}`, for every role of the
//! tenant (and its API keys). Lists filter, sort and page with an opaque signed cursor (or `page`/`per_page` with a
//! total); a detail adds counts; statistics come from the counters the database keeps in step with every sync write.
//! Each request is one tenant transaction with one statement of its own (two for a page with a total).

mod bugs;
mod products;
pub mod query_string;
pub mod stats;
mod tests;
pub mod views;
pub mod vocab;

use actix_web::HttpResponse;
use entity::TenantId;
use entity::mirror::query::{Keyset, Page};
use serde::Serialize;
use utoipa_actix_web::scope;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::permissions::Permission;
use crate::auth::principal::Caller;
use crate::auth::tenant_access::TenantAccess;
use crate::error::ApiError;
use crate::pagination::{Asked, Cursor, CursorScope};
use crate::state::AppState;

/// Registers the handlers under the tenant scope (see `routes::configure`).
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(scope::scope("/products").service(products::list_products).service(products::get_product))
        .service(scope::scope("/tests").service(tests::list_tests).service(tests::get_test))
        .service(scope::scope("/bugs").service(bugs::list_bugs).service(bugs::get_bug))
        .service(stats::get_stats);
}

/// Opens the tenant transaction for a read of the mirror.
async fn read_access(state: &AppState, caller: &Caller, tenant: TenantId) -> Result<TenantAccess, ApiError> {
    TenantAccess::begin(state, caller, tenant, Permission::ReadSyncedData).await
}

/// The paging parameters every list takes (documentation; the handlers read them strictly with
/// [`query_string::QueryString`]).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PageParams {
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page (same filters and sort).
    pub cursor: Option<String>,
    /// Offset paging instead of the cursor: the page number, from 1 (adds `total`).
    #[param(minimum = 1)]
    pub page: Option<u64>,
    /// Offset paging: items per page, 1 to 200 (default 50); pages reach the first 10,000 items.
    #[param(minimum = 1, maximum = 200)]
    pub per_page: Option<u64>,
    /// `raw`: add each item's TestIO JSON.
    #[param(pattern = "^raw$")]
    pub include: Option<String>,
}

/// The body of a page: its items, and the cursor of the next page (keyset) or the page numbers and total (offset).
#[derive(Serialize)]
struct PageBody<V> {
    items: Vec<V>,
    next_cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    page: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    per_page: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_exact: Option<bool>,
}

/// Answers a page: `keyset` gives the position after an item, `view` turns an item into its view.
fn page_response<T, V: Serialize>(
    state: &AppState,
    page: Page<T>,
    asked: &Asked,
    scope: CursorScope,
    keyset: impl Fn(&T) -> Keyset,
    view: impl Fn(T) -> V,
) -> Result<HttpResponse, ApiError> {
    let next_cursor = match (page.more, page.items.last()) {
        (true, Some(last)) => Some(state.cursors.seal(&Cursor { scope, after: keyset(last) })?),
        _ => None,
    };
    let (page_number, per_page) = asked.offset_page.unzip();
    let body = PageBody {
        items: page.items.into_iter().map(view).collect(),
        next_cursor,
        page: page_number,
        per_page,
        total: page.total.map(|t| t.count),
        total_exact: page.total.map(|t| t.exact),
    };
    Ok(HttpResponse::Ok().json(body))
}
