//! `POST /v1/tenants/{tenant_id}/sync-runs`.

use actix_web::{HttpResponse, post, web};
use anyhow::Context;
use entity::TenantId;
use entity::audit::AuditAction;
use entity::sync::schedule;
use entity::sync_runs::{self, SyncTrigger};
use entity::testio_connections::{self, ConnectionStatus};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::permissions::Permission;
use crate::auth::principal::Caller;
use crate::auth::tenant_access::TenantAccess;
use crate::body::JsonBody;
use crate::error::{ApiError, ErrorCode, ProblemDetails};
use crate::idempotency::{self, Answer, IdempotencyKey};
use crate::request_context::ClientOrigin;
use crate::routes::params::TenantPath;
use crate::routes::views::SyncRunView;
use crate::state::AppState;

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
#[post("")]
pub async fn request_sync_run(
    state: web::Data<AppState>,
    caller: Caller,
    origin: ClientOrigin,
    path: web::Path<TenantPath>,
    idempotency_key: IdempotencyKey,
    body: JsonBody<RequestSyncRun>,
) -> Result<HttpResponse, ApiError> {
    let full = body.full;
    let tenant = TenantId(path.tenant_id);
    let access = TenantAccess::begin(&state, &caller, tenant, Permission::TriggerSync).await?;
    let idempotent = idempotency_key.bind(access.principal(), "request_sync_run", body.json());
    if let Some(replay) = idempotency::begin(idempotent.as_ref(), &access.txn).await? {
        return Ok(replay);
    }
    // Only an active connection is synced: a run queued for another would never start.
    let connection = testio_connections::find(&access.txn).await.context("Failed to read the connection")?;
    let refused = match connection.map(|c| c.status) {
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
    let (run, created) = sync_runs::request(&access.txn, SyncTrigger::Api, full, access.user_id)
        .await
        .context("Failed to queue the run")?;
    if created {
        schedule::schedule_now(&access.txn).await.context("Failed to make the tenant due")?;
    }
    // Recorded also when it joins a run already queued (`created: false`): who asked for a sync, and when.
    let metadata = serde_json::json!({ "full": full, "created": created });
    access.audit(AuditAction::SyncRunRequest, run.id, metadata, &origin.0).await?;
    let location = format!("/v1/tenants/{tenant}/sync-runs/{}", run.id);
    let answer = Answer::json(actix_web::http::StatusCode::ACCEPTED, &SyncRunView::from(run))?.header(
        actix_web::http::header::LOCATION,
        actix_web::http::header::HeaderValue::from_str(&location).context("Failed to build the Location header")?,
    );
    let response = idempotency::finish(idempotent.as_ref(), &access.txn, answer).await?;
    access.commit().await?;
    Ok(response)
}
