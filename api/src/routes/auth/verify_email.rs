//! `POST /v1/auth/verify-email` and the mailed link `GET /v1/auth/verify-email?token=…`: a new account proves it
//! holds its mailbox. Only a verified user may accept an invitation: registration alone proves nothing about the
//! mailbox, and an invitation is addressed to a mailbox. (`POST /v1/me/verification-email` sends a new link.)

use actix_web::{HttpResponse, get, post, web};
use anyhow::Context;
use chrono::{DateTime, Utc};
use entity::audit::{self, Actor, AuditAction, Event};
use entity::{PLATFORM_TENANT, TenantTxn, email_verifications, users};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::secrets;
use crate::body::JsonBody;
use crate::error::{ApiError, ErrorCode, ProblemDetails};
use crate::request_context::ClientOrigin;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"token": "ev_9Ql3eZ0mUuUoM3k4fH2b6R8pQ1xXvW7yTz5aC0dE4gI"}))]
pub struct VerifyEmailRequest {
    /// The token from the verification mail (`ev_…`).
    #[schema(example = "ev_9Ql3eZ0mUuUoM3k4fH2b6R8pQ1xXvW7yTz5aC0dE4gI")]
    pub token: String,
}

/// The query of the mailed link. Other parameters (a mail client's tracking, say) are ignored.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VerifyEmailLink {
    /// The token from the verification mail (`ev_…`).
    #[param(example = "ev_9Ql3eZ0mUuUoM3k4fH2b6R8pQ1xXvW7yTz5aC0dE4gI")]
    pub token: String,
}

/// The result of a verification.
#[derive(Serialize, ToSchema)]
pub struct EmailVerified {
    pub email: String,
    pub email_verified_at: DateTime<Utc>,
}

/// Confirm an email address with the token from the verification mail.
#[utoipa::path(
    tag = "auth",
    request_body = VerifyEmailRequest,
    responses(
        (status = 200, body = EmailVerified),
        (status = 404, description = "Unknown token", body = ProblemDetails),
        (status = 409, description = "The token was already used", body = ProblemDetails),
        (status = 410, description = "The token expired or was replaced by a newer one", body = ProblemDetails),
    ),
)]
#[post("/verify-email")]
pub async fn verify_email(
    state: web::Data<AppState>,
    origin: ClientOrigin,
    body: JsonBody<VerifyEmailRequest>,
) -> Result<HttpResponse, ApiError> {
    verify(&state, &body.token, &origin).await
}

/// The link of the verification mail: the same as `POST /v1/auth/verify-email`, for a browser.
#[utoipa::path(
    tag = "auth",
    params(VerifyEmailLink),
    responses(
        (status = 200, body = EmailVerified),
        (status = 404, description = "Unknown token", body = ProblemDetails),
        (status = 409, description = "The token was already used", body = ProblemDetails),
        (status = 410, description = "The token expired or was replaced by a newer one", body = ProblemDetails),
    ),
)]
#[get("/verify-email")]
pub async fn verify_email_link(
    state: web::Data<AppState>,
    origin: ClientOrigin,
    query: web::Query<VerifyEmailLink>,
) -> Result<HttpResponse, ApiError> {
    verify(&state, &query.token, &origin).await
}

async fn verify(state: &AppState, token: &str, origin: &ClientOrigin) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::not_found("Verification token");
    let token = token.trim();
    if !token.starts_with("ev_") {
        return Err(not_found());
    }
    let txn = TenantTxn::begin(&state.db, PLATFORM_TENANT).await.context("Failed to begin the transaction")?;
    let found = email_verifications::find_by_hash_for_update(&txn, &secrets::sha256(token))
        .await
        .context("Failed to read the verification token")?
        .ok_or_else(not_found)?;
    if found.used_at.is_some() {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "This verification link was already used (the address it verified stays verified).",
        ));
    }
    let user = users::find(&txn, found.user_id).await.context("Failed to read the user")?.ok_or_else(not_found)?;
    if found.expires_at <= Utc::now() || !user.email.eq_ignore_ascii_case(&found.email) {
        return Err(ApiError::new(
            ErrorCode::Gone,
            "This verification link has expired or was replaced by a newer one; ask for a new one.",
        ));
    }
    let found = email_verifications::mark_used(&txn, found).await.context("Failed to use up the token")?;
    let user = match user.email_verified_at {
        Some(_) => user,
        None => users::mark_email_verified(&txn, user).await.context("Failed to mark the email verified")?,
    };
    let event = Event::new(AuditAction::UserEmailVerify, Actor::user(user.id))
        .on(user.id)
        .metadata(serde_json::json!({ "verification_id": found.id }));
    audit::record(&txn, event, &origin.0).await.context("Failed to write the audit entry")?;
    txn.commit().await.context("Failed to commit")?;
    Ok(HttpResponse::Ok()
        .json(EmailVerified { email: user.email, email_verified_at: user.email_verified_at.unwrap_or_else(Utc::now) }))
}
