//! Email verification: a new account is sent a single-use, expiring link (`GET /v1/auth/verify-email?token=…`, or the
//! same token to `POST /v1/auth/verify-email`); `POST /v1/me/verification-email` sends a new one (rate-limited). Only
//! a verified user may accept an invitation: registration alone proves nothing about the mailbox, and an invitation
//! is addressed to a mailbox.

use std::time::Duration;

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use entity::audit::Actor;
use entity::audit_logs::Outcome;
use entity::{PLATFORM_TENANT, TenantTxn, email_verifications, users};
use sea_orm::ConnectionTrait;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::principal::Principal;
use crate::auth::{secrets, throttle};
use crate::body::JsonBody;
use crate::error::{ApiError, ErrorCode, ProblemDetails};
use crate::mailer::{self, Mail};
use crate::request_context::ClientOrigin;
use crate::routes::auth::audit_platform;
use crate::state::AppState;

/// Stores a new verification token for `user` in `db` (expiring older ones) and returns the message that carries it,
/// to be sent once `db`'s transaction has committed, and when the token expires.
pub(crate) async fn issue(
    state: &AppState,
    db: &impl ConnectionTrait,
    user: &users::Model,
) -> Result<(Mail, DateTime<Utc>), ApiError> {
    let token = secrets::new_verification_token();
    let valid_for = Duration::from_secs(state.settings.email_verification_ttl_secs.max(60));
    let expires_at = Utc::now() + chrono::Duration::from_std(valid_for).unwrap_or(chrono::Duration::days(1));
    email_verifications::create(db, user.id, &user.email, secrets::sha256(&token), expires_at).await?;
    let url = format!("{}/v1/auth/verify-email?token={token}", state.settings.public_url.trim_end_matches('/'));
    Ok((mailer::email_verification(&user.email, &user.name, &url, valid_for, user.id), expires_at))
}

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
#[post("/v1/auth/verify-email")]
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
#[get("/v1/auth/verify-email")]
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
    let txn = TenantTxn::begin(&state.db, PLATFORM_TENANT).await?;
    let found = email_verifications::find_by_hash_for_update(txn.connection(), &secrets::sha256(token))
        .await?
        .ok_or_else(not_found)?;
    if found.used_at.is_some() {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "This verification link was already used (the address it verified stays verified).",
        ));
    }
    let user = users::find(txn.connection(), found.user_id).await?.ok_or_else(not_found)?;
    if found.expires_at <= Utc::now() || !user.email.eq_ignore_ascii_case(&found.email) {
        return Err(ApiError::new(
            ErrorCode::Gone,
            "This verification link has expired or was replaced by a newer one; ask for a new one.",
        ));
    }
    let found = email_verifications::mark_used(txn.connection(), found).await?;
    let user = match user.email_verified_at {
        Some(_) => user,
        None => users::mark_email_verified(txn.connection(), user).await?,
    };
    audit_platform(
        &txn,
        Actor::user(user.id),
        "user.email_verify",
        Some(user.id.to_string()),
        Outcome::Success,
        serde_json::json!({ "verification_id": found.id }),
        &origin.0,
    )
    .await?;
    txn.commit().await?;
    Ok(HttpResponse::Ok()
        .json(EmailVerified { email: user.email, email_verified_at: user.email_verified_at.unwrap_or_else(Utc::now) }))
}

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
#[post("/v1/me/verification-email")]
pub async fn resend_verification(state: web::Data<AppState>, principal: Principal) -> Result<HttpResponse, ApiError> {
    let me = principal.user()?;
    if me.user.email_verified_at.is_some() {
        return Err(ApiError::new(ErrorCode::Conflict, "Your email address is already verified."));
    }
    throttle::admit_verification_mail(&state.db, me.user.id).await?;
    let (mail, expires_at) = issue(&state, &state.db, &me.user).await?;
    state.mailer.send(mail).await.map_err(|_| {
        ApiError::new(ErrorCode::UpstreamUnavailable, "The verification mail could not be sent; try again later.")
    })?;
    Ok(HttpResponse::Accepted().json(VerificationSent { expires_at }))
}
