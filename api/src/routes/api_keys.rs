//! `/v1/tenants/{tenant_id}/api-keys`: credentials for machine clients. The secret is shown once; only its hash and a
//! visible prefix are kept. A key acts with its own role, never above its creator's.

use actix_web::{HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use entity::tenant_users::Role;
use entity::{TenantId, UserId, api_keys};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::permissions::{Permission, may_manage_role};
use crate::auth::principal::Principal;
use crate::auth::secrets;
use crate::auth::tenant_access::{TenantAccess, role_name};
use crate::body::JsonBody;
use crate::domain::parse_name;
use crate::error::{ApiError, ErrorCode, ProblemDetails};
use crate::request_context::ClientOrigin;
use crate::routes::tenants::TenantPath;
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: uuid::Uuid,
    pub name: String,
    /// The first characters of the key, to recognise it.
    #[schema(example = "thk_3f9a0c41d27e")]
    pub prefix: String,
    pub role: Role,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<api_keys::Model> for ApiKeyView {
    fn from(k: api_keys::Model) -> Self {
        Self {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            role: k.role,
            created_by: k.created_by,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
        }
    }
}

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

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ApiKeyPath {
    pub tenant_id: uuid::Uuid,
    pub api_key_id: uuid::Uuid,
}

/// Create an API key (owner, admin).
#[utoipa::path(
    tag = "api-keys",
    params(TenantPath),
    request_body = CreateApiKeyRequest,
    responses(
        (status = 201, body = CreatedApiKey),
        (status = 403, body = ProblemDetails),
        (status = 404, body = ProblemDetails),
        (status = 422, body = ProblemDetails),
    ),
)]
#[post("/v1/tenants/{tenant_id}/api-keys")]
pub async fn create_api_key(
    state: web::Data<AppState>,
    principal: Principal,
    origin: ClientOrigin,
    path: web::Path<TenantPath>,
    body: JsonBody<CreateApiKeyRequest>,
) -> Result<HttpResponse, ApiError> {
    let name = parse_name("name", &body.name, 100).map_err(|e| ApiError::validation(vec![e]))?;
    let access = TenantAccess::begin(&state, &principal, TenantId(path.tenant_id), Permission::ManageApiKeys).await?;
    // Only now, once the tenant is known to be the caller's: an API key may not mint credentials.
    let me = principal.user()?;
    if !may_manage_role(access.role, body.role) {
        return Err(ApiError::new(ErrorCode::Forbidden, "Only owners can create owner keys."));
    }
    let id = secrets::new_api_key_id();
    let (secret, prefix) = secrets::new_api_key(access.txn.tenant_id(), id);
    let key = api_keys::create(
        &access.txn,
        api_keys::NewApiKey {
            id,
            name: &name,
            prefix,
            secret_hash: secrets::sha256(&secret),
            role: body.role,
            created_by: me.user.id,
        },
    )
    .await?;
    access
        .audit(
            "api_key.create",
            "api_key",
            key.id,
            serde_json::json!({ "name": key.name, "role": role_name(key.role), "prefix": key.prefix }),
            &origin.0,
        )
        .await?;
    access.commit().await?;
    Ok(HttpResponse::Created().json(CreatedApiKey { api_key: key.into(), secret }))
}

/// Active API keys (owner, admin).
#[utoipa::path(
    tag = "api-keys",
    params(TenantPath),
    responses((status = 200, body = Vec<ApiKeyView>), (status = 403, body = ProblemDetails), (status = 404, body = ProblemDetails)),
)]
#[get("/v1/tenants/{tenant_id}/api-keys")]
pub async fn list_api_keys(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<TenantPath>,
) -> Result<HttpResponse, ApiError> {
    let access = TenantAccess::begin(&state, &principal, TenantId(path.tenant_id), Permission::ManageApiKeys).await?;
    let keys: Vec<ApiKeyView> = api_keys::list_active(&access.txn).await?.into_iter().map(Into::into).collect();
    access.commit().await?;
    Ok(HttpResponse::Ok().json(keys))
}

/// Revoke an API key (owner, admin); it stops working at once.
#[utoipa::path(
    tag = "api-keys",
    params(ApiKeyPath),
    responses((status = 204), (status = 403, body = ProblemDetails), (status = 404, body = ProblemDetails)),
)]
#[delete("/v1/tenants/{tenant_id}/api-keys/{api_key_id}")]
pub async fn revoke_api_key(
    state: web::Data<AppState>,
    principal: Principal,
    origin: ClientOrigin,
    path: web::Path<ApiKeyPath>,
) -> Result<HttpResponse, ApiError> {
    let access = TenantAccess::begin(&state, &principal, TenantId(path.tenant_id), Permission::ManageApiKeys).await?;
    let key = api_keys::find(&access.txn, path.api_key_id)
        .await?
        .filter(|k| k.revoked_at.is_none())
        .ok_or_else(|| ApiError::not_found("API key"))?;
    if !may_manage_role(access.role, key.role) {
        return Err(ApiError::new(ErrorCode::Forbidden, "Only owners can revoke owner keys."));
    }
    let key = api_keys::revoke(&access.txn, key).await?;
    access
        .audit(
            "api_key.revoke",
            "api_key",
            key.id,
            serde_json::json!({ "name": key.name, "prefix": key.prefix }),
            &origin.0,
        )
        .await?;
    access.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}
