//! `/v1/tenants/{tenant_id}/members`: list members, change a role, remove a member. A tenant always keeps at least
//! one owner; admins never act on owners; anyone may leave. A removed member's pending invitations and API keys are
//! revoked with them; a demoted member's invitations for roles they can no longer grant are revoked.

mod list;
mod remove;
mod update;

use chrono::{DateTime, Utc};
use entity::UserId;
use entity::tenant_users::{self, Role};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::error::{ApiError, ErrorCode};

/// Registers the handlers under their scope (see `routes::configure`).
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list::list_members).service(update::update_member).service(remove::remove_member);
}

#[derive(Serialize, ToSchema)]
pub struct MemberView {
    pub user_id: UserId,
    pub email: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

impl From<tenant_users::Model> for MemberView {
    fn from(m: tenant_users::Model) -> Self {
        Self { user_id: m.user_id, email: m.email, role: m.role, created_at: m.created_at }
    }
}

const ALL_ROLES: [Role; 4] = [Role::Owner, Role::Admin, Role::Member, Role::Viewer];

fn forbidden(detail: &str) -> ApiError {
    ApiError::new(ErrorCode::Forbidden, detail)
}

fn last_owner() -> ApiError {
    ApiError::new(ErrorCode::Conflict, "A tenant must keep at least one owner; make someone else owner first.")
}
