//! The audit writer. [`record`] takes the same [`TenantTxn`] as the change it records, so the entry commits or rolls
//! back with it: there is never a change without its audit row, nor an audit row for a change that did not happen.

mod action;

use std::net::IpAddr;

use sea_orm::{ActiveModelTrait, ActiveValue::Set, DbErr};
use uuid::Uuid;

pub use action::AuditAction;

use crate::TenantTxn;
use crate::audit_logs::{ActiveModel, ActorType, Model, Outcome};

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub kind: ActorType,
    pub id: Option<Uuid>,
}

impl Actor {
    pub fn user(id: crate::UserId) -> Self {
        Self { kind: ActorType::User, id: Some(id.0) }
    }
    pub fn system() -> Self {
        Self { kind: ActorType::System, id: None }
    }
    pub fn anonymous() -> Self {
        Self { kind: ActorType::Anonymous, id: None }
    }
    pub fn api_key(id: Uuid) -> Self {
        Self { kind: ActorType::ApiKey, id: Some(id) }
    }
}

/// Where a request came from; empty for background jobs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub ip_address: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

/// One audited event: what was done, by whom, to which resource, and how it ended. Build it with [`Event::new`]
/// and the setters; the resource type follows from the action.
#[derive(Debug, Clone)]
pub struct Event {
    pub action: AuditAction,
    pub actor: Actor,
    pub resource_id: Option<String>,
    pub outcome: Outcome,
    /// Extra structured detail; must be a JSON object and must never contain a secret.
    pub metadata: serde_json::Value,
}

impl Event {
    /// A successful `action` by `actor`, on no particular resource and with no metadata yet.
    pub fn new(action: AuditAction, actor: Actor) -> Self {
        Self { action, actor, resource_id: None, outcome: Outcome::Success, metadata: serde_json::json!({}) }
    }

    /// The id of the resource acted on (of the action's resource type).
    pub fn on(mut self, resource_id: impl ToString) -> Self {
        self.resource_id = Some(resource_id.to_string());
        self
    }

    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    pub fn metadata(mut self, metadata: serde_json::Value) -> Self {
        self.metadata = metadata;
        self
    }
}

/// The longest user agent kept; longer ones are cut (on a character boundary) rather than refused.
const MAX_USER_AGENT: usize = 1024;

/// Appends `event`, which came from `origin`, to the audit log of `txn`'s tenant. The only way an audit row is
/// written: by requests on a tenant, by platform events (logins, registrations: `txn` bound to
/// [`crate::PLATFORM_TENANT`]) and by the worker and operator commands (with [`Actor::system`] and
/// `Origin::default()`).
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id(), action = %event.action))]
pub async fn record(txn: &TenantTxn, event: Event, origin: &Origin) -> Result<Model, DbErr> {
    let metadata = match event.metadata {
        serde_json::Value::Null => serde_json::Value::Object(Default::default()),
        other => other,
    };
    ActiveModel {
        tenant_id: Set(txn.tenant_id()),
        id: Set(Uuid::now_v7()),
        actor_type: Set(event.actor.kind),
        actor_id: Set(event.actor.id),
        action: Set(event.action.as_str().to_owned()),
        resource_type: Set(event.action.resource_type().to_owned()),
        resource_id: Set(event.resource_id),
        metadata: Set(metadata),
        ip_address: Set(origin.ip_address.map(ipnetwork::IpNetwork::from)),
        user_agent: Set(origin.user_agent.as_deref().map(|ua| truncate(ua, MAX_USER_AGENT).to_owned())),
        request_id: Set(origin.request_id.clone()),
        outcome: Set(event.outcome),
        created_at: Set(chrono::Utc::now()),
    }
    .insert(txn.conn())
    .await
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn truncate_keeps_short_strings_and_cuts_on_a_char_boundary() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("aé", 2), "a");
        assert_eq!(truncate("abcdef", 3), "abc");
    }
}
