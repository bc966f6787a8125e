//! `/v1/tenants/{tenant_id}/sync-runs`: the record of the tenant's TestIO syncs, and a way to ask for one now.
//!
//! A requested run is queued and the tenant made due; a worker picks it up within its poll interval. While a run is
//! queued or running, asking again returns that run instead of queueing a second one.

mod get;
mod list;
mod request;

use utoipa_actix_web::service_config::ServiceConfig;

/// Registers the handlers under their scope (see `routes::configure`).
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(request::request_sync_run).service(list::list_sync_runs).service(get::get_sync_run);
}
