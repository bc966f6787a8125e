//! `/v1/auth`: register, log in, refresh, log out. Events that belong to no tenant are audited under the platform
//! tenant, in the same transaction as the change.

use actix_web::{HttpResponse, post, web};
use entity::audit::{self, Actor, Event, Origin};
use entity::audit_logs::Outcome;
use entity::sessions::{self, RevokeReason};
use entity::{PLATFORM_TENANT, TenantTxn, UserId, refresh_tokens, users};
use sea_orm::ConnectionTrait;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::principal::{Principal, unauthenticated};
use crate::auth::{secrets, throttle};
use crate::body::JsonBody;
use crate::domain::{Email, Password, parse_name};
use crate::error::{ApiError, ErrorCode, ProblemDetails, is_unique_violation};
use crate::request_context::ClientOrigin;
use crate::routes::email_verification;
use crate::routes::views::{TokenPair, UserView};
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ann@example.com", "password": "correct horse battery staple"}))]
pub struct LoginRequest {
    #[schema(format = Email, min_length = 3, max_length = 254, example = "ann@example.com")]
    pub email: String,
    #[schema(max_length = 1024, example = "correct horse battery staple")]
    pub password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"refresh_token": "rt_9Ql3eZ0mUuUoM3k4fH2b6R8pQ1xXvW7yTz5aC0dE4gI"}))]
pub struct RefreshRequest {
    /// The refresh token of the last pair (single use).
    #[schema(example = "rt_9Ql3eZ0mUuUoM3k4fH2b6R8pQ1xXvW7yTz5aC0dE4gI")]
    pub refresh_token: String,
}

/// A signed-in user and their first credentials.
#[derive(Serialize, ToSchema)]
pub struct AuthResponse {
    pub user: UserView,
    pub tokens: TokenPair,
}

/// Opens a session in `db` and issues its first token pair.
pub(crate) async fn start_session(
    state: &AppState,
    db: &impl ConnectionTrait,
    user_id: UserId,
    origin: &Origin,
) -> Result<TokenPair, ApiError> {
    let expires_at = chrono::Utc::now() + chrono::Duration::seconds(state.settings.session_ttl_secs as i64);
    let session = sessions::create(db, user_id, expires_at, origin).await?;
    issue_tokens(state, db, user_id, &session).await
}

async fn issue_tokens(
    state: &AppState,
    db: &impl ConnectionTrait,
    user_id: UserId,
    session: &sessions::Model,
) -> Result<TokenPair, ApiError> {
    let refresh_token = secrets::new_refresh_token();
    refresh_tokens::insert(db, session.id, secrets::sha256(&refresh_token), session.expires_at).await?;
    Ok(TokenPair {
        access_token: state.jwt.issue(user_id.0, session.id)?,
        token_type: "Bearer",
        expires_in: state.jwt.ttl().as_secs(),
        refresh_token,
        refresh_expires_at: session.expires_at,
    })
}

/// Writes a platform-level audit entry.
pub(crate) async fn audit_platform(
    txn: &TenantTxn,
    actor: Actor,
    action: &str,
    resource_id: Option<String>,
    outcome: Outcome,
    metadata: serde_json::Value,
    origin: &Origin,
) -> Result<(), ApiError> {
    audit::record(txn, Event { actor, action, resource_type: "user", resource_id, outcome, metadata, origin }).await?;
    Ok(())
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
#[post("/v1/auth/register")]
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
    if users::find_by_email(&state.db, email.as_str()).await?.is_some() {
        return Err(email_taken());
    }
    let hash = state.passwords.hash_for_new_account(password.expose().to_owned()).await?;
    let txn = TenantTxn::begin(&state.db, PLATFORM_TENANT).await?;
    let user = users::create(
        txn.connection(),
        users::NewUser { email: email.as_str(), name: &name, password_hash: Some(hash) },
    )
    .await
    .map_err(|e| if is_unique_violation(&e) { email_taken() } else { e.into() })?;
    let tokens = start_session(&state, txn.connection(), user.id, &origin.0).await?;
    let (verification, _) = email_verification::issue(&state, txn.connection(), &user).await?;
    audit_platform(
        &txn,
        Actor::user(user.id),
        "user.register",
        Some(user.id.to_string()),
        Outcome::Success,
        serde_json::json!({}),
        &origin.0,
    )
    .await?;
    txn.commit().await?;
    // A mail that cannot be sent now is logged by the mailer; `POST /v1/me/verification-email` sends another.
    let _ = state.mailer.send(verification).await;
    Ok(HttpResponse::Created().json(AuthResponse { user: user.into(), tokens }))
}

