//! `/v1/tenants/{tenant_id}/api-keys`: credentials for machine clients. The secret is shown once; only its hash and a
//! visible prefix are kept. A key acts with its own role, never above its creator's.

mod create;
mod list;
mod revoke;

use chrono::{DateTime, Utc};
use entity::tenant_users::Role;
use entity::{UserId, api_keys};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

/// Registers the handlers under their scope (see `routes::configure`).
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create::create_api_key).service(list::list_api_keys).service(revoke::revoke_api_key);
}

#[derive(Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: uuid::Uuid,
    pub name: String,
    /// The first characters of the key, to recognise it.
    #[schema(example = "thk_3f9a0c41d27e")]
    pub prefix: String,
    pub role: Role,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<api_keys::Model> for ApiKeyView {
    fn from(k: api_keys::Model) -> Self {
        Self {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            role: k.role,
            created_by: k.created_by,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
        }
    }
}
