//! Every route of the API. Handlers register themselves with `utoipa_actix_web`'s `.service(..)`, so the OpenAPI spec
//! and the router cannot disagree.

pub mod api_keys;
pub mod auth;
pub mod email_verification;
pub mod fallback;
pub mod health;
pub mod invitations;
pub mod me;
pub mod members;
pub mod sync_runs;
pub mod tenants;
pub mod testio_connection;
pub mod views;

use utoipa_actix_web::service_config::ServiceConfig;

/// Registers all documented routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(health::livez::livez)
        .service(health::readyz::readyz)
        .service(auth::register)
        .service(auth::login)
        .service(auth::refresh)
        .service(auth::logout)
        .service(email_verification::verify_email)
        .service(email_verification::verify_email_link)
        .service(email_verification::resend_verification)
        .service(me::get_me)
        .service(me::change_password)
        .service(tenants::create_tenant)
        .service(tenants::list_tenants)
        .service(tenants::get_tenant)
        .service(tenants::update_tenant)
        .service(tenants::delete_tenant)
        .service(members::list_members)
        .service(members::update_member)
        .service(members::remove_member)
        .service(invitations::create_invitation)
        .service(invitations::list_invitations)
        .service(invitations::revoke_invitation)
        .service(invitations::accept_invitation)
        .service(api_keys::create_api_key)
        .service(api_keys::list_api_keys)
        .service(api_keys::revoke_api_key)
        .service(testio_connection::save_connection)
        .service(testio_connection::get_connection)
        .service(testio_connection::delete_connection)
        .service(sync_runs::request_sync_run)
        .service(sync_runs::list_sync_runs)
        .service(sync_runs::get_sync_run);
}
