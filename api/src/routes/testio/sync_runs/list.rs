//! `GET /v1/tenants/{tenant_id}/sync-runs`.

use actix_web::{HttpResponse, get, web};
use anyhow::Context;
use entity::{TenantId, sync_runs};
use serde::Deserialize;

use crate::auth::permissions::Permission;
use crate::auth::principal::Caller;
use crate::auth::tenant_access::TenantAccess;
use crate::error::{ApiError, ErrorCode, ProblemDetails};
use crate::routes::params::TenantPath;
use crate::routes::views::SyncRunView;
use crate::state::AppState;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListSyncRuns {
    /// At most this many runs (1 to 100, default 20).
    #[param(minimum = 1, maximum = 100, example = 20)]
    pub limit: Option<u64>,
    /// The `id` of the last run of the previous page: continue with older runs.
    pub before: Option<uuid::Uuid>,
}

/// Sync runs, newest first (every member).
#[utoipa::path(
    tag = "testio",
    params(TenantPath, ListSyncRuns),
    responses(
        (status = 200, body = Vec<SyncRunView>),
        (status = 400, body = ProblemDetails),
        (status = 404, body = ProblemDetails),
    ),
)]
#[get("")]
pub async fn list_sync_runs(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<TenantPath>,
    query: web::Query<ListSyncRuns>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::new(ErrorCode::InvalidQueryParameter, "limit must be between 1 and 100."));
    }
    let access = TenantAccess::begin(&state, &caller, TenantId(path.tenant_id), Permission::ReadSyncedData).await?;
    let runs = sync_runs::list(&access.txn, limit, query.before).await.context("Failed to list the runs")?;
    access.commit().await?;
    Ok(HttpResponse::Ok().json(runs.into_iter().map(SyncRunView::from).collect::<Vec<_>>()))
}
