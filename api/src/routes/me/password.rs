//! `POST /v1/me/password`.

use actix_web::{HttpResponse, post, web};
use anyhow::Context;
use entity::audit::{self, Actor, AuditAction, Event, Origin};
use entity::audit_logs::Outcome;
use entity::sessions::{self, RevokeReason};
use entity::{PLATFORM_TENANT, TenantTxn, UserId, users};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::principal::Principal;
use crate::auth::{session, throttle};
use crate::body::JsonBody;
use crate::domain::{Password, invalid};
use crate::error::{ApiError, ProblemDetails};
use crate::request_context::ClientOrigin;
use crate::routes::views::TokenPair;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"current_password": "correct horse battery staple", "new_password": "a longer and newer passphrase"}))]
pub struct ChangePasswordRequest {
    #[schema(max_length = 1024, example = "correct horse battery staple")]
    pub current_password: String,
    /// 8 to 1024 characters.
    #[schema(min_length = 8, max_length = 1024, example = "a longer and newer passphrase")]
    pub new_password: String,
}

/// Audits a password change that did not happen.
async fn refused_change(state: &AppState, user: UserId, reason: &str, origin: &Origin) -> Result<(), ApiError> {
    let txn = TenantTxn::begin(&state.db, PLATFORM_TENANT).await.context("Failed to begin the transaction")?;
    let outcome = if reason == "throttled" { Outcome::Denied } else { Outcome::Failure };
    let event = Event::new(AuditAction::UserPasswordChange, Actor::user(user))
        .on(user)
        .outcome(outcome)
        .metadata(serde_json::json!({ "reason": reason }));
    audit::record(&txn, event, origin).await.context("Failed to write the audit entry")?;
    txn.commit().await.context("Failed to commit")?;
    Ok(())
}

/// Change the password. Every session of the user ends (everywhere); the response carries a new one for this client.
///
/// Wrong current passwords count under the same throttle as sign-ins (per account and client address, and per
/// account): past the limit, 429 with `Retry-After`, even for the right one.
#[utoipa::path(
    tag = "me",
    request_body = ChangePasswordRequest,
    responses(
        (status = 200, body = TokenPair),
        (status = 401, body = ProblemDetails),
        (status = 422, description = "Wrong current password or invalid new one", body = ProblemDetails),
        (status = 429, description = "Too many wrong current passwords; see Retry-After", body = ProblemDetails),
        (status = 503, description = "Too busy to check the password now; see Retry-After", body = ProblemDetails),
    ),
)]
#[post("/password")]
pub async fn change_password(
    state: web::Data<AppState>,
    principal: Principal,
    origin: ClientOrigin,
    body: JsonBody<ChangePasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    let me = principal.user()?;
    let body = body.into_inner();
    let new_password = Password::parse("new_password", body.new_password)?;
    if body.current_password.chars().count() > Password::MAX_CHARS {
        return Err(invalid("current_password", "is not the current password").into());
    }
    let check = throttle::PasswordCheck::password_change(&state.settings, &me.user.email, origin.0.ip_address);
    if let Err(refused) = check.admit(&state.db).await {
        refused_change(&state, me.user.id, "throttled", &origin.0).await?;
        return Err(refused);
    }
    let verified = match state.passwords.verify(body.current_password, me.user.password_hash.clone()).await {
        Ok(verified) => verified,
        Err(busy) => {
            check.not_checked(&state.db).await?;
            return Err(busy);
        }
    };
    if !verified {
        refused_change(&state, me.user.id, "wrong_current_password", &origin.0).await?;
        return Err(invalid("current_password", "is not the current password").into());
    }
    let hash = state.passwords.hash(new_password.expose().to_owned()).await?;
    // Settled on its own statement (see the sign-in): the current password was right.
    check.succeeded(&state.db).await?;
    let txn = TenantTxn::begin(&state.db, PLATFORM_TENANT).await.context("Failed to begin the transaction")?;
    let user = users::set_password_hash(&txn, me.user.clone(), hash).await.context("Failed to store the password")?;
    let ended = sessions::revoke_all_for_user(&txn, user.id, RevokeReason::PasswordChange)
        .await
        .context("Failed to end the sessions")?;
    let tokens = session::start(&state, &txn, user.id, &origin.0).await?;
    let event = Event::new(AuditAction::UserPasswordChange, Actor::user(user.id))
        .on(user.id)
        .metadata(serde_json::json!({ "sessions_ended": ended }));
    audit::record(&txn, event, &origin.0).await.context("Failed to write the audit entry")?;
    txn.commit().await.context("Failed to commit")?;
    Ok(HttpResponse::Ok().json(tokens))
}
