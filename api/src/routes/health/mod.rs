//! Probes for orchestrators: `/livez` (the process is up) and `/readyz` (it can serve traffic).

pub mod livez;
pub mod readyz;

use utoipa_actix_web::service_config::ServiceConfig;

/// Registers the probes at the root.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(livez::livez).service(readyz::readyz);
}
