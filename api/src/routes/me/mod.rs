//! `/v1/me`: the signed-in user, their memberships, their password, and a new verification mail.

mod password;
mod profile;
mod verification_email;

use utoipa_actix_web::service_config::ServiceConfig;

/// Registers the handlers under their scope (see `routes::configure`).
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(profile::get_me).service(password::change_password).service(verification_email::resend_verification);
}
