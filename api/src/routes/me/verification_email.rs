//! `POST /v1/me/verification-email`.

use actix_web::{HttpResponse, post, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::principal::Principal;
use crate::auth::{throttle, verification};
use crate::error::{ApiError, ErrorCode, ProblemDetails};
use crate::state::AppState;

/// When a newly sent verification link stops working.
#[derive(Serialize, ToSchema)]
pub struct VerificationSent {
    pub expires_at: DateTime<Utc>,
}

/// Send a new verification mail to the signed-in user's address (older links stop working). Limited to 3 an hour.
#[utoipa::path(
    tag = "me",
    responses(
        (status = 202, body = VerificationSent),
        (status = 401, body = ProblemDetails),
        (status = 403, description = "API keys cannot do this", body = ProblemDetails),
        (status = 409, description = "The email address is already verified", body = ProblemDetails),
        (status = 429, description = "Too many mails sent recently; see Retry-After", body = ProblemDetails),
        (status = 502, description = "The mail could not be sent; try again later", body = ProblemDetails),
    ),
)]
#[post("/verification-email")]
pub async fn resend_verification(state: web::Data<AppState>, principal: Principal) -> Result<HttpResponse, ApiError> {
    let me = principal.user()?;
    if me.user.email_verified_at.is_some() {
        return Err(ApiError::new(ErrorCode::Conflict, "Your email address is already verified."));
    }
    throttle::admit_verification_mail(&state.db, me.user.id).await?;
    let (mail, expires_at) = verification::issue(&state, &state.db, &me.user).await?;
    state.mailer.send(mail).await.map_err(|_| {
        ApiError::new(ErrorCode::UpstreamUnavailable, "The verification mail could not be sent; try again later.")
    })?;
    Ok(HttpResponse::Accepted().json(VerificationSent { expires_at }))
}
