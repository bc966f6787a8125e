//! Invitations: `/v1/tenants/{tenant_id}/invitations` (create, list, revoke) and `POST /v1/invitations/accept`. The
//! token is shown once (in the response and the mail), stored hashed, expires, works once, and only for the invited
//! email.

use actix_web::{HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use entity::audit::{self, Event};
use entity::audit_logs::Outcome;
use entity::tenant_users::{self, Role};
use entity::{TenantId, TenantTxn, UserId, invitations, tenants, users};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::permissions::{Permission, allows, may_manage_role};
use crate::auth::principal::Principal;
use crate::auth::secrets;
use crate::auth::tenant_access::{TenantAccess, role_name};
use crate::body::JsonBody;
use crate::domain::Email;
use crate::error::{ApiError, ErrorCode, ProblemDetails};
use crate::mailer;
use crate::request_context::ClientOrigin;
use crate::routes::tenants::TenantPath;
use crate::routes::views::MembershipView;
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct InvitationView {
    pub id: uuid::Uuid,
    pub email: String,
    pub role: Role,
    pub invited_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl From<invitations::Model> for InvitationView {
    fn from(i: invitations::Model) -> Self {
        Self {
            id: i.id,
            email: i.email,
            role: i.role,
            invited_by: i.invited_by,
            created_at: i.created_at,
            expires_at: i.expires_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "bob@example.com", "role": "member"}))]
pub struct CreateInvitationRequest {
    /// Only this address can accept, once it is verified.
    #[schema(format = Email, min_length = 3, max_length = 254, example = "bob@example.com")]
    pub email: String,
    #[schema(example = "member")]
    pub role: Role,
}

/// A new invitation; `token` and `accept_url` are shown only here.
#[derive(Serialize, ToSchema)]
pub struct CreatedInvitation {
    pub invitation: InvitationView,
    pub token: String,
    pub accept_url: String,
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct InvitationPath {
    pub tenant_id: uuid::Uuid,
    pub invitation_id: uuid::Uuid,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"token": "inv_0192f8a1c2d37e4f8a9b0c1d2e3f4a5b_9Ql3eZ0mUuUoM3k4fH2b6R8pQ1xXvW7yTz5aC0dE4gI"}))]
pub struct AcceptInvitationRequest {
    /// The token from the invitation (`inv_…`).
    #[schema(example = "inv_0192f8a1c2d37e4f8a9b0c1d2e3f4a5b_9Ql3eZ0mUuUoM3k4fH2b6R8pQ1xXvW7yTz5aC0dE4gI")]
    pub token: String,
}

/// Invite someone by email (owner, admin; only owners invite owners).
#[utoipa::path(
    tag = "invitations",
    params(TenantPath),
    request_body = CreateInvitationRequest,
    responses(
        (status = 201, body = CreatedInvitation),
        (status = 403, body = ProblemDetails),
        (status = 404, body = ProblemDetails),
        (status = 422, body = ProblemDetails),
    ),
)]
#[post("/v1/tenants/{tenant_id}/invitations")]
pub async fn create_invitation(
    state: web::Data<AppState>,
    principal: Principal,
    origin: ClientOrigin,
    path: web::Path<TenantPath>,
    body: JsonBody<CreateInvitationRequest>,
) -> Result<HttpResponse, ApiError> {
    let email = Email::parse("email", &body.email).map_err(|e| ApiError::validation(vec![e]))?;
    let access = TenantAccess::begin(&state, &principal, TenantId(path.tenant_id), Permission::ManageMembers).await?;
    // Only now, once the tenant is known to be the caller's: an API key may not mint credentials.
    let me = principal.user()?;
    if !may_manage_role(access.role, body.role) {
        return Err(ApiError::new(ErrorCode::Forbidden, "Only owners can invite owners."));
    }
    let tenant = tenants::find(access.txn.connection(), access.txn.tenant_id())
        .await?
        .ok_or_else(|| ApiError::not_found("Tenant"))?;
    let token = secrets::new_invitation_token(tenant.id);
    let expires_at = Utc::now() + chrono::Duration::seconds(state.settings.invitation_ttl_secs as i64);
    let invitation = invitations::create(
        &access.txn,
        invitations::NewInvitation {
            id: uuid::Uuid::now_v7(),
            email: email.as_str(),
            role: body.role,
            token_hash: secrets::sha256(&token),
            invited_by: me.user.id,
            expires_at,
        },
    )
    .await?;
    access
        .audit(
            "invitation.create",
            "invitation",
            invitation.id,
            serde_json::json!({ "email": email.as_str(), "role": role_name(body.role) }),
            &origin.0,
        )
        .await?;
    access.commit().await?;
    let accept_url = format!("{}/invitations/accept?token={token}", state.settings.public_url.trim_end_matches('/'));
    let mail = mailer::invitation(email.as_str(), &tenant.name, role_name(body.role), &accept_url, invitation.id);
    // A mail that cannot be sent is logged by the mailer (with the invitation id, never the link); the link is in
    // the response.
    let _ = state.mailer.send(mail).await;
    Ok(HttpResponse::Created().json(CreatedInvitation { invitation: invitation.into(), token, accept_url }))
}

