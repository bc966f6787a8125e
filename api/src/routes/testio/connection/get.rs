//! `GET /v1/tenants/{tenant_id}/testio-connection`.

use actix_web::{HttpResponse, get, web};
use anyhow::Context;
use entity::sync::schedule;
use entity::{TenantId, sync_runs, testio_connections};

use super::ConnectionView;
use crate::auth::permissions::Permission;
use crate::auth::principal::Caller;
use crate::auth::tenant_access::TenantAccess;
use crate::error::{ApiError, ProblemDetails};
use crate::routes::params::TenantPath;
use crate::state::AppState;

/// The tenant's TestIO connection (owner, admin).
#[utoipa::path(
    tag = "testio",
    params(TenantPath),
    responses(
        (status = 200, body = ConnectionView),
        (status = 403, body = ProblemDetails),
        (status = 404, body = ProblemDetails, description = "No such tenant, or no connection"),
    ),
)]
#[get("")]
pub async fn get_connection(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<TenantPath>,
) -> Result<HttpResponse, ApiError> {
    let tenant = TenantId(path.tenant_id);
    let access = TenantAccess::begin(&state, &caller, tenant, Permission::ManageTestioConnection).await?;
    let connection = testio_connections::find(&access.txn)
        .await
        .context("Failed to read the connection")?
        .ok_or_else(|| ApiError::not_found("TestIO connection"))?;
    let next = schedule::due_at(&access.txn, tenant).await.context("Failed to read the schedule")?;
    let last = sync_runs::list(&access.txn, 1, None).await.context("Failed to read the last run")?.into_iter().next();
    access.commit().await?;
    Ok(HttpResponse::Ok().json(ConnectionView::new(connection, next, last)))
}
