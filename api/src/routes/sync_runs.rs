//! `/v1/tenants/{tenant_id}/sync-runs`: the record of the tenant's TestIO syncs, and a way to ask for one now.
//!
//! A requested run is queued and the tenant made due; a worker picks it up within its poll interval. While a run is
//! queued or running, asking again returns that run instead of queueing a second one.

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use entity::sync_runs::{self, SyncStatus, SyncTrigger};
use entity::testio_connections::{self, ConnectionStatus};
use entity::{TenantId, UserId, sync_schedule};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::permissions::Permission;
use crate::auth::principal::Principal;
use crate::auth::tenant_access::TenantAccess;
use crate::body::JsonBody;
use crate::error::{ApiError, ErrorCode, ProblemDetails};
use crate::request_context::ClientOrigin;
use crate::routes::tenants::TenantPath;
use crate::state::AppState;

/// Created, changed and deleted rows of one kind.
#[derive(Serialize, ToSchema)]
pub struct ChangeCounts {
    pub new: i32,
    pub updated: i32,
    pub deleted: i32,
}

/// Gaps: parts of TestIO a run could not read (recorded and retried by later runs), and earlier gaps it closed.
#[derive(Serialize, ToSchema)]
pub struct GapCounts {
    pub opened: i32,
    pub resolved: i32,
}

#[derive(Serialize, ToSchema)]
pub struct SyncRunView {
    pub id: uuid::Uuid,
    pub trigger: SyncTrigger,
    /// A full run reads every product's whole history and every test's bugs.
    pub full: bool,
    pub status: SyncStatus,
    pub requested_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// From start to finish, in milliseconds.
    pub duration_ms: Option<i64>,
    /// Requests made to TestIO.
    pub requests: i32,
    /// Pages (and single items) written to the mirror.
    pub pages: i32,
    /// Products listed by TestIO.
    pub products: i32,
    pub tests: ChangeCounts,
    pub bugs: ChangeCounts,
    pub gaps: GapCounts,
    /// Why the run failed or was interrupted.
    pub error: Option<String>,
}

impl From<sync_runs::Model> for SyncRunView {
    fn from(r: sync_runs::Model) -> Self {
        Self {
            id: r.id,
            trigger: r.trigger,
            full: r.full_sync,
            status: r.status,
            requested_by: r.requested_by,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            duration_ms: r.started_at.zip(r.finished_at).map(|(s, f)| (f - s).num_milliseconds()),
            requests: r.requests,
            pages: r.pages,
            products: r.products,
            tests: ChangeCounts { new: r.tests_new, updated: r.tests_updated, deleted: r.tests_deleted },
            bugs: ChangeCounts { new: r.bugs_new, updated: r.bugs_updated, deleted: r.bugs_deleted },
            gaps: GapCounts { opened: r.gaps_opened, resolved: r.gaps_resolved },
            error: r.error,
        }
    }
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"full": false}))]
pub struct RequestSyncRun {
    /// Read everything (every product's whole history and every test's bugs) instead of what changed.
    #[serde(default)]
    #[schema(example = false)]
    pub full: bool,
}

/// Sync now (owner, admin, member).
///
/// Answers 202 with the queued run, or with the run already queued or running (no second run is queued). 409 when
/// the tenant has no connection, its token was refused, or its base URL is no longer allowed.
#[utoipa::path(
    tag = "testio",
    params(TenantPath),
    request_body(content = RequestSyncRun, description = "`{}` for an incremental run, `{\"full\": true}` for a full one"),
    responses(
        (status = 202, body = SyncRunView, headers(("Location" = String, description = "The run"))),
        (status = 403, body = ProblemDetails),
        (status = 404, body = ProblemDetails),
        (status = 409, body = ProblemDetails),
    ),
)]
#[post("/v1/tenants/{tenant_id}/sync-runs")]
pub async fn request_sync_run(
    state: web::Data<AppState>,
    principal: Principal,
    origin: ClientOrigin,
    path: web::Path<TenantPath>,
    body: JsonBody<RequestSyncRun>,
) -> Result<HttpResponse, ApiError> {
    let full = body.full;
    let tenant = TenantId(path.tenant_id);
    let access = TenantAccess::begin(&state, &principal, tenant, Permission::TriggerSync).await?;
    // Only an active connection is synced: a run queued for another would never start.
    let refused = match testio_connections::find(&access.txn).await?.map(|c| c.status) {
        None => Some("Connect TestIO first (PUT .../testio-connection)."),
        Some(ConnectionStatus::Active) => None,
        Some(ConnectionStatus::NeedsToken) => {
            Some("TestIO refused the saved token; save a new one (PUT .../testio-connection).")
        }
        Some(ConnectionStatus::BaseUrlNotAllowed) => Some(
            "The connection's base URL is no longer allowed on this server; save the connection again with an \
             allowed base_url (PUT .../testio-connection).",
        ),
    };
    if let Some(detail) = refused {
        return Err(ApiError::new(ErrorCode::Conflict, detail));
    }
    let (run, created) = sync_runs::request(&access.txn, SyncTrigger::Api, full, access.user_id).await?;
    if created {
        sync_schedule::schedule_now(access.txn.connection(), tenant).await?;
        access.audit("sync_run.request", "sync_run", run.id, serde_json::json!({ "full": full }), &origin.0).await?;
    }
    access.commit().await?;
    Ok(HttpResponse::Accepted()
        .insert_header(("Location", format!("/v1/tenants/{tenant}/sync-runs/{}", run.id)))
        .json(SyncRunView::from(run)))
}

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
#[get("/v1/tenants/{tenant_id}/sync-runs")]
pub async fn list_sync_runs(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<TenantPath>,
    query: web::Query<ListSyncRuns>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::new(ErrorCode::InvalidQueryParameter, "limit must be between 1 and 100."));
    }
    let access = TenantAccess::begin(&state, &principal, TenantId(path.tenant_id), Permission::ReadSyncedData).await?;
    let runs: Vec<SyncRunView> =
        sync_runs::list(&access.txn, limit, query.before).await?.into_iter().map(Into::into).collect();
    access.commit().await?;
    Ok(HttpResponse::Ok().json(runs))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct SyncRunPath {
    pub tenant_id: uuid::Uuid,
    pub sync_run_id: uuid::Uuid,
}

/// One sync run (every member).
#[utoipa::path(
    tag = "testio",
    params(SyncRunPath),
    responses((status = 200, body = SyncRunView), (status = 404, body = ProblemDetails)),
)]
#[get("/v1/tenants/{tenant_id}/sync-runs/{sync_run_id}")]
pub async fn get_sync_run(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<SyncRunPath>,
) -> Result<HttpResponse, ApiError> {
    let access = TenantAccess::begin(&state, &principal, TenantId(path.tenant_id), Permission::ReadSyncedData).await?;
    let run = sync_runs::find(&access.txn, path.sync_run_id).await?.ok_or_else(|| ApiError::not_found("Sync run"))?;
    access.commit().await?;
    Ok(HttpResponse::Ok().json(SyncRunView::from(run)))
}
