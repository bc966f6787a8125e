//! `PATCH /v1/tenants/{tenant_id}/members/{user_id}`.

use actix_web::{HttpResponse, patch, web};
use anyhow::Context;
use entity::audit::AuditAction;
use entity::tenant_users::{self, Role};
use entity::{TenantId, UserId, invitations};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{ALL_ROLES, MemberView, forbidden, last_owner};
use crate::auth::permissions::{Permission, allows, may_manage_role};
use crate::auth::principal::Caller;
use crate::auth::tenant_access::TenantAccess;
use crate::body::JsonBody;
use crate::error::{ApiError, ProblemDetails};
use crate::request_context::ClientOrigin;
use crate::routes::params::MemberPath;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"role": "admin"}))]
pub struct UpdateMemberRequest {
    #[schema(example = "admin")]
    pub role: Role,
}

/// The roles a member with `role` may not invite for.
fn roles_no_longer_grantable(role: Role) -> Vec<Role> {
    ALL_ROLES
        .into_iter()
        .filter(|invited| !allows(role, Permission::ManageMembers) || !may_manage_role(role, *invited))
        .collect()
}

/// Change a member's role (owner, admin; only owners grant or take away the owner role).
#[utoipa::path(
    tag = "members",
    params(MemberPath),
    request_body = UpdateMemberRequest,
    responses(
        (status = 200, body = MemberView),
        (status = 403, body = ProblemDetails),
        (status = 404, body = ProblemDetails),
        (status = 409, description = "Would leave the tenant without an owner", body = ProblemDetails),
    ),
)]
#[patch("/{user_id}")]
pub async fn update_member(
    state: web::Data<AppState>,
    caller: Caller,
    origin: ClientOrigin,
    path: web::Path<MemberPath>,
    body: JsonBody<UpdateMemberRequest>,
) -> Result<HttpResponse, ApiError> {
    let access = TenantAccess::begin(&state, &caller, TenantId(path.tenant_id), Permission::ManageMembers).await?;
    let member = tenant_users::find_for_user(&access.txn, UserId(path.user_id))
        .await
        .context("Failed to read the member")?
        .ok_or_else(|| ApiError::not_found("Member"))?;
    let (from, to) = (member.role, body.role);
    if !may_manage_role(access.role, from) || !may_manage_role(access.role, to) {
        return Err(forbidden("Only owners can grant the owner role or change an owner."));
    }
    if from == Role::Owner
        && to != Role::Owner
        && tenant_users::lock_and_count_owners(&access.txn).await.context("Failed to count the owners")? < 2
    {
        return Err(last_owner());
    }
    let updated = tenant_users::set_role(&access.txn, member, to).await.context("Failed to change the role")?;
    // Invitations this member sent for roles they can no longer grant die with the demotion. (Their API keys are
    // capped by their current role at every request, so they need nothing here.)
    let invitations_revoked =
        invitations::revoke_pending_sent_by(&access.txn, updated.user_id, &roles_no_longer_grantable(to))
            .await
            .context("Failed to revoke the member's invitations")?;
    let metadata = serde_json::json!({
        "from": from.as_str(), "to": to.as_str(), "invitations_revoked": invitations_revoked,
    });
    access.audit(AuditAction::MemberRoleChange, updated.user_id, metadata, &origin.0).await?;
    access.commit().await?;
    Ok(HttpResponse::Ok().json(MemberView::from(updated)))
}
