//! `POST /v1/tenants/{tenant_id}/api-keys`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, post, web};
use anyhow::Context;
use entity::audit::AuditAction;
use entity::plans::Limit;
use entity::tenant_users::Role;
use entity::{TenantId, api_keys};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiKeyView;
use crate::auth::permissions::{Permission, may_manage_role};
use crate::auth::principal::Caller;
use crate::auth::secrets;
use crate::auth::tenant_access::TenantAccess;
use crate::body::JsonBody;
use crate::domain::parse_name;
use crate::error::{ApiError, ErrorCode, ProblemDetails};
use crate::idempotency::{self, Answer, IdempotencyKey};
use crate::request_context::ClientOrigin;
use crate::routes::params::TenantPath;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "CI pipeline", "role": "viewer"}))]
pub struct CreateApiKeyRequest {
    /// 1 to 100 characters (trimmed), not only spaces, no control or format characters.
    #[schema(min_length = 1, max_length = 100, pattern = "display-name", example = "CI pipeline")]
    pub name: String,
    /// At most the creator's own role; the key never acts above its creator's current role.
    #[schema(example = "viewer")]
    pub role: Role,
}

/// A new key; `secret` is shown only here. Send it as `Authorization: Bearer <secret>`.
#[derive(Serialize, ToSchema)]
pub struct CreatedApiKey {
    pub api_key: ApiKeyView,
    pub secret: String,
}

/// Create an API key (owner, admin).
#[utoipa::path(
    tag = "api-keys",
    params(TenantPath),
    request_body = CreateApiKeyRequest,
    responses(
        (status = 201, body = CreatedApiKey),
        (status = 402, description = "The plan allows no more active API keys (`plan_limit`)", body = ProblemDetails),
        (status = 403, body = ProblemDetails),
        (status = 404, body = ProblemDetails),
        (status = 422, body = ProblemDetails),
    ),
)]
#[post("")]
pub async fn create_api_key(
    state: web::Data<AppState>,
    caller: Caller,
    origin: ClientOrigin,
    path: web::Path<TenantPath>,
    idempotency_key: IdempotencyKey,
    body: JsonBody<CreateApiKeyRequest>,
) -> Result<HttpResponse, ApiError> {
    let name = parse_name("name", &body.name, 100)?;
    let access = TenantAccess::begin(&state, &caller, TenantId(path.tenant_id), Permission::ManageApiKeys).await?;
    // Only now, once the tenant is known to be the caller's: an API key may not mint credentials.
    let me = access.user()?;
    if !may_manage_role(access.role, body.role) {
        return Err(ApiError::new(ErrorCode::Forbidden, "Only owners can create owner keys."));
    }
    let idempotent = idempotency_key.bind(access.principal(), "create_api_key", body.json());
    if let Some(replay) = idempotency::begin(idempotent.as_ref(), &access.txn).await? {
        return Ok(replay);
    }
    crate::plan_limits::require_room(&state, &access, Limit::ApiKeys).await?;
    let id = secrets::new_api_key_id();
    let (secret, prefix) = secrets::new_api_key(access.txn.tenant_id(), id);
    let new = api_keys::NewApiKey {
        id,
        name: &name,
        prefix,
        secret_hash: secrets::sha256(&secret),
        role: body.role,
        created_by: me,
    };
    let key = api_keys::create(&access.txn, new).await.context("Failed to store the API key")?;
    let metadata = serde_json::json!({ "name": key.name, "role": key.role.as_str(), "prefix": key.prefix });
    access.audit(AuditAction::ApiKeyCreate, key.id, metadata, &origin.0).await?;
    let answer = Answer::json(StatusCode::CREATED, &CreatedApiKey { api_key: key.into(), secret })?;
    let response = idempotency::finish(idempotent.as_ref(), &access.txn, answer).await?;
    access.commit().await?;
    Ok(response)
}
