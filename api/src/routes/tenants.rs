//! `/v1/tenants`: create, list, read, update and delete tenants. The creator becomes the first owner.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use entity::audit::{self, Event};
use entity::audit_logs::Outcome;
use entity::tenant_users::{self, Role};
use entity::{TenantId, TenantTxn, tenants};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::permissions::Permission;
use crate::auth::principal::Principal;
use crate::auth::tenant_access::TenantAccess;
use crate::body::JsonBody;
use crate::domain::{TenantSlug, parse_name};
use crate::error::{ApiError, ErrorCode, ProblemDetails, is_unique_violation};
use crate::request_context::ClientOrigin;
use crate::routes::me::memberships;
use crate::routes::views::{MembershipView, TenantView};
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Acme QA", "slug": "acme-qa"}))]
pub struct CreateTenantRequest {
    /// 1 to 200 characters (trimmed), not only spaces, no control or format characters.
    #[schema(min_length = 1, max_length = 200, pattern = "display-name", example = "Acme QA")]
    pub name: String,
    /// Unique, 1-63 characters of `a-z`, `0-9` and inner `-`.
    #[schema(min_length = 1, max_length = 63, pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", example = "acme-qa")]
    pub slug: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Acme Quality"}))]
pub struct UpdateTenantRequest {
    /// A new name (left as it is when absent).
    #[schema(min_length = 1, max_length = 200, pattern = "display-name", example = "Acme Quality")]
    pub name: Option<String>,
    /// A new slug (left as it is when absent).
    #[schema(
        min_length = 1,
        max_length = 63,
        pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
        example = "acme-quality"
    )]
    pub slug: Option<String>,
}

/// Path of a tenant resource.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct TenantPath {
    pub tenant_id: uuid::Uuid,
}

pub(crate) fn slug_taken(e: sea_orm::DbErr) -> ApiError {
    if is_unique_violation(&e) { ApiError::new(ErrorCode::Conflict, "This slug is taken.") } else { e.into() }
}

/// Create a tenant; the caller becomes its owner.
#[utoipa::path(
    tag = "tenants",
    request_body = CreateTenantRequest,
    responses(
        (status = 201, body = TenantView),
        (status = 409, description = "Slug taken", body = ProblemDetails),
        (status = 422, body = ProblemDetails),
    ),
)]
#[post("/v1/tenants")]
pub async fn create_tenant(
    state: web::Data<AppState>,
    principal: Principal,
    origin: ClientOrigin,
    body: JsonBody<CreateTenantRequest>,
) -> Result<HttpResponse, ApiError> {
    let me = principal.user()?;
    let (name, slug) = match (parse_name("name", &body.name, 200), TenantSlug::parse("slug", &body.slug)) {
        (Ok(n), Ok(s)) => (n, s),
        (n, s) => return Err(ApiError::validation([n.err(), s.err()].into_iter().flatten().collect())),
    };
    let id = TenantId(uuid::Uuid::now_v7());
    let txn = TenantTxn::begin(&state.db, id).await?;
    let tenant = tenants::create_with_id(txn.connection(), id, &name, slug.as_str()).await.map_err(slug_taken)?;
    tenant_users::add(&txn, me.user.id, &me.user.email, Role::Owner).await?;
    audit::record(
        &txn,
        Event {
            actor: entity::audit::Actor::user(me.user.id),
            action: "tenant.create",
            resource_type: "tenant",
            resource_id: Some(id.to_string()),
            outcome: Outcome::Success,
            metadata: serde_json::json!({ "name": name, "slug": slug.as_str() }),
            origin: &origin.0,
        },
    )
    .await?;
    txn.commit().await?;
    Ok(HttpResponse::Created().json(TenantView::from(tenant)))
}

/// The tenants the caller belongs to, with their role in each.
#[utoipa::path(tag = "tenants", responses((status = 200, body = Vec<MembershipView>)))]
#[get("/v1/tenants")]
pub async fn list_tenants(state: web::Data<AppState>, principal: Principal) -> Result<HttpResponse, ApiError> {
    let me = principal.user()?;
    Ok(HttpResponse::Ok().json(memberships(&state, me.user.id).await?))
}

