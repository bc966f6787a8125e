//! [`AppState`]: what every handler can reach, registered once as `web::Data<AppState>`.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

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
}
