//! Every route of the API. Handlers register themselves with `utoipa_actix_web`'s `.service(..)`, so the OpenAPI spec
//! and the router cannot disagree.

pub mod fallback;
pub mod health;

use utoipa_actix_web::service_config::ServiceConfig;

/// Registers all documented routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(health::livez::livez).service(health::readyz::readyz);
}
