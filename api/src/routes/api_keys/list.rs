//! `GET /v1/tenants/{tenant_id}/api-keys`.

use actix_web::{HttpResponse, get, web};
use anyhow::Context;
use entity::{TenantId, api_keys};

use super::ApiKeyView;
use crate::auth::permissions::Permission;
use crate::auth::principal::Caller;
use crate::auth::tenant_access::TenantAccess;
use crate::error::{ApiError, ProblemDetails};
use crate::routes::params::TenantPath;
use crate::state::AppState;

/// Active API keys (owner, admin).
#[utoipa::path(
    tag = "api-keys",
    params(TenantPath),
    responses((status = 200, body = Vec<ApiKeyView>), (status = 403, body = ProblemDetails), (status = 404, body = ProblemDetails)),
)]
#[get("")]
pub async fn list_api_keys(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<TenantPath>,
) -> Result<HttpResponse, ApiError> {
    let access = TenantAccess::begin(&state, &caller, TenantId(path.tenant_id), Permission::ManageApiKeys).await?;
    let keys = api_keys::list_active(&access.txn).await.context("Failed to list the API keys")?;
    access.commit().await?;
    Ok(HttpResponse::Ok().json(keys.into_iter().map(ApiKeyView::from).collect::<Vec<_>>()))
}