/// Pending invitations (owner, admin).
#[utoipa::path(
    tag = "invitations",
    params(TenantPath),
    responses((status = 200, body = Vec<InvitationView>), (status = 403, body = ProblemDetails), (status = 404, body = ProblemDetails)),
)]
#[get("/v1/tenants/{tenant_id}/invitations")]
pub async fn list_invitations(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<TenantPath>,
) -> Result<HttpResponse, ApiError> {
    let access = TenantAccess::begin(&state, &principal, TenantId(path.tenant_id), Permission::ManageMembers).await?;
    let list: Vec<InvitationView> = invitations::list_pending(&access.txn).await?.into_iter().map(Into::into).collect();
    access.commit().await?;
    Ok(HttpResponse::Ok().json(list))
}

/// Revoke a pending invitation (owner, admin).
#[utoipa::path(
    tag = "invitations",
    params(InvitationPath),
    responses((status = 204), (status = 403, body = ProblemDetails), (status = 404, body = ProblemDetails)),
)]
#[delete("/v1/tenants/{tenant_id}/invitations/{invitation_id}")]
pub async fn revoke_invitation(
    state: web::Data<AppState>,
    principal: Principal,
    origin: ClientOrigin,
    path: web::Path<InvitationPath>,
) -> Result<HttpResponse, ApiError> {
    let access = TenantAccess::begin(&state, &principal, TenantId(path.tenant_id), Permission::ManageMembers).await?;
    let invitation = invitations::find(&access.txn, path.invitation_id)
        .await?
        .filter(|i| i.is_pending(Utc::now()))
        .ok_or_else(|| ApiError::not_found("Invitation"))?;
    if !may_manage_role(access.role, invitation.role) {
        return Err(ApiError::new(ErrorCode::Forbidden, "Only owners can revoke an owner invitation."));
    }
    let invitation = invitations::revoke(&access.txn, invitation).await?;
    access
        .audit(
            "invitation.revoke",
            "invitation",
            invitation.id,
            serde_json::json!({ "email": invitation.email }),
            &origin.0,
        )
        .await?;
    access.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Whether whoever sent `invitation` could send it now: still an active member whose role may invite for its role. An
/// invitation is only as good as its sender's rights at the moment it is accepted.
async fn inviter_may_still_grant(txn: &TenantTxn, invitation: &invitations::Model) -> Result<bool, ApiError> {
    let Some(inviter) = invitation.invited_by else {
        return Ok(false);
    };
    let Some(membership) = tenant_users::find_for_user(txn, inviter).await? else {
        return Ok(false);
    };
    let active = users::find(txn.connection(), inviter).await?.is_some_and(|u| u.disabled_at.is_none());
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
#[post("/v1/invitations/accept")]
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
    let txn = TenantTxn::begin(&state.db, tenant_id).await?;
    let invitation = invitations::find_by_token_hash_for_update(&txn, &secrets::sha256(token))
        .await?
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
    if tenant_users::find_for_user(&txn, me.user.id).await?.is_some() {
        return Err(ApiError::new(ErrorCode::Conflict, "You are already a member of this tenant."));
    }
    let role = invitation.role;
    let member = tenant_users::add(&txn, me.user.id, &me.user.email, role).await?;
    let invitation = invitations::mark_accepted(&txn, invitation, me.user.id).await?;
    audit::record(
        &txn,
        Event {
            actor: entity::audit::Actor::user(me.user.id),
            action: "invitation.accept",
            resource_type: "invitation",
            resource_id: Some(invitation.id.to_string()),
            outcome: Outcome::Success,
            metadata: serde_json::json!({ "role": role_name(role) }),
            origin: &origin.0,
        },
    )
    .await?;
    let tenant = tenants::find(txn.connection(), tenant_id).await?.ok_or_else(not_found)?;
    txn.commit().await?;
    Ok(HttpResponse::Ok().json(MembershipView { tenant: tenant.into(), role: member.role }))
}
