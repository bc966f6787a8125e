//! `POST /v1/me/verification-email`.

use actix_web::{HttpResponse, post, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use anyhow::Context;
use entity::audit::{self, Actor, AuditAction, Event};
use entity::{PLATFORM_TENANT, TenantTxn};

use crate::auth::principal::Principal;
use crate::auth::{throttle, verification};
use crate::error::{ApiError, ErrorCode, ProblemDetails};
use crate::request_context::ClientOrigin;
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
pub async fn resend_verification(
    state: web::Data<AppState>,
    principal: Principal,
    origin: ClientOrigin,
) -> Result<HttpResponse, ApiError> {
    let me = principal.user()?;
    if me.user.email_verified_at.is_some() {
        return Err(ApiError::new(ErrorCode::Conflict, "Your email address is already verified."));
    }
    throttle::admit_verification_mail(&state.db, me.user.id).await?;
    let txn = TenantTxn::begin(&state.db, PLATFORM_TENANT).await.context("Failed to begin the transaction")?;
    let (mail, expires_at) = verification::issue(&state, &txn, &me.user).await?;
    let event = Event::new(AuditAction::UserVerificationEmailSend, Actor::user(me.user.id))
        .on(me.user.id)
        .metadata(serde_json::json!({ "expires_at": expires_at }));
    audit::record(&txn, event, &origin.0).await.context("Failed to write the audit entry")?;
    txn.commit().await.context("Failed to commit")?;
    state.mailer.send(mail).await.map_err(|_| {
        ApiError::new(ErrorCode::UpstreamUnavailable, "The verification mail could not be sent; try again later.")
    })?;
    Ok(HttpResponse::Accepted().json(VerificationSent { expires_at }))
}