fn email_taken() -> ApiError {
    ApiError::new(ErrorCode::Conflict, "An account with this email already exists.")
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
#[post("/v1/auth/login")]
pub async fn login(
    state: web::Data<AppState>,
    origin: ClientOrigin,
    body: JsonBody<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let email = Email::parse("email", &body.email).map_err(|e| ApiError::validation(vec![e]))?;
    if body.password.chars().count() > Password::MAX_CHARS {
        return Err(ApiError::validation(vec![crate::domain::invalid("password", "is too long")]));
    }
    let user = users::find_by_email(&state.db, email.as_str()).await?;
    let actor = user.as_ref().map_or(Actor::anonymous(), |u| Actor::user(u.id));
    let resource_id = user.as_ref().map(|u| u.id.to_string());
    let check = throttle::PasswordCheck::sign_in(&state.settings, email.as_str(), origin.0.ip_address);
    if let Err(refused) = check.admit(&state.db).await {
        let txn = TenantTxn::begin(&state.db, PLATFORM_TENANT).await?;
        let metadata = serde_json::json!({ "reason": "throttled" });
        audit_platform(&txn, actor, "auth.login", resource_id, Outcome::Denied, metadata, &origin.0).await?;
        txn.commit().await?;
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
    let txn = TenantTxn::begin(&state.db, PLATFORM_TENANT).await?;
    let Some(user) = user.filter(|_| ok) else {
        let metadata = serde_json::json!({ "reason": "invalid_credentials" });
        audit_platform(&txn, actor, "auth.login", resource_id, Outcome::Failure, metadata, &origin.0).await?;
        txn.commit().await?;
        return Err(unauthenticated("Invalid email or password."));
    };
    check.succeeded(txn.connection()).await?;
    let user = users::touch_last_login(txn.connection(), user).await?;
    let tokens = start_session(&state, txn.connection(), user.id, &origin.0).await?;
    let user_id = user.id;
    audit_platform(
        &txn,
        Actor::user(user_id),
        "auth.login",
        Some(user_id.to_string()),
        Outcome::Success,
        serde_json::json!({}),
        &origin.0,
    )
    .await?;
    txn.commit().await?;
    Ok(HttpResponse::Ok().json(AuthResponse { user: user.into(), tokens }))
}

/// Exchange a refresh token for a new token pair.
///
/// Refresh tokens are single-use. Presenting one that was already used means it was copied: the whole session is
/// ended, and every token of it stops working.
#[utoipa::path(
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, body = TokenPair),
        (status = 401, description = "Unknown, used, expired or revoked refresh token", body = ProblemDetails),
    ),
)]
#[post("/v1/auth/refresh")]
pub async fn refresh(
    state: web::Data<AppState>,
    origin: ClientOrigin,
    body: JsonBody<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let hash = secrets::sha256(body.refresh_token.trim());
    let txn = TenantTxn::begin(&state.db, PLATFORM_TENANT).await?;
    let token = refresh_tokens::find_by_hash_for_update(txn.connection(), &hash)
        .await?
        .ok_or_else(|| unauthenticated("The refresh token is not valid."))?;
    let session = sessions::find(txn.connection(), token.session_id)
        .await?
        .ok_or_else(|| unauthenticated("The refresh token is not valid."))?;
    if token.used_at.is_some() {
        let user_id = session.user_id;
        let was_open = session.revoked_at.is_none();
        sessions::revoke(txn.connection(), session, RevokeReason::RefreshTokenReuse).await?;
        if was_open {
            audit_platform(
                &txn,
                Actor::user(user_id),
                "auth.refresh_token_reuse",
                Some(user_id.to_string()),
                Outcome::Denied,
                serde_json::json!({ "session_id": token.session_id }),
                &origin.0,
            )
            .await?;
        }
        txn.commit().await?;
        return Err(unauthenticated("The refresh token was already used; the session has been ended."));
    }
    let now = chrono::Utc::now();
    if !session.is_active(now) || token.expires_at <= now {
        return Err(unauthenticated("The session has ended; sign in again."));
    }
    let user = users::find(txn.connection(), session.user_id)
        .await?
        .filter(|u| u.disabled_at.is_none())
        .ok_or_else(|| unauthenticated("The account is disabled."))?;
    refresh_tokens::mark_used(txn.connection(), token).await?;
    let pair = issue_tokens(&state, txn.connection(), user.id, &session).await?;
    txn.commit().await?;
    Ok(HttpResponse::Ok().json(pair))
}

/// End the current session: its access and refresh tokens stop working at once.
#[utoipa::path(
    tag = "auth",
    responses((status = 204), (status = 401, body = ProblemDetails)),
)]
#[post("/v1/auth/logout")]
pub async fn logout(
    state: web::Data<AppState>,
    principal: Principal,
    origin: ClientOrigin,
) -> Result<HttpResponse, ApiError> {
    let me = principal.user()?;
    let txn = TenantTxn::begin(&state.db, PLATFORM_TENANT).await?;
    if let Some(session) = sessions::find(txn.connection(), me.session_id).await? {
        sessions::revoke(txn.connection(), session, RevokeReason::Logout).await?;
    }
    audit_platform(
        &txn,
        Actor::user(me.user.id),
        "auth.logout",
        Some(me.user.id.to_string()),
        Outcome::Success,
        serde_json::json!({ "session_id": me.session_id }),
        &origin.0,
    )
    .await?;
    txn.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}
