//! `GET /v1/me`.

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::principal::Principal;
use crate::error::{ApiError, ProblemDetails};
use crate::routes::views::{MembershipView, UserView};
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct MeResponse {
    pub user: UserView,
    /// Every tenant the user belongs to, with their role.
    pub memberships: Vec<MembershipView>,
}

/// The signed-in user and their memberships.
#[utoipa::path(tag = "me", responses((status = 200, body = MeResponse), (status = 401, body = ProblemDetails)))]
#[get("")]
pub async fn get_me(state: web::Data<AppState>, principal: Principal) -> Result<HttpResponse, ApiError> {
    let me = principal.user()?;
    let memberships = MembershipView::all_of(&state, me.user.id).await?;
    Ok(HttpResponse::Ok().json(MeResponse { user: me.user.clone().into(), memberships }))
}
