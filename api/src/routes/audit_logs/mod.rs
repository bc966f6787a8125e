//! The audit-log review of a tenant: `GET /v1/tenants/{tenant_id}/audit-logs` (filtered, newest first, keyset pages
//! with an opaque signed cursor) and `GET .../audit-logs/{audit_log_id}`, for the tenant's owners and admins (other
//! members get 403, strangers 404).

mod list;
mod view;

use utoipa_actix_web::service_config::ServiceConfig;

pub use view::{AuditEventView, AuditPageView};

/// Registers the handlers under `/v1/tenants/{tenant_id}/audit-logs` (see `routes::configure`).
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list::list_audit_logs).service(list::get_audit_log);
}
