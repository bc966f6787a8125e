//! `PATCH /v1/tenants/{tenant_id}`.

use actix_web::{HttpResponse, patch, web};
use anyhow::Context;
use entity::audit::AuditAction;
use entity::{TenantId, tenants};
use serde::Deserialize;
use utoipa::ToSchema;

use super::slug_taken;
use crate::auth::permissions::Permission;
use crate::auth::principal::Caller;
use crate::auth::tenant_access::TenantAccess;
use crate::body::JsonBody;
use crate::domain::{TenantSlug, parse_name};
use crate::error::{ApiError, ProblemDetails};
use crate::request_context::ClientOrigin;
use crate::routes::params::TenantPath;
use crate::routes::views::TenantView;
use crate::state::AppState;

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
#[patch("")]
pub async fn update_tenant(
    state: web::Data<AppState>,
    caller: Caller,
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
    let access = TenantAccess::begin(&state, &caller, TenantId(path.tenant_id), Permission::UpdateTenant).await?;
    let tenant = tenants::find(&access.txn, access.txn.tenant_id())
        .await
        .context("Failed to read the tenant")?
        .ok_or_else(|| ApiError::not_found("Tenant"))?;
    let metadata = serde_json::json!({
        "name": name.as_ref().map(|n| serde_json::json!({ "from": tenant.name, "to": n })),
        "slug": slug.as_ref().map(|s| serde_json::json!({ "from": tenant.slug, "to": s.as_str() })),
    });
    let updated = tenants::update(&access.txn, tenant, name, slug.map(|s| s.as_str().to_owned()))
        .await
        .map_err(|e| slug_taken(e, "Failed to update the tenant"))?;
    access.audit(AuditAction::TenantUpdate, updated.id, metadata, &origin.0).await?;
    access.commit().await?;
    Ok(HttpResponse::Ok().json(TenantView::from(updated)))
}
