//! `/v1/auth`: register, sign in, refresh, sign out, and verify an email address. Events that belong to no tenant
//! are audited under the platform tenant, in the same transaction as the change.

mod login;
mod logout;
mod refresh;
mod register;
mod verify_email;

use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::routes::views::{TokenPair, UserView};

/// Registers the handlers under their scope (see `routes::configure`).
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(register::register)
        .service(login::login)
        .service(refresh::refresh)
        .service(logout::logout)
        .service(verify_email::verify_email)
        .service(verify_email::verify_email_link);
}

/// A signed-in user and their first credentials.
#[derive(Serialize, ToSchema)]
pub struct AuthResponse {
    pub user: UserView,
    pub tokens: TokenPair,
}
