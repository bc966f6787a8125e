//! `/v1/tenants/{tenant_id}/testio-connection`: the tenant's TestIO Customer API token (owner, admin).
//!
//! Saving checks the token against TestIO first (outside any transaction), then stores it sealed with AES-256-GCM;
//! it is never returned (only its last four characters) nor logged. Saving makes the tenant due for a sync at once;
//! deleting takes it off the schedule. The mirrored data stays in both cases: it belongs to the tenant, not to a token.

use actix_web::{HttpResponse, delete, get, put, web};
use chrono::{DateTime, Utc};
use entity::testio_connections::{self, ConnectionStatus, NewConnection};
use entity::{TenantId, sync_runs, sync_schedule};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use worker::testio::client::{Endpoint, FetchError, normalize_base_url};

use crate::auth::permissions::Permission;
use crate::auth::principal::Principal;
use crate::auth::tenant_access::TenantAccess;
use crate::body::JsonBody;
use crate::domain::invalid;
use crate::error::{ApiError, ErrorCode, ProblemDetails};
use crate::request_context::ClientOrigin;
use crate::routes::sync_runs::SyncRunView;
use crate::routes::tenants::TenantPath;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"token": "0123456789abcdef0123456789abcdef", "base_url": "https://api.test.io/customer/v2/"}))]
pub struct SaveConnectionRequest {
    /// The TestIO Customer API token. Write-only.
    #[schema(min_length = 8, max_length = 512, pattern = "^[!-~]+$", example = "0123456789abcdef0123456789abcdef")]
    pub token: String,
    /// Base URL of the Customer API; defaults to TestIO's.
    #[schema(max_length = 500, pattern = "^https?://", example = "https://api.test.io/customer/v2/")]
    pub base_url: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ConnectionView {
    pub base_url: String,
    /// The last four characters of the token, to recognise it; the token itself is never returned.
    #[schema(example = "cdef")]
    pub token_last4: String,
    pub status: ConnectionStatus,
    /// Why the connection is not syncing: the token was refused, or the base URL is no longer allowed.
    pub status_reason: Option<String>,
    /// When TestIO last accepted the token on save.
    pub verified_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The end of the last full reconcile.
    pub last_reconcile_at: Option<DateTime<Utc>>,
    /// When the next sync is due; `null` while the connection is not `active`.
    pub next_sync_at: Option<DateTime<Utc>>,
    /// The latest sync run, if any.
    pub last_run: Option<SyncRunView>,
}

fn view(c: testio_connections::Model, next: Option<DateTime<Utc>>, last: Option<sync_runs::Model>) -> ConnectionView {
    ConnectionView {
        base_url: c.base_url,
        token_last4: c.token_last4,
        status: c.status,
        status_reason: c.status_reason,
        verified_at: c.verified_at,
        created_at: c.created_at,
        updated_at: c.updated_at,
        last_reconcile_at: c.last_reconcile_at,
        next_sync_at: next,
        last_run: last.map(Into::into),
    }
}

fn field(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::validation(vec![invalid(field, message)])
}

/// The token as TestIO issues it: printable ASCII without spaces, of a sane length.
fn parse_token(raw: &str) -> Result<SecretString, ApiError> {
    let token = raw.trim();
    if token.len() < 8 || token.len() > 512 {
        return Err(field("token", "must be 8 to 512 characters"));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(field("token", "must be printable ASCII without spaces"));
    }
    Ok(SecretString::from(token))
}

/// The base URL to save, checked against `TESTIO_ALLOWED_BASE_URLS` before the token is sent anywhere (the default
/// one too: the two settings are separate).
fn parse_base_url(state: &AppState, raw: Option<&str>) -> Result<url::Url, ApiError> {
    let raw = raw.unwrap_or(&state.settings.testio_base_url);
    let url = normalize_base_url(raw).map_err(|e| field("base_url", e))?;
    if !state.testio_allowlist.permits(&url) {
        let allowed = &state.testio_allowlist;
        return Err(field("base_url", format!("must be one of these base URLs or a path under one: {allowed}")));
    }
    Ok(url)
}

/// Connect TestIO, or replace the token (owner, admin).
///
/// The token is checked against TestIO (`GET /products`) before anything is stored: a token TestIO refuses gives
/// 422, TestIO being unreachable gives 502, and in both cases nothing changes. A base URL outside the server's
/// allowed base URLs gives 422 before any request. Saving also revives a connection that stopped syncing (its token
/// was refused, or its base URL is no longer allowed).
#[utoipa::path(
    tag = "testio",
    params(TenantPath),
    request_body = SaveConnectionRequest,
    responses(
        (status = 200, body = ConnectionView),
        (status = 403, body = ProblemDetails),
        (status = 404, body = ProblemDetails),
        (status = 422, body = ProblemDetails),
        (status = 502, body = ProblemDetails),
        (status = 503, body = ProblemDetails, description = "Token encryption is not configured on the server"),
    ),
)]
#[put("/v1/tenants/{tenant_id}/testio-connection")]
pub async fn save_connection(
    state: web::Data<AppState>,
    principal: Principal,
    origin: ClientOrigin,
    path: web::Path<TenantPath>,
    body: JsonBody<SaveConnectionRequest>,
) -> Result<HttpResponse, ApiError> {
    let tenant = TenantId(path.tenant_id);
    // Authorize before calling out: the server must not probe tokens or URLs for strangers.
    TenantAccess::begin(&state, &principal, tenant, Permission::ManageTestioConnection).await?.commit().await?;
    let token = parse_token(&body.token)?;
    let base_url = parse_base_url(&state, body.base_url.as_deref())?;
    if !state.token_keys.is_configured() {
        return Err(ApiError::new(
            ErrorCode::ServiceUnavailable,
            "TestIO tokens cannot be stored: the server has no TESTIO_TOKEN_KEYS configured.",
        ));
    }
    verify(&state, &base_url, &token).await?;
    let sealed = state.token_keys.seal(tenant, &token).map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;

    let access = TenantAccess::begin(&state, &principal, tenant, Permission::ManageTestioConnection).await?;
    let replaced = testio_connections::find(&access.txn).await?.is_some();
    let new = NewConnection {
        base_url: base_url.to_string(),
        token: sealed,
        token_last4: testio_connections::last4(&token),
        saved_by: access.user_id,
    };
    let (connection, run) = testio_connections::connect(&access.txn, new).await?;
    let next = sync_schedule::due_at(access.txn.connection(), tenant).await?;
    access
        .audit(
            if replaced { "testio_connection.replace" } else { "testio_connection.create" },
            "testio_connection",
            tenant,
            serde_json::json!({ "base_url": connection.base_url, "token_last4": connection.token_last4 }),
            &origin.0,
        )
        .await?;
    access.commit().await?;
    Ok(HttpResponse::Ok().json(view(connection, next, Some(run))))
}

