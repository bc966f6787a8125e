//! `GET /v1/tenants/{tenant_id}/products` and `GET .../products/{product_id}`.

use actix_web::{HttpRequest, HttpResponse, get, web};
use anyhow::Context;
use entity::TenantId;
use entity::mirror::query::{self, ProductQuery, ProductSort};

use super::query_string::QueryString;
use super::views::{ProductDetailView, ProductPage, ProductView, Summary};
use super::{PageParams, page_response, read_access};
use crate::auth::principal::Caller;
use crate::error::{ApiError, ProblemDetails};
use crate::pagination::CursorScope;
use crate::routes::params::{ProductPath, TenantPath};
use crate::state::AppState;

/// The query parameters of the product list (documentation; the handler reads them strictly with [`QueryString`]).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListProducts {
    /// `name` (default), `-name`, `id` or `-id`; ties are broken by id in the same direction.
    #[param(pattern = "^-?(name|id)$", example = "name")]
    pub sort: Option<String>,
}

const PARAMS: &[&str] = &["sort", "limit", "cursor", "page", "per_page", "include"];
const SORTS: &[(&str, ProductSort)] = &[("name", ProductSort::Name), ("id", ProductSort::Id)];

/// The tenant's TestIO products (every member).
#[utoipa::path(
    tag = "mirror",
    params(TenantPath, ListProducts, PageParams),
    responses((status = 200, body = ProductPage), (status = 400, body = ProblemDetails), (status = 404, body = ProblemDetails)),
)]
#[get("")]
pub async fn list_products(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<TenantPath>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let tenant = TenantId(path.tenant_id);
    let params = QueryString::parse(req.query_string(), PARAMS)?;
    let (sort_name, sort, direction) = params.sort(SORTS, "name")?;
    let include_raw = params.include_raw()?;
    let scope = CursorScope::new(tenant, "products", &sort_name, &())?;
    let asked = params.paging()?.window(&state.cursors, &scope)?;
    let access = read_access(&state, &caller, tenant).await?;
    let query = ProductQuery { sort, direction, window: asked.window.clone(), include_raw };
    let page = query::list_products(&access.txn, &query).await.context("Failed to list the products")?;
    access.commit().await?;
    page_response(&state, page, &asked, scope, |p| p.keyset(sort), ProductView::from)
}

/// The query parameters of one product.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct GetItem {
    /// `raw`: add the item's TestIO JSON.
    #[param(pattern = "^raw$")]
    pub include: Option<String>,
}

/// One product with its tests and bugs counted (every member).
#[utoipa::path(
    tag = "mirror",
    params(ProductPath, GetItem),
    responses((status = 200, body = ProductDetailView), (status = 400, body = ProblemDetails), (status = 404, body = ProblemDetails)),
)]
#[get("/{product_id}")]
pub async fn get_product(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<ProductPath>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let include_raw = QueryString::parse(req.query_string(), &["include"])?.include_raw()?;
    let access = read_access(&state, &caller, TenantId(path.tenant_id)).await?;
    let detail = query::product(&access.txn, path.product_id, include_raw)
        .await
        .context("Failed to read the product")?
        .ok_or_else(|| ApiError::not_found("Product"))?;
    access.commit().await?;
    let summary = Summary::of(&detail.counters);
    Ok(HttpResponse::Ok().json(ProductDetailView { product: ProductView::from(detail.product), summary }))
}
