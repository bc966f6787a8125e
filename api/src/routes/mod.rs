//! Every route of the API, one folder per resource. Each resource's `configure` registers its handlers with
//! `utoipa_actix_web`'s `.service(..)`, so the OpenAPI spec and the router cannot disagree; the URL tree itself is
//! written once, here. Handlers share path extractors ([`params`]) and response bodies ([`views`]), never each other.

pub mod admin_audit;
pub mod api_keys;
pub mod audit_logs;
pub mod auth;
pub mod billing;
pub mod fallback;
pub mod health;
pub mod invitations;
pub mod me;
pub mod members;
pub mod mirror;
pub mod params;
pub mod tenants;
pub mod testio;
pub mod views;

use utoipa_actix_web::scope;
use utoipa_actix_web::service_config::ServiceConfig;

/// Registers all documented routes.
///
/// actix matches a scope by prefix and does not fall back to a later one, so everything under a tenant is nested in
/// the one `/v1/tenants/{tenant_id}` scope.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.configure(health::configure)
        .service(scope::scope("/v1/auth").configure(auth::configure))
        .service(scope::scope("/v1/me").configure(me::configure))
        .service(scope::scope("/v1/invitations").configure(invitations::configure_acceptance))
        .service(scope::scope("/v1/admin").configure(admin_audit::configure))
        .service(scope::scope("/v1/plans").configure(billing::configure_plans))
        .service(scope::scope("/v1/webhooks").configure(billing::configure_webhooks))
        .service(
            scope::scope("/v1/tenants").configure(tenants::configure_collection).service(
                scope::scope("/{tenant_id}")
                    .configure(tenants::configure)
                    .service(scope::scope("/members").configure(members::configure))
                    .service(scope::scope("/invitations").configure(invitations::configure))
                    .service(scope::scope("/api-keys").configure(api_keys::configure))
                    .service(scope::scope("/audit-logs").configure(audit_logs::configure))
                    .service(scope::scope("/billing").configure(billing::configure))
                    .service(scope::scope("/testio-connection").configure(testio::connection::configure))
                    .service(scope::scope("/sync-runs").configure(testio::sync_runs::configure))
                    .configure(mirror::configure),
            ),
        );
}
