//! [`AppState`]: what every handler can reach, registered once as `web::Data<AppState>`.

use std::sync::Arc;

use entity::token_cipher::TokenKeys;
use sea_orm::DatabaseConnection;
use worker::testio::client::TestioClient;

use crate::auth::jwt::JwtKeys;
use crate::config::Settings;
use crate::mailer::Mailer;

#[derive(Clone)]
pub struct AppState {
    /// Pool connected as the runtime role.
    pub db: DatabaseConnection,
    pub settings: Arc<Settings>,
    pub jwt: Arc<JwtKeys>,
    pub mailer: Arc<dyn Mailer>,
    /// Seals TestIO tokens before they are stored.
    pub token_keys: Arc<TokenKeys>,
    /// Checks TestIO tokens when a connection is saved.
    pub testio: TestioClient,
}
