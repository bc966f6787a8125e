//! `GET /v1/tenants/{tenant_id}/invitations`.

use actix_web::{HttpResponse, get, web};
use anyhow::Context;
use entity::{TenantId, invitations};

use super::InvitationView;
use crate::auth::permissions::Permission;
use crate::auth::principal::Caller;
use crate::auth::tenant_access::TenantAccess;
use crate::error::{ApiError, ProblemDetails};
use crate::routes::params::TenantPath;
use crate::state::AppState;

/// Pending invitations (owner, admin).
#[utoipa::path(
    tag = "invitations",
    params(TenantPath),
    responses((status = 200, body = Vec<InvitationView>), (status = 403, body = ProblemDetails), (status = 404, body = ProblemDetails)),
)]
#[get("")]
pub async fn list_invitations(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<TenantPath>,
) -> Result<HttpResponse, ApiError> {
    let access = TenantAccess::begin(&state, &caller, TenantId(path.tenant_id), Permission::ManageMembers).await?;
    let pending = invitations::list_pending(&access.txn).await.context("Failed to list the invitations")?;
    access.commit().await?;
    Ok(HttpResponse::Ok().json(pending.into_iter().map(InvitationView::from).collect::<Vec<_>>()))
}
