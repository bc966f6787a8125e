//! How an audit event reads through the API.

use chrono::{DateTime, Utc};
use entity::audit::AuditAction;
use entity::audit_logs::{ActorType, Model, Outcome};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::Object;
use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};

/// The action names as an enum.
pub fn action_schema() -> Object {
    let values: Vec<serde_json::Value> = AuditAction::names().into_iter().map(Into::into).collect();
    ObjectBuilder::new().schema_type(SchemaType::Type(Type::String)).enum_values(Some(values)).build()
}

/// The target types as an enum.
pub fn target_type_schema() -> Object {
    let values: Vec<serde_json::Value> = AuditAction::target_types().into_iter().map(Into::into).collect();
    ObjectBuilder::new().schema_type(SchemaType::Type(Type::String)).enum_values(Some(values)).build()
}

/// Who acted.
#[derive(Serialize, ToSchema)]
pub struct AuditActorView {
    #[serde(rename = "type")]
    pub kind: ActorType,
    /// The user's or API key's id; `null` for `system`, `worker` and `anonymous`.
    pub id: Option<uuid::Uuid>,
    /// The actor's name when the event happened: `Name <email>` for a user, `name (prefix…)` for a key, the email
    /// given for `anonymous`, `system` or `worker`.
    pub display: Option<String>,
}

/// What was acted on.
#[derive(Serialize, ToSchema)]
pub struct AuditTargetView {
    #[serde(rename = "type")]
    #[schema(schema_with = target_type_schema)]
    pub kind: String,
    pub id: Option<String>,
    /// The target's name when the event happened (an email, a key's or tenant's name).
    pub display: Option<String>,
}

/// Where the request came from; `null` fields for background events.
#[derive(Serialize, ToSchema)]
pub struct AuditClientView {
    /// The client's address (behind trusted proxies, the one they forwarded).
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
}

/// One audit event.
#[derive(Serialize, ToSchema)]
pub struct AuditEventView {
    pub id: uuid::Uuid,
    pub tenant_id: uuid::Uuid,
    /// What was done, as a dotted name.
    #[schema(schema_with = action_schema)]
    pub action: String,
    pub actor: AuditActorView,
    pub target: AuditTargetView,
    pub outcome: Outcome,
    pub client: AuditClientView,
    /// The id of the request that did it (the `x-request-id` it was answered with).
    pub request_id: Option<String>,
    /// Details of the action (never a secret).
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// When it happened (the server's clock).
    pub created_at: DateTime<Utc>,
    /// 1: written before events had display names and `worker` actors; 2: this shape.
    pub schema_version: i16,
}

impl From<Model> for AuditEventView {
    fn from(m: Model) -> Self {
        Self {
            id: m.id,
            tenant_id: m.tenant_id.0,
            action: m.action,
            actor: AuditActorView { kind: m.actor_type, id: m.actor_id, display: m.actor_display },
            target: AuditTargetView { kind: m.target_type, id: m.target_id, display: m.target_display },
            outcome: m.outcome,
            client: AuditClientView {
                ip_address: m.ip_address.map(|ip| ip.ip().to_string()),
                user_agent: m.user_agent,
            },
            request_id: m.request_id,
            metadata: m.metadata,
            created_at: m.created_at,
            schema_version: m.schema_version,
        }
    }
}

/// A page of audit events, newest first.
#[derive(Serialize, ToSchema)]
pub struct AuditPageView {
    pub items: Vec<AuditEventView>,
    /// Pass as `cursor` (with the same filters) for the next page; `null` when there is none. A text search may
    /// return a short page with a cursor: only `null` means the end.
    pub next_cursor: Option<String>,
}
