//! `GET /v1/tenants`.

use actix_web::{HttpResponse, get, web};

use crate::auth::principal::Principal;
use crate::error::ApiError;
use crate::routes::views::MembershipView;
use crate::state::AppState;

/// The tenants the caller belongs to, with their role in each.
#[utoipa::path(tag = "tenants", responses((status = 200, body = Vec<MembershipView>)))]
#[get("")]
pub async fn list_tenants(state: web::Data<AppState>, principal: Principal) -> Result<HttpResponse, ApiError> {
    let me = principal.user()?;
    Ok(HttpResponse::Ok().json(MembershipView::all_of(&state, me.user.id).await?))
}
