//! `GET /v1/tenants/{tenant_id}/members`.

use actix_web::{HttpResponse, get, web};
use anyhow::Context;
use entity::{TenantId, tenant_users};

use super::MemberView;
use crate::auth::permissions::Permission;
use crate::auth::principal::Caller;
use crate::auth::tenant_access::TenantAccess;
use crate::error::{ApiError, ProblemDetails};
use crate::routes::params::TenantPath;
use crate::state::AppState;

/// The members of a tenant.
#[utoipa::path(
    tag = "members",
    params(TenantPath),
    responses((status = 200, body = Vec<MemberView>), (status = 404, body = ProblemDetails)),
)]
#[get("")]
pub async fn list_members(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<TenantPath>,
) -> Result<HttpResponse, ApiError> {
    let access = TenantAccess::begin(&state, &caller, TenantId(path.tenant_id), Permission::ReadTenant).await?;
    let members = tenant_users::list(&access.txn).await.context("Failed to list the members")?;
    access.commit().await?;
    Ok(HttpResponse::Ok().json(members.into_iter().map(MemberView::from).collect::<Vec<_>>()))
}