/// One `GET /products` with the token: accepted, refused, or TestIO unusable.
async fn verify(state: &AppState, base_url: &url::Url, token: &SecretString) -> Result<(), ApiError> {
    let endpoint = Endpoint { base_url: base_url.clone(), token: token.clone() };
    match state.testio.verify_token(&endpoint).await {
        Ok(_) => Ok(()),
        Err(FetchError::Unauthorized | FetchError::NotFound(403)) => {
            Err(field("token", "TestIO refused this token (it may be mistyped or revoked)"))
        }
        Err(FetchError::NotFound(_)) => Err(field("base_url", "is not a TestIO Customer API (GET products gave 404)")),
        Err(e) => {
            tracing::warn!(error = %e, "TestIO token check failed");
            Err(ApiError::new(
                ErrorCode::UpstreamUnavailable,
                format!("The token could not be checked: {e}. Nothing was saved; try again later."),
            ))
        }
    }
}

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
#[get("/v1/tenants/{tenant_id}/testio-connection")]
pub async fn get_connection(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<TenantPath>,
) -> Result<HttpResponse, ApiError> {
    let tenant = TenantId(path.tenant_id);
    let access = TenantAccess::begin(&state, &principal, tenant, Permission::ManageTestioConnection).await?;
    let connection =
        testio_connections::find(&access.txn).await?.ok_or_else(|| ApiError::not_found("TestIO connection"))?;
    let next = sync_schedule::due_at(access.txn.connection(), tenant).await?;
    let last = sync_runs::list(&access.txn, 1, None).await?.into_iter().next();
    access.commit().await?;
    Ok(HttpResponse::Ok().json(view(connection, next, last)))
}

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
#[delete("/v1/tenants/{tenant_id}/testio-connection")]
pub async fn delete_connection(
    state: web::Data<AppState>,
    principal: Principal,
    origin: ClientOrigin,
    path: web::Path<TenantPath>,
) -> Result<HttpResponse, ApiError> {
    let tenant = TenantId(path.tenant_id);
    let access = TenantAccess::begin(&state, &principal, tenant, Permission::ManageTestioConnection).await?;
    if !testio_connections::delete(&access.txn).await? {
        return Err(ApiError::not_found("TestIO connection"));
    }
    sync_schedule::unschedule(access.txn.connection(), tenant).await?;
    access.audit("testio_connection.delete", "testio_connection", tenant, serde_json::json!({}), &origin.0).await?;
    access.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}
