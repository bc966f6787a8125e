//! `POST /v1/auth/register`.

use actix_web::{HttpResponse, post, web};
use anyhow::Context;
use entity::audit::{self, Actor, AuditAction, Event};
use entity::{PLATFORM_TENANT, TenantTxn, users};
use serde::Deserialize;
use utoipa::ToSchema;

use super::AuthResponse;
use crate::auth::{session, throttle, verification};
use crate::body::JsonBody;
use crate::domain::{Email, Password, parse_name};
use crate::error::{ApiError, ErrorCode, ProblemDetails, is_unique_violation};
use crate::request_context::ClientOrigin;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ann@example.com", "name": "Ann Example", "password": "correct horse battery staple"}))]
pub struct RegisterRequest {
    /// The account's address; a verification link is mailed to it. Stored NFKC-normalised, domain lower-cased.
    #[schema(format = Email, min_length = 3, max_length = 254, example = "ann@example.com")]
    pub email: String,
    /// Shown to other members: 1 to 200 characters (trimmed), not only spaces, no control or format characters.
    #[schema(min_length = 1, max_length = 200, pattern = "display-name", example = "Ann Example")]
    pub name: String,
    /// 8 to 1024 characters.
    #[schema(min_length = 8, max_length = 1024, example = "correct horse battery staple")]
    pub password: String,
}

/// Create an account and sign in.
///
/// Registrations are limited per client address (429 with `Retry-After`), and an email that already has an account is
/// refused before any password work is done. A verification link is mailed to the address; until it is followed the
/// account cannot accept invitations.
#[utoipa::path(
    tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, body = AuthResponse),
        (status = 409, description = "An account with this email exists", body = ProblemDetails),
        (status = 422, description = "Invalid email, name or password", body = ProblemDetails),
        (status = 429, description = "Too many registrations from this address; see Retry-After", body = ProblemDetails),
        (status = 503, description = "Too busy to hash the password now; see Retry-After", body = ProblemDetails),
    ),
)]
#[post("/register")]
pub async fn register(
    state: web::Data<AppState>,
    origin: ClientOrigin,
    body: JsonBody<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let (email, name, password) = match (
        Email::parse("email", &body.email),
        parse_name("name", &body.name, 200),
        Password::parse("password", body.password),
    ) {
        (Ok(e), Ok(n), Ok(p)) => (e, n, p),
        (e, n, p) => {
            let errors = [e.err(), n.err(), p.err()].into_iter().flatten().collect();
            return Err(ApiError::validation(errors));
        }
    };
    throttle::admit_registration(&state.db, &state.settings, origin.0.ip_address).await?;
    // A taken email costs a lookup, never a hash (the 409 says as much as the lookup does).
    if users::find_by_email(&state.db, email.as_str()).await.context("Failed to look up the email")?.is_some() {
        return Err(email_taken());
    }
    let hash = state.passwords.hash_for_new_account(password.expose().to_owned()).await?;
    let txn = TenantTxn::begin(&state.db, PLATFORM_TENANT).await.context("Failed to begin the transaction")?;
    let user =
        match users::create(&txn, users::NewUser { email: email.as_str(), name: &name, password_hash: Some(hash) })
            .await
        {
            Err(e) if is_unique_violation(&e) => return Err(email_taken()),
            created => created.context("Failed to create the user")?,
        };
    let tokens = session::start(&state, &txn, user.id, &origin.0).await?;
    let (verification, _) = verification::issue(&state, &txn, &user).await?;
    let event = Event::new(AuditAction::UserRegister, Actor::user(user.id)).on(user.id);
    audit::record(&txn, event, &origin.0).await.context("Failed to write the audit entry")?;
    txn.commit().await.context("Failed to commit")?;
    // A mail that cannot be sent now is logged by the mailer; `POST /v1/me/verification-email` sends another.
    let _ = state.mailer.send(verification).await;
    Ok(HttpResponse::Created().json(AuthResponse { user: user.into(), tokens }))
}

fn email_taken() -> ApiError {
    ApiError::new(ErrorCode::Conflict, "An account with this email already exists.")
}
