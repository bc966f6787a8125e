//! `POST /v1/tenants/{tenant_id}/invitations`.

use actix_web::{HttpResponse, post, web};
use anyhow::Context;
use chrono::Utc;
use entity::audit::AuditAction;
use entity::plans::Limit;
use entity::tenant_users::Role;
use entity::{TenantId, invitations, tenants};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::InvitationView;
use crate::auth::permissions::{Permission, may_manage_role};
use crate::auth::principal::Caller;
use crate::auth::secrets;
use crate::auth::tenant_access::TenantAccess;
use crate::body::JsonBody;
use crate::domain::Email;
use crate::error::{ApiError, ErrorCode, ProblemDetails};
use crate::idempotency::{self, Answer, IdempotencyKey};
use crate::mailer;
use crate::request_context::ClientOrigin;
use crate::routes::params::TenantPath;
use crate::state::AppState;

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

/// Invite someone by email (owner, admin; only owners invite owners).
#[utoipa::path(
    tag = "invitations",
    params(TenantPath),
    request_body = CreateInvitationRequest,
    responses(
        (status = 201, body = CreatedInvitation),
        (status = 402, description = "The plan allows no more seats, counting pending invitations (`plan_limit`)", body = ProblemDetails),
        (status = 403, body = ProblemDetails),
        (status = 404, body = ProblemDetails),
        (status = 422, body = ProblemDetails),
    ),
)]
#[post("")]
pub async fn create_invitation(
    state: web::Data<AppState>,
    caller: Caller,
    origin: ClientOrigin,
    path: web::Path<TenantPath>,
    idempotency_key: IdempotencyKey,
    body: JsonBody<CreateInvitationRequest>,
) -> Result<HttpResponse, ApiError> {
    let email = Email::parse("email", &body.email)?;
    let access = TenantAccess::begin(&state, &caller, TenantId(path.tenant_id), Permission::ManageMembers).await?;
    // Only now, once the tenant is known to be the caller's: an API key may not mint credentials.
    let me = access.user()?;
    if !may_manage_role(access.role, body.role) {
        return Err(ApiError::new(ErrorCode::Forbidden, "Only owners can invite owners."));
    }
    let idempotent = idempotency_key.bind(access.principal(), "create_invitation", body.json());
    if let Some(replay) = idempotency::begin(idempotent.as_ref(), &access.txn).await? {
        return Ok(replay);
    }
    let tenant = tenants::find(&access.txn, access.txn.tenant_id())
        .await
        .context("Failed to read the tenant")?
        .ok_or_else(|| ApiError::not_found("Tenant"))?;
    crate::plan_limits::require_room(&state, &access, Limit::Seats).await?;
    let token = secrets::new_invitation_token(tenant.id);
    let expires_at = Utc::now() + chrono::Duration::seconds(state.settings.invitation_ttl_secs as i64);
    let new = invitations::NewInvitation {
        id: uuid::Uuid::now_v7(),
        email: email.as_str(),
        role: body.role,
        token_hash: secrets::sha256(&token),
        invited_by: me,
        expires_at,
    };
    let invitation = invitations::create(&access.txn, new).await.context("Failed to store the invitation")?;
    let metadata = serde_json::json!({ "email": email.as_str(), "role": body.role.as_str() });
    access.audit(AuditAction::InvitationCreate, invitation.id, metadata, &origin.0).await?;
    let accept_url = format!("{}/invitations/accept?token={token}", state.settings.public_url.trim_end_matches('/'));
    let invitation_id = invitation.id;
    let created = CreatedInvitation { invitation: invitation.into(), token, accept_url: accept_url.clone() };
    let answer = Answer::json(actix_web::http::StatusCode::CREATED, &created)?;
    let response = idempotency::finish(idempotent.as_ref(), &access.txn, answer).await?;
    access.commit().await?;
    let mail = mailer::invitation(email.as_str(), &tenant.name, body.role.as_str(), &accept_url, invitation_id);
    // A mail that cannot be sent is logged by the mailer (with the invitation id, never the link); the link is in
    // the response.
    let _ = state.mailer.send(mail).await;
    Ok(response)
}
