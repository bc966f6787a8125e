//! `POST /v1/invitations/accept`.

use actix_web::{HttpResponse, post, web};
use anyhow::Context;
use chrono::Utc;
use entity::audit::{self, Actor, AuditAction, Event};
use entity::{TenantTxn, invitations, tenant_users, tenants, users};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::permissions::{Permission, allows, may_manage_role};
use crate::auth::principal::Principal;
use crate::auth::secrets;
use crate::body::JsonBody;
use crate::domain::Email;
use crate::error::{ApiError, ErrorCode, ProblemDetails};
use crate::request_context::ClientOrigin;
use crate::routes::views::MembershipView;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"token": "inv_0192f8a1c2d37e4f8a9b0c1d2e3f4a5b_9Ql3eZ0mUuUoM3k4fH2b6R8pQ1xXvW7yTz5aC0dE4gI"}))]
pub struct AcceptInvitationRequest {
    /// The token from the invitation (`inv_…`).
    #[schema(example = "inv_0192f8a1c2d37e4f8a9b0c1d2e3f4a5b_9Ql3eZ0mUuUoM3k4fH2b6R8pQ1xXvW7yTz5aC0dE4gI")]
    pub token: String,
}

/// Whether whoever sent `invitation` could send it now: still an active member whose role may invite for its role. An
/// invitation is only as good as its sender's rights at the moment it is accepted.
async fn inviter_may_still_grant(txn: &TenantTxn, invitation: &invitations::Model) -> Result<bool, ApiError> {
    let Some(inviter) = invitation.invited_by else {
        return Ok(false);
    };
    let Some(membership) =
        tenant_users::find_for_user(txn, inviter).await.context("Failed to read the inviter's membership")?
    else {
        return Ok(false);
    };
    let active =
        users::find(txn, inviter).await.context("Failed to read the inviter")?.is_some_and(|u| u.disabled_at.is_none());
    Ok(active
        && allows(membership.role, Permission::ManageMembers)
        && may_manage_role(membership.role, invitation.role))
}

/// Accept an invitation as the signed-in user, whose email must be the invited one.
#[utoipa::path(
    tag = "invitations",
    request_body = AcceptInvitationRequest,
    responses(
        (status = 200, body = MembershipView),
        (status = 403, description = "The invitation is for another email, or the email is not verified yet (`email_not_verified`)", body = ProblemDetails),
        (status = 404, description = "Unknown or revoked invitation", body = ProblemDetails),
        (status = 409, description = "Already used, or already a member", body = ProblemDetails),
        (status = 410, description = "Expired, or its sender can no longer grant the role", body = ProblemDetails),
    ),
)]
#[post("/accept")]
pub async fn accept_invitation(
    state: web::Data<AppState>,
    principal: Principal,
    origin: ClientOrigin,
    body: JsonBody<AcceptInvitationRequest>,
) -> Result<HttpResponse, ApiError> {
    let me = principal.user()?;
    let token = body.token.trim();
    let not_found = || ApiError::not_found("Invitation");
    let tenant_id = secrets::invitation_tenant(token).ok_or_else(not_found)?;
    let txn = TenantTxn::begin(&state.db, tenant_id).await.context("Failed to begin the tenant transaction")?;
    let invitation = invitations::find_by_token_hash_for_update(&txn, &secrets::sha256(token))
        .await
        .context("Failed to read the invitation")?
        .filter(|i| i.revoked_at.is_none())
        .ok_or_else(not_found)?;
    if invitation.accepted_at.is_some() {
        return Err(ApiError::new(ErrorCode::Conflict, "This invitation has already been used."));
    }
    if invitation.expires_at <= Utc::now() {
        return Err(ApiError::new(ErrorCode::Gone, "This invitation has expired; ask for a new one."));
    }
    let invited = Email::parse("email", &invitation.email).map_err(|_| not_found())?;
    if !invited.matches(&me.user.email) {
        return Err(ApiError::new(ErrorCode::Forbidden, "This invitation was sent to another email address."));
    }
    if me.user.email_verified_at.is_none() {
        return Err(ApiError::new(
            ErrorCode::EmailNotVerified,
            "Verify your email address before accepting an invitation: follow the link mailed to you when you \
             registered, or ask for a new one with POST /v1/me/verification-email.",
        ));
    }
    if !inviter_may_still_grant(&txn, &invitation).await? {
        return Err(ApiError::new(
            ErrorCode::Gone,
            "This invitation is no longer valid: the member who sent it can no longer grant this role. Ask for a new \
             one.",
        ));
    }
    if tenant_users::find_for_user(&txn, me.user.id).await.context("Failed to read the membership")?.is_some() {
        return Err(ApiError::new(ErrorCode::Conflict, "You are already a member of this tenant."));
    }
    let role = invitation.role;
    let member = tenant_users::add(&txn, me.user.id, &me.user.email, role).await.context("Failed to add the member")?;
    let invitation = invitations::mark_accepted(&txn, invitation, me.user.id)
        .await
        .context("Failed to mark the invitation accepted")?;
    let event = Event::new(AuditAction::InvitationAccept, Actor::user(me.user.id))
        .on(invitation.id)
        .metadata(serde_json::json!({ "role": role.as_str() }));
    audit::record(&txn, event, &origin.0).await.context("Failed to write the audit entry")?;
    let tenant = tenants::find(&txn, tenant_id).await.context("Failed to read the tenant")?.ok_or_else(not_found)?;
    txn.commit().await.context("Failed to commit")?;
    Ok(HttpResponse::Ok().json(MembershipView { tenant: tenant.into(), role: member.role }))
}
