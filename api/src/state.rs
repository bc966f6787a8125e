//! [`AppState`]: what every handler can reach, registered once as `web::Data<AppState>`.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::config::Settings;

#[derive(Clone)]
pub struct AppState {
    /// Pool connected as the runtime role.
    pub db: DatabaseConnection,
    pub settings: Arc<Settings>,
}
