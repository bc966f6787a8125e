//! `DELETE /v1/tenants/{tenant_id}/testio-connection`.

use actix_web::{HttpResponse, delete, web};
use anyhow::Context;
use entity::audit::AuditAction;
use entity::sync::schedule;
use entity::{TenantId, testio_connections};

use crate::auth::permissions::Permission;
use crate::auth::principal::Caller;
use crate::auth::tenant_access::TenantAccess;
use crate::error::{ApiError, ProblemDetails};
use crate::request_context::ClientOrigin;
use crate::routes::params::TenantPath;
use crate::state::AppState;

/// Disconnect TestIO (owner, admin). Syncing stops; the mirrored data is kept.
#[utoipa::path(
    tag = "testio",
    params(TenantPath),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, body = ProblemDetails),
        (status = 404, body = ProblemDetails, description = "No such tenant, or no connection"),
    ),
)]
#[delete("")]
pub async fn delete_connection(
    state: web::Data<AppState>,
    caller: Caller,
    origin: ClientOrigin,
    path: web::Path<TenantPath>,
) -> Result<HttpResponse, ApiError> {
    let tenant = TenantId(path.tenant_id);
    let access = TenantAccess::begin(&state, &caller, tenant, Permission::ManageTestioConnection).await?;
    if !testio_connections::delete(&access.txn).await.context("Failed to delete the connection")? {
        return Err(ApiError::not_found("TestIO connection"));
    }
    schedule::unschedule(&access.txn).await.context("Failed to take the tenant off the schedule")?;
    access.audit(AuditAction::TestioConnectionDelete, tenant, serde_json::json!({}), &origin.0).await?;
    access.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}
