//! Invitations: `/v1/tenants/{tenant_id}/invitations` (create, list, revoke) and `POST /v1/invitations/accept`. The
//! token is shown once (in the response and the mail), stored hashed, expires, works once, and only for the invited
//! email.

mod accept;
mod create;
mod list;
mod revoke;

use chrono::{DateTime, Utc};
use entity::tenant_users::Role;
use entity::{UserId, invitations};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

/// A tenant's invitations, `/v1/tenants/{tenant_id}/invitations`.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create::create_invitation).service(list::list_invitations).service(revoke::revoke_invitation);
}

/// Accepting one, `/v1/invitations`: the tenant comes from the token.
pub fn configure_acceptance(cfg: &mut ServiceConfig) {
    cfg.service(accept::accept_invitation);
}

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
