//! `DELETE /v1/tenants/{tenant_id}/invitations/{invitation_id}`.

use actix_web::{HttpResponse, delete, web};
use anyhow::Context;
use chrono::Utc;
use entity::audit::AuditAction;
use entity::{TenantId, invitations};

use crate::auth::permissions::{Permission, may_manage_role};
use crate::auth::principal::Caller;
use crate::auth::tenant_access::TenantAccess;
use crate::error::{ApiError, ErrorCode, ProblemDetails};
use crate::request_context::ClientOrigin;
use crate::routes::params::InvitationPath;
use crate::state::AppState;

/// Revoke a pending invitation (owner, admin).
#[utoipa::path(
    tag = "invitations",
    params(InvitationPath),
    responses((status = 204), (status = 403, body = ProblemDetails), (status = 404, body = ProblemDetails)),
)]
#[delete("/{invitation_id}")]
pub async fn revoke_invitation(
    state: web::Data<AppState>,
    caller: Caller,
    origin: ClientOrigin,
    path: web::Path<InvitationPath>,
) -> Result<HttpResponse, ApiError> {
    let access = TenantAccess::begin(&state, &caller, TenantId(path.tenant_id), Permission::ManageMembers).await?;
    let invitation = invitations::find(&access.txn, path.invitation_id)
        .await
        .context("Failed to read the invitation")?
        .filter(|i| i.is_pending(Utc::now()))
        .ok_or_else(|| ApiError::not_found("Invitation"))?;
    if !may_manage_role(access.role, invitation.role) {
        return Err(ApiError::new(ErrorCode::Forbidden, "Only owners can revoke an owner invitation."));
    }
    let invitation = invitations::revoke(&access.txn, invitation).await.context("Failed to revoke the invitation")?;
    let metadata = serde_json::json!({ "email": invitation.email });
    access.audit(AuditAction::InvitationRevoke, invitation.id, metadata, &origin.0).await?;
    access.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}
