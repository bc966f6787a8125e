//! `DELETE /v1/tenants/{tenant_id}`.

use actix_web::{HttpResponse, delete, web};
use anyhow::Context;
use entity::audit::AuditAction;
use entity::{TenantId, tenants};

use crate::auth::permissions::Permission;
use crate::auth::principal::Caller;
use crate::auth::tenant_access::TenantAccess;
use crate::error::{ApiError, ProblemDetails};
use crate::request_context::ClientOrigin;
use crate::routes::params::TenantPath;
use crate::state::AppState;

/// Delete a tenant with its memberships, invitations and API keys (owner only). The audit log is kept.
#[utoipa::path(
    tag = "tenants",
    params(TenantPath),
    responses((status = 204), (status = 403, body = ProblemDetails), (status = 404, body = ProblemDetails)),
)]
#[delete("")]
pub async fn delete_tenant(
    state: web::Data<AppState>,
    caller: Caller,
    origin: ClientOrigin,
    path: web::Path<TenantPath>,
) -> Result<HttpResponse, ApiError> {
    let access = TenantAccess::begin(&state, &caller, TenantId(path.tenant_id), Permission::DeleteTenant).await?;
    let tenant = tenants::find(&access.txn, access.txn.tenant_id())
        .await
        .context("Failed to read the tenant")?
        .ok_or_else(|| ApiError::not_found("Tenant"))?;
    let metadata = serde_json::json!({ "name": tenant.name, "slug": tenant.slug });
    access.audit(AuditAction::TenantDelete, tenant.id, metadata, &origin.0).await?;
    tenants::delete(&access.txn, tenant).await.context("Failed to delete the tenant")?;
    access.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}
