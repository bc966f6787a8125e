//! `DELETE /v1/tenants/{tenant_id}/api-keys/{api_key_id}`.

use actix_web::{HttpResponse, delete, web};
use anyhow::Context;
use entity::audit::AuditAction;
use entity::{TenantId, api_keys};

use crate::auth::permissions::{Permission, may_manage_role};
use crate::auth::principal::Caller;
use crate::auth::tenant_access::TenantAccess;
use crate::error::{ApiError, ErrorCode, ProblemDetails};
use crate::request_context::ClientOrigin;
use crate::routes::params::ApiKeyPath;
use crate::state::AppState;

/// Revoke an API key (owner, admin); it stops working at once.
#[utoipa::path(
    tag = "api-keys",
    params(ApiKeyPath),
    responses((status = 204), (status = 403, body = ProblemDetails), (status = 404, body = ProblemDetails)),
)]
#[delete("/{api_key_id}")]
pub async fn revoke_api_key(
    state: web::Data<AppState>,
    caller: Caller,
    origin: ClientOrigin,
    path: web::Path<ApiKeyPath>,
) -> Result<HttpResponse, ApiError> {
    let access = TenantAccess::begin(&state, &caller, TenantId(path.tenant_id), Permission::ManageApiKeys).await?;
    let key = api_keys::find(&access.txn, path.api_key_id)
        .await
        .context("Failed to read the API key")?
        .filter(|k| k.revoked_at.is_none())
        .ok_or_else(|| ApiError::not_found("API key"))?;
    if !may_manage_role(access.role, key.role) {
        return Err(ApiError::new(ErrorCode::Forbidden, "Only owners can revoke owner keys."));
    }
    let key = api_keys::revoke(&access.txn, key).await.context("Failed to revoke the API key")?;
    let metadata = serde_json::json!({ "name": key.name, "prefix": key.prefix });
    access.audit(AuditAction::ApiKeyRevoke, key.id, metadata, &origin.0).await?;
    access.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}
