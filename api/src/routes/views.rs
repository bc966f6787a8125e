//! Response bodies shared by several resources.

use chrono::{DateTime, Utc};
use entity::tenant_users::Role;
use entity::{TenantId, UserId, tenants, users};
use serde::Serialize;
use utoipa::ToSchema;

/// A user as shown to themselves.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub avatar_url: Option<String>,
    pub is_platform_admin: bool,
    /// Whether the user proved they hold the mailbox of `email` (needed to accept invitations).
    pub email_verified: bool,
    pub email_verified_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

impl From<users::Model> for UserView {
    fn from(u: users::Model) -> Self {
        Self {
            id: u.id,
            email: u.email,
            name: u.name,
            avatar_url: u.avatar_url,
            is_platform_admin: u.is_platform_admin,
            email_verified: u.email_verified_at.is_some(),
            email_verified_at: u.email_verified_at,
            created_at: u.created_at,
            last_login_at: u.last_login_at,
        }
    }
}

/// A tenant (organisation).
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    pub id: TenantId,
    pub name: String,
    pub slug: String,
    pub plan: tenants::Plan,
    pub subscription_status: Option<String>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<tenants::Model> for TenantView {
    fn from(t: tenants::Model) -> Self {
        Self {
            id: t.id,
            name: t.name,
            slug: t.slug,
            plan: t.plan,
            subscription_status: t.subscription_status,
            active: t.active,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// A tenant together with the caller's role in it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MembershipView {
    pub tenant: TenantView,
    pub role: Role,
}

/// A fresh pair of credentials.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPair {
    /// Short-lived JWT; send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Single-use token for `POST /v1/auth/refresh`; each use returns a new one.
    pub refresh_token: String,
    /// When the session (and so every refresh token of it) ends.
    pub refresh_expires_at: DateTime<Utc>,
}
