//! `PUT /v1/tenants/{tenant_id}/testio-connection`.

use actix_web::{HttpResponse, put, web};
use anyhow::Context;
use entity::TenantId;
use entity::audit::AuditAction;
use entity::plans::Limit;
use entity::sync::schedule;
use entity::testio_connections::{self, NewConnection};
use secrecy::SecretString;
use serde::Deserialize;
use testio::client::{Endpoint, FetchError, normalize_base_url};
use utoipa::ToSchema;

use super::ConnectionView;
use crate::auth::permissions::Permission;
use crate::auth::principal::Caller;
use crate::auth::tenant_access::TenantAccess;
use crate::body::JsonBody;
use crate::domain::{TestioToken, invalid};
use crate::error::{ApiError, ErrorCode, ProblemDetails};
use crate::request_context::ClientOrigin;
use crate::routes::params::TenantPath;
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
    /// Seconds between scheduled syncs, at least the plan's minimum (`GET /v1/plans`: `min_sync_interval_secs`; a
    /// shorter one is 402 `plan_limit`); absent: the plan's. At most a week.
    #[schema(minimum = 60, maximum = 604800, example = 3600)]
    pub sync_interval_secs: Option<u64>,
}

fn field(field: &str, message: impl Into<String>) -> ApiError {
    invalid(field, message).into()
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
        (status = 402, description = "The interval is shorter than the plan allows (`plan_limit`)", body = ProblemDetails),
        (status = 403, body = ProblemDetails),
        (status = 404, body = ProblemDetails),
        (status = 422, body = ProblemDetails),
        (status = 502, body = ProblemDetails),
        (status = 503, body = ProblemDetails, description = "Token encryption is not configured on the server"),
    ),
)]
#[put("")]
pub async fn save_connection(
    state: web::Data<AppState>,
    caller: Caller,
    origin: ClientOrigin,
    path: web::Path<TenantPath>,
    body: JsonBody<SaveConnectionRequest>,
) -> Result<HttpResponse, ApiError> {
    let tenant = TenantId(path.tenant_id);
    // Authorize before calling out: the server must not probe tokens or URLs for strangers.
    let access = TenantAccess::begin(&state, &caller, tenant, Permission::ManageTestioConnection).await?;
    if let Some(interval) = body.sync_interval_secs {
        if !(60..=604_800).contains(&interval) {
            return Err(field("sync_interval_secs", "must be between 60 and 604800 seconds"));
        }
        let row = entity::tenants::find(&access.txn, tenant)
            .await
            .context("Failed to read the tenant")?
            .ok_or_else(|| ApiError::not_found("Tenant"))?;
        let plan = state.plans.in_force_for(&row, chrono::Utc::now());
        if !state.plans.allows(plan, Limit::SyncInterval, interval) {
            return Err(crate::plan_limits::exceeded(&state, plan, Limit::SyncInterval, interval));
        }
    }
    access.commit().await?;
    let token = TestioToken::parse("token", &body.token)?.into_secret();
    let base_url = parse_base_url(&state, body.base_url.as_deref())?;
    if !state.token_keys.is_configured() {
        return Err(ApiError::new(
            ErrorCode::ServiceUnavailable,
            "TestIO tokens cannot be stored: the server has no TESTIO_TOKEN_KEYS configured.",
        ));
    }
    verify(&state, &base_url, &token).await?;
    let sealed = state.token_keys.seal(tenant, &token).map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;

    let access = TenantAccess::begin(&state, &caller, tenant, Permission::ManageTestioConnection).await?;
    let replaced = testio_connections::find(&access.txn).await.context("Failed to read the connection")?.is_some();
    let new = NewConnection {
        base_url: base_url.to_string(),
        token: sealed,
        token_last4: testio_connections::last4(&token),
        saved_by: access.user_id,
        sync_interval_secs: body.sync_interval_secs.and_then(|s| i64::try_from(s).ok()),
    };
    let (connection, run) =
        testio_connections::connect(&access.txn, new).await.context("Failed to save the connection")?;
    let next = schedule::due_at(&access.txn, tenant).await.context("Failed to read the schedule")?;
    let action = if replaced { AuditAction::TestioConnectionReplace } else { AuditAction::TestioConnectionCreate };
    let metadata = serde_json::json!({ "base_url": connection.base_url, "token_last4": connection.token_last4 });
    access.audit(action, tenant, metadata, &origin.0).await?;
    access.commit().await?;
    Ok(HttpResponse::Ok().json(ConnectionView::new(connection, next, Some(run))))
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
