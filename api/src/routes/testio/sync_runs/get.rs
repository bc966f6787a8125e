//! `GET /v1/tenants/{tenant_id}/sync-runs/{sync_run_id}`.

use actix_web::{HttpResponse, get, web};
use anyhow::Context;
use entity::{TenantId, sync_runs};

use crate::auth::permissions::Permission;
use crate::auth::principal::Caller;
use crate::auth::tenant_access::TenantAccess;
use crate::error::{ApiError, ProblemDetails};
use crate::routes::params::SyncRunPath;
use crate::routes::views::SyncRunView;
use crate::state::AppState;

/// One sync run (every member).
#[utoipa::path(
    tag = "testio",
    params(SyncRunPath),
    responses((status = 200, body = SyncRunView), (status = 404, body = ProblemDetails)),
)]
#[get("/{sync_run_id}")]
pub async fn get_sync_run(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<SyncRunPath>,
) -> Result<HttpResponse, ApiError> {
    let access = TenantAccess::begin(&state, &caller, TenantId(path.tenant_id), Permission::ReadSyncedData).await?;
    let run = sync_runs::find(&access.txn, path.sync_run_id)
        .await
        .context("Failed to read the run")?
        .ok_or_else(|| ApiError::not_found("Sync run"))?;
    access.commit().await?;
    Ok(HttpResponse::Ok().json(SyncRunView::from(run)))
}
