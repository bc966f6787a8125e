//! `DELETE /v1/tenants/{tenant_id}/members/{user_id}`.

use actix_web::{HttpResponse, delete, web};
use anyhow::Context;
use entity::audit::AuditAction;
use entity::tenant_users::{self, Role};
use entity::{TenantId, UserId, api_keys, invitations};

use super::{ALL_ROLES, forbidden, last_owner};
use crate::auth::permissions::{Permission, may_manage_role};
use crate::auth::principal::Caller;
use crate::auth::tenant_access::TenantAccess;
use crate::error::{ApiError, ProblemDetails};
use crate::request_context::ClientOrigin;
use crate::routes::params::MemberPath;
use crate::state::AppState;

/// Remove a member (owner, admin), or leave the tenant (anyone, for themselves).
#[utoipa::path(
    tag = "members",
    params(MemberPath),
    responses(
        (status = 204),
        (status = 403, body = ProblemDetails),
        (status = 404, body = ProblemDetails),
        (status = 409, description = "Would leave the tenant without an owner", body = ProblemDetails),
    ),
)]
#[delete("/{user_id}")]
pub async fn remove_member(
    state: web::Data<AppState>,
    caller: Caller,
    origin: ClientOrigin,
    path: web::Path<MemberPath>,
) -> Result<HttpResponse, ApiError> {
    let target = UserId(path.user_id);
    let leaving = caller.claimed_user() == Some(target);
    let permission = if leaving { Permission::ReadTenant } else { Permission::ManageMembers };
    let access = TenantAccess::begin(&state, &caller, TenantId(path.tenant_id), permission).await?;
    let member = tenant_users::find_for_user(&access.txn, target)
        .await
        .context("Failed to read the member")?
        .ok_or_else(|| ApiError::not_found("Member"))?;
    if !leaving && !may_manage_role(access.role, member.role) {
        return Err(forbidden("Only owners can remove an owner."));
    }
    if member.role == Role::Owner
        && tenant_users::lock_and_count_owners(&access.txn).await.context("Failed to count the owners")? < 2
    {
        return Err(last_owner());
    }
    let role = member.role;
    tenant_users::remove(&access.txn, member).await.context("Failed to remove the member")?;
    // Nothing the former member set up keeps acting for them: their pending invitations and API keys are revoked.
    let invitations_revoked = invitations::revoke_pending_sent_by(&access.txn, target, &ALL_ROLES)
        .await
        .context("Failed to revoke the member's invitations")?;
    let api_keys_revoked =
        api_keys::revoke_created_by(&access.txn, target).await.context("Failed to revoke the member's API keys")?;
    let metadata = serde_json::json!({
        "role": role.as_str(), "invitations_revoked": invitations_revoked, "api_keys_revoked": api_keys_revoked,
    });
    let action = if leaving { AuditAction::MemberLeave } else { AuditAction::MemberRemove };
    access.audit(action, target, metadata, &origin.0).await?;
    access.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}
