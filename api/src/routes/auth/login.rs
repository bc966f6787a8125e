//! `POST /v1/auth/login`.

use actix_web::{HttpResponse, post, web};
use anyhow::Context;
use entity::audit::{self, Actor, AuditAction, Event};
use entity::audit_logs::Outcome;
use entity::{PLATFORM_TENANT, TenantTxn, users};
use serde::Deserialize;
use utoipa::ToSchema;

use super::AuthResponse;
use crate::auth::principal::unauthenticated;
use crate::auth::{session, throttle};
use crate::body::JsonBody;
use crate::domain::{Email, Password, invalid};
use crate::error::{ApiError, ProblemDetails};
use crate::request_context::ClientOrigin;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ann@example.com", "password": "correct horse battery staple"}))]
pub struct LoginRequest {
    #[schema(format = Email, min_length = 3, max_length = 254, example = "ann@example.com")]
    pub email: String,
    #[schema(max_length = 1024, example = "correct horse battery staple")]
    pub password: String,
}

/// Sign in with email and password.
///
/// A wrong email and a wrong password get the same answer. Failed attempts are limited per account and client address
/// (a low limit), per account (a high ceiling) and per address; past a limit attempts get 429 with `Retry-After`, even
/// with the right password.
#[utoipa::path(
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, body = AuthResponse),
        (status = 401, description = "Wrong email or password", body = ProblemDetails),
        (status = 422, description = "The email is not an email address", body = ProblemDetails),
        (status = 429, description = "Too many failed attempts; see Retry-After", body = ProblemDetails),
        (status = 503, description = "Too busy to check the password now; see Retry-After", body = ProblemDetails),
    ),
)]
#[post("/login")]
pub async fn login(
    state: web::Data<AppState>,
    origin: ClientOrigin,
    body: JsonBody<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let email = Email::parse("email", &body.email)?;
    if body.password.chars().count() > Password::MAX_CHARS {
        return Err(invalid("password", "is too long").into());
    }
    let user = users::find_by_email(&state.db, email.as_str()).await.context("Failed to look up the user")?;
    let actor = user.as_ref().map_or_else(|| Actor::anonymous(email.as_str()), |u| Actor::user(u.id));
    let attempt = |outcome: Outcome, reason: &str| {
        let event = Event::new(AuditAction::AuthLogin, actor.clone()).outcome(outcome);
        let event = event.metadata(serde_json::json!({ "reason": reason }));
        match &user {
            Some(u) => event.on(u.id),
            None => event,
        }
    };
    let check = throttle::PasswordCheck::sign_in(&state.settings, email.as_str(), origin.0.ip_address);
    if let Err(refused) = check.admit(&state.db).await {
        let txn = TenantTxn::begin(&state.db, PLATFORM_TENANT).await.context("Failed to begin the transaction")?;
        audit::record(&txn, attempt(Outcome::Denied, "throttled"), &origin.0)
            .await
            .context("Failed to write the audit entry")?;
        txn.commit().await.context("Failed to commit")?;
        return Err(refused);
    }
    let usable = user.as_ref().filter(|u| u.disabled_at.is_none());
    let ok = match state.passwords.verify(body.password, usable.and_then(|u| u.password_hash.clone())).await {
        Ok(ok) => ok,
        Err(busy) => {
            check.not_checked(&state.db).await?;
            return Err(busy);
        }
    };
    let Some(user) = user.clone().filter(|_| ok) else {
        let txn = TenantTxn::begin(&state.db, PLATFORM_TENANT).await.context("Failed to begin the transaction")?;
        audit::record(&txn, attempt(Outcome::Failure, "invalid_credentials"), &origin.0)
            .await
            .context("Failed to write the audit entry")?;
        txn.commit().await.context("Failed to commit")?;
        return Err(unauthenticated("Invalid email or password."));
    };
    // Settled on its own, not in the sign-in's transaction: its locks on the throttle rows end with the statement,
    // so concurrent sign-ins of the account never wait on each other's sessions being written (nor deadlock).
    check.succeeded(&state.db).await?;
    let txn = TenantTxn::begin(&state.db, PLATFORM_TENANT).await.context("Failed to begin the transaction")?;
    let user = users::touch_last_login(&txn, user).await.context("Failed to record the sign-in")?;
    let tokens = session::start(&state, &txn, user.id, &origin.0).await?;
    let event = Event::new(AuditAction::AuthLogin, Actor::user(user.id)).on(user.id);
    audit::record(&txn, event, &origin.0).await.context("Failed to write the audit entry")?;
    txn.commit().await.context("Failed to commit")?;
    Ok(HttpResponse::Ok().json(AuthResponse { user: user.into(), tokens }))
}
