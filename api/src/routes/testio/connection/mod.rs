//! `/v1/tenants/{tenant_id}/testio-connection`: the tenant's TestIO Customer API token (owner, admin).
//!
//! Saving checks the token against TestIO first (outside any transaction), then stores it sealed with AES-256-GCM;
//! it is never returned (only its last four characters) nor logged. Saving makes the tenant due for a sync at once;
//! deleting takes it off the schedule. The mirrored data stays in both cases: it belongs to the tenant, not to a token.

mod delete;
mod get;
mod save;

use chrono::{DateTime, Utc};
use entity::sync_runs;
use entity::testio_connections::{self, ConnectionStatus};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::routes::views::SyncRunView;

/// Registers the handlers under their scope (see `routes::configure`).
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(save::save_connection).service(get::get_connection).service(delete::delete_connection);
}

#[derive(Serialize, ToSchema)]
pub struct ConnectionView {
    pub base_url: String,
    /// The last four characters of the token, to recognise it; the token itself is never returned.
    #[schema(example = "cdef")]
    pub token_last4: String,
    pub status: ConnectionStatus,
    /// Why the connection is not syncing: the token was refused, or the base URL is no longer allowed.
    pub status_reason: Option<String>,
    /// When TestIO last accepted the token on save.
    pub verified_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The end of the last full reconcile.
    pub last_reconcile_at: Option<DateTime<Utc>>,
    /// Every change TestIO made before this time is in the mirror: each product's whole list (and its tests' bugs)
    /// has been re-read since, without a gap. `null` until that happened once, and while a gap is open. Changes at the
    /// top of a list are mirrored by the next sync; any change within one verify cycle (`SYNC_VERIFY_CYCLE_SECS`)
    /// plus one interval.
    pub verified_through: Option<DateTime<Utc>>,
    /// The interval between scheduled syncs asked for, in seconds; `null`: the plan's (`GET /v1/plans`).
    pub sync_interval_secs: Option<i64>,
    /// When the next sync is due; `null` while the connection is not `active`.
    pub next_sync_at: Option<DateTime<Utc>>,
    /// The latest sync run, if any.
    pub last_run: Option<SyncRunView>,
}

impl ConnectionView {
    fn new(c: testio_connections::Model, next: Option<DateTime<Utc>>, last: Option<sync_runs::Model>) -> Self {
        Self {
            base_url: c.base_url,
            token_last4: c.token_last4,
            status: c.status,
            status_reason: c.status_reason,
            verified_at: c.verified_at,
            created_at: c.created_at,
            updated_at: c.updated_at,
            last_reconcile_at: c.last_reconcile_at,
            verified_through: c.verified_through,
            sync_interval_secs: c.sync_interval_secs,
            next_sync_at: next,
            last_run: last.map(Into::into),
        }
    }
}
