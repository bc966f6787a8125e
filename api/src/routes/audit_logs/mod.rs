//! The audit-log review of a tenant: `GET /v1/tenants/{tenant_id}/audit-logs` (filtered, newest first, keyset pages
//! with an opaque signed cursor) and `GET .../audit-logs/{audit_log_id}`, for the tenant's owners and admins (other
//! members get 403, strangers 404), and `GET .../audit-logs/export` (the same filters, as a streamed CSV or NDJSON
//! file; recorded in the log itself) and `GET .../audit-logs/verify` (the hash chain's verdict).

pub(crate) mod export;
pub(crate) mod list;
mod verify;
mod view;

use utoipa_actix_web::service_config::ServiceConfig;

pub use verify::ChainVerificationView;
pub use view::{AuditEventView, AuditPageView};

/// Registers the handlers under `/v1/tenants/{tenant_id}/audit-logs` (see `routes::configure`).
pub fn configure(cfg: &mut ServiceConfig) {
    // `/export` and `/verify` before `/{audit_log_id}`, which would take them for ids.
    cfg.service(list::list_audit_logs)
        .service(export::export_audit_logs)
        .service(verify::verify_audit_chain)
        .service(list::get_audit_log);
}
