//! `/v1/tenants` (create, list) and `/v1/tenants/{tenant_id}` (read, update, delete). The creator becomes the first
//! owner.

mod create;
mod delete;
mod get;
mod list;
mod update;

use utoipa_actix_web::service_config::ServiceConfig;

use crate::error::{ApiError, ErrorCode, is_unique_violation};

/// The collection, `/v1/tenants`.
pub fn configure_collection(cfg: &mut ServiceConfig) {
    cfg.service(create::create_tenant).service(list::list_tenants);
}

/// One tenant, `/v1/tenants/{tenant_id}`.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(get::get_tenant).service(update::update_tenant).service(delete::delete_tenant);
}

/// 409 for a unique violation on the slug; any other error is the database's.
fn slug_taken(e: sea_orm::DbErr, step: &'static str) -> ApiError {
    if is_unique_violation(&e) {
        ApiError::new(ErrorCode::Conflict, "This slug is taken.")
    } else {
        anyhow::Error::new(e).context(step).into()
    }
}
