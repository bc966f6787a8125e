//! The audit writer. [`record`] takes the same [`TenantTxn`] as the change it records, so the entry commits or rolls
//! back with it: there is never a change without its audit row, nor an audit row for a change that did not happen.

mod action;
pub mod chain;
pub mod query;

use std::net::IpAddr;

use sea_orm::{ActiveEnum, DbBackend, DbErr, FromQueryResult, Statement};
use uuid::Uuid;

pub use action::AuditAction;

use crate::TenantTxn;
use crate::audit_logs::{ActorType, Model, Outcome};

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub kind: ActorType,
    pub id: Option<Uuid>,
    /// How the log names the actor; `None`: looked up when the event is written (a user's `Name <email>`, a key's
    /// name and prefix).
    pub display: Option<String>,
}

impl Actor {
    pub fn user(id: crate::UserId) -> Self {
        Self { kind: ActorType::User, id: Some(id.0), display: None }
    }
    /// An operator command, the demo bootstrap, billing.
    pub fn system() -> Self {
        Self { kind: ActorType::System, id: None, display: Some("system".to_owned()) }
    }
    /// The sync worker, on its own decision.
    pub fn worker() -> Self {
        Self { kind: ActorType::Worker, id: None, display: Some("worker".to_owned()) }
    }
    /// Someone unknown, named by what they claimed to be (the email of a failed sign-in).
    pub fn anonymous(claimed: &str) -> Self {
        Self { kind: ActorType::Anonymous, id: None, display: Some(truncate(claimed, MAX_DISPLAY).to_owned()) }
    }
    pub fn api_key(id: Uuid) -> Self {
        Self { kind: ActorType::ApiKey, id: Some(id), display: None }
    }
}

/// Where a request came from; empty for background jobs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub ip_address: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

/// One audited event: what was done, by whom, to which target, and how it ended. Build it with [`Event::new`] and
/// the setters; the target type follows from the action.
#[derive(Debug, Clone)]
pub struct Event {
    pub action: AuditAction,
    pub actor: Actor,
    pub target_id: Option<String>,
    /// How the log names the target; `None`: looked up when the event is written, by the target's type.
    pub target_display: Option<String>,
    pub outcome: Outcome,
    /// Extra structured detail; must be a JSON object and must never contain a secret.
    pub metadata: serde_json::Value,
}

impl Event {
    /// A successful `action` by `actor`, on no particular target and with no metadata yet.
    pub fn new(action: AuditAction, actor: Actor) -> Self {
        Self {
            action,
            actor,
            target_id: None,
            target_display: None,
            outcome: Outcome::Success,
            metadata: serde_json::json!({}),
        }
    }

    /// The id of the target acted on (of the action's target type).
    pub fn on(mut self, target_id: impl ToString) -> Self {
        self.target_id = Some(target_id.to_string());
        self
    }

    /// Names the target, when the writer cannot look it up (it is being deleted, say).
    pub fn target_display(mut self, display: impl AsRef<str>) -> Self {
        self.target_display = Some(truncate(display.as_ref(), MAX_DISPLAY).to_owned());
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
/// The longest display name kept (the column's limit).
const MAX_DISPLAY: usize = 320;

/// The columns of [`Model`], in its order.
pub(crate) const COLUMNS: &str = "tenant_id, id, actor_type, actor_id, actor_display, action, target_type, target_id, \
                                  target_display, metadata, ip_address, user_agent, request_id, outcome, created_at, \
                                  schema_version";

/// Appends `event`, which came from `origin`, to the audit log of `txn`'s tenant. The only way an audit row is
/// written: by requests on a tenant, by platform events (logins, registrations: `txn` bound to
/// [`crate::PLATFORM_TENANT`]) and by the worker and operator commands (with [`Actor::worker`] or [`Actor::system`]
/// and `Origin::default()`).
///
/// One statement: display names the event does not carry are read by it, as they are at this moment (a user's
/// `Name <email>`, an API key's `name (prefix…)`, a tenant's name, an invitation's email), from rows the
/// transaction can see.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id(), action = %event.action))]
pub async fn record(txn: &TenantTxn, event: Event, origin: &Origin) -> Result<Model, DbErr> {
    let metadata = match event.metadata {
        serde_json::Value::Null => serde_json::Value::Object(Default::default()),
        other => other,
    };
    let target_type = event.action.target_type();
    let target_uuid = event.target_id.as_deref().and_then(|id| Uuid::parse_str(id).ok());
    let sql = format!(
        "INSERT INTO audit_logs ({COLUMNS})
         VALUES ($1, $2, $3, $4,
                 coalesce($5, CASE $3
                     WHEN 'user' THEN (SELECT {USER_DISPLAY} FROM users u WHERE u.id = $4)
                     WHEN 'api_key' THEN (SELECT {KEY_DISPLAY} FROM api_keys k WHERE k.tenant_id = $1 AND k.id = $4)
                 END),
                 $6, $7, $8,
                 coalesce($9, CASE $7
                     WHEN 'user' THEN (SELECT {USER_DISPLAY} FROM users u WHERE u.id = $15)
                     WHEN 'member' THEN (SELECT {USER_DISPLAY} FROM users u WHERE u.id = $15)
                     WHEN 'api_key' THEN (SELECT {KEY_DISPLAY} FROM api_keys k WHERE k.tenant_id = $1 AND k.id = $15)
                     WHEN 'tenant' THEN (SELECT t.name FROM tenants t WHERE t.id = $15)
                     WHEN 'testio_connection' THEN (SELECT t.name FROM tenants t WHERE t.id = $15)
                     WHEN 'audit_log' THEN (SELECT t.name FROM tenants t WHERE t.id = $15)
                     WHEN 'invitation' THEN (SELECT i.email FROM invitations i WHERE i.tenant_id = $1 AND i.id = $15)
                 END),
                 $10, $11, $12, $13, $14, now(), 2)
         RETURNING {COLUMNS}"
    );
    let values: [sea_orm::Value; 15] = [
        txn.tenant_id().0.into(),
        Uuid::now_v7().into(),
        event.actor.kind.to_value().into(),
        event.actor.id.into(),
        event.actor.display.into(),
        event.action.as_str().into(),
        target_type.into(),
        event.target_id.into(),
        event.target_display.into(),
        metadata.into(),
        origin.ip_address.map(ipnetwork::IpNetwork::from).into(),
        origin.user_agent.as_deref().map(|ua| truncate(ua, MAX_USER_AGENT).to_owned()).into(),
        origin.request_id.clone().into(),
        event.outcome.to_value().into(),
        target_uuid.into(),
    ];
    let statement = Statement::from_sql_and_values(DbBackend::Postgres, sql, values);
    Model::find_by_statement(statement).one(txn.conn()).await?.ok_or_else(|| DbErr::RecordNotInserted)
}

/// A user's display name, cut to the column's limit: `Name <email>`, or the email alone.
const USER_DISPLAY: &str = "left(CASE WHEN u.name = '' THEN u.email ELSE u.name || ' <' || u.email || '>' END, 320)";
/// An API key's display name: `name (prefix…)`.
const KEY_DISPLAY: &str = "left(k.name || ' (' || k.prefix || '…)', 320)";

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