/// One tenant.
#[utoipa::path(
    tag = "tenants",
    params(TenantPath),
    responses((status = 200, body = TenantView), (status = 404, body = ProblemDetails)),
)]
#[get("/v1/tenants/{tenant_id}")]
pub async fn get_tenant(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<TenantPath>,
) -> Result<HttpResponse, ApiError> {
    let access = TenantAccess::begin(&state, &principal, TenantId(path.tenant_id), Permission::ReadTenant).await?;
    let tenant = tenants::find(access.txn.connection(), access.txn.tenant_id())
        .await?
        .ok_or_else(|| ApiError::not_found("Tenant"))?;
    access.commit().await?;
    Ok(HttpResponse::Ok().json(TenantView::from(tenant)))
}

/// Rename a tenant or change its slug (owner, admin).
#[utoipa::path(
    tag = "tenants",
    params(TenantPath),
    request_body = UpdateTenantRequest,
    responses(
        (status = 200, body = TenantView),
        (status = 403, body = ProblemDetails),
        (status = 404, body = ProblemDetails),
        (status = 409, body = ProblemDetails),
        (status = 422, body = ProblemDetails),
    ),
)]
#[patch("/v1/tenants/{tenant_id}")]
pub async fn update_tenant(
    state: web::Data<AppState>,
    principal: Principal,
    origin: ClientOrigin,
    path: web::Path<TenantPath>,
    body: JsonBody<UpdateTenantRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let name = body.name.as_deref().map(|n| parse_name("name", n, 200)).transpose();
    let slug = body.slug.as_deref().map(|s| TenantSlug::parse("slug", s)).transpose();
    let (name, slug) = match (name, slug) {
        (Ok(n), Ok(s)) => (n, s),
        (n, s) => return Err(ApiError::validation([n.err(), s.err()].into_iter().flatten().collect())),
    };
    let access = TenantAccess::begin(&state, &principal, TenantId(path.tenant_id), Permission::UpdateTenant).await?;
    let tenant = tenants::find(access.txn.connection(), access.txn.tenant_id())
        .await?
        .ok_or_else(|| ApiError::not_found("Tenant"))?;
    let metadata = serde_json::json!({
        "name": name.as_ref().map(|n| serde_json::json!({ "from": tenant.name, "to": n })),
        "slug": slug.as_ref().map(|s| serde_json::json!({ "from": tenant.slug, "to": s.as_str() })),
    });
    let updated = tenants::update(access.txn.connection(), tenant, name, slug.map(|s| s.as_str().to_owned()))
        .await
        .map_err(slug_taken)?;
    access.audit("tenant.update", "tenant", updated.id, metadata, &origin.0).await?;
    access.commit().await?;
    Ok(HttpResponse::Ok().json(TenantView::from(updated)))
}

/// Delete a tenant with its memberships, invitations and API keys (owner only). The audit log is kept.
#[utoipa::path(
    tag = "tenants",
    params(TenantPath),
    responses((status = 204), (status = 403, body = ProblemDetails), (status = 404, body = ProblemDetails)),
)]
#[delete("/v1/tenants/{tenant_id}")]
pub async fn delete_tenant(
    state: web::Data<AppState>,
    principal: Principal,
    origin: ClientOrigin,
    path: web::Path<TenantPath>,
) -> Result<HttpResponse, ApiError> {
    let access = TenantAccess::begin(&state, &principal, TenantId(path.tenant_id), Permission::DeleteTenant).await?;
    let tenant = tenants::find(access.txn.connection(), access.txn.tenant_id())
        .await?
        .ok_or_else(|| ApiError::not_found("Tenant"))?;
    access
        .audit(
            "tenant.delete",
            "tenant",
            tenant.id,
            serde_json::json!({ "name": tenant.name, "slug": tenant.slug }),
            &origin.0,
        )
        .await?;
    tenants::delete(access.txn.connection(), tenant).await?;
    access.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}
