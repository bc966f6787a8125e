//! `GET /v1/tenants/{tenant_id}`.

use actix_web::{HttpResponse, get, web};
use anyhow::Context;
use entity::{TenantId, tenants};

use crate::auth::permissions::Permission;
use crate::auth::principal::Caller;
use crate::auth::tenant_access::TenantAccess;
use crate::error::{ApiError, ProblemDetails};
use crate::routes::params::TenantPath;
use crate::routes::views::TenantView;
use crate::state::AppState;

/// One tenant.
#[utoipa::path(
    tag = "tenants",
    params(TenantPath),
    responses((status = 200, body = TenantView), (status = 404, body = ProblemDetails)),
)]
#[get("")]
pub async fn get_tenant(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<TenantPath>,
) -> Result<HttpResponse, ApiError> {
    let access = TenantAccess::begin(&state, &caller, TenantId(path.tenant_id), Permission::ReadTenant).await?;
    let tenant = tenants::find(&access.txn, access.txn.tenant_id())
        .await
        .context("Failed to read the tenant")?
        .ok_or_else(|| ApiError::not_found("Tenant"))?;
    access.commit().await?;
    Ok(HttpResponse::Ok().json(TenantView::from(tenant)))
}
