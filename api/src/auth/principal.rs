//! Who calls, from `Authorization: Bearer <credential>`: [`Caller`] for tenant endpoints, [`Principal`] for the rest.
//!
//! A [`Caller`] is what the credential claims, checked as far as it can be without the database: a JWT access token's
//! signature, algorithm, key id and claims, or an API key's (`thk_...`) form. Tenant endpoints hand it to
//! [`super::tenant_access::TenantAccess::begin`], which checks everything else (the session, the account, the
//! membership, or the key's hashed row and its creator) in the statement that binds the request's transaction to the
//! tenant: one round trip for all of it, inside the transaction that does the work.
//!
//! A [`Principal`] is a signed-in user whose session and account have been read, in one statement, before the
//! handler runs: for the endpoints outside a tenant. Either way a logged-out, reused-refresh-token or password-changed
//! session, or a disabled user, is refused at once, not when the token expires; API keys work on tenant endpoints
//! only.

use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpRequest, web};
use anyhow::Context;
use entity::{UserId, sessions, users};
use futures_util::future::{LocalBoxFuture, Ready, ready};

use super::secrets::{API_KEY_PREFIX, ApiKeyToken, parse_api_key};
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// A caller whose access token is valid; their session and account are not read yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionClaim {
    pub user_id: UserId,
    pub session_id: uuid::Uuid,
}

/// Who the credential says is calling; see the module documentation for what has been checked.
#[derive(Debug, Clone)]
pub enum Caller {
    User(SessionClaim),
    /// A parsed, not yet verified, API key.
    ApiKey(ApiKeyToken),
}

impl Caller {
    /// The credential of `req`, verified as far as it can be without the database.
    fn from_headers(req: &HttpRequest) -> Result<Self, ApiError> {
        let state = req
            .app_data::<web::Data<AppState>>()
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("AppState is not registered")))?;
        let credential = req
            .headers()
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthenticated("Missing `Authorization: Bearer` header."))?
            .to_str()
            .unwrap_or_default();
        // The scheme name is case-insensitive (RFC 9110 section 11.1).
        let scheme_ok = credential.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("bearer "));
        let Some(token) = credential.get(7..).filter(|_| scheme_ok).map(str::trim) else {
            return Err(unauthenticated("The Authorization header must use the Bearer scheme."));
        };
        if token.starts_with(API_KEY_PREFIX) {
            let mut key = parse_api_key(token).ok_or_else(|| unauthenticated("The API key is malformed."))?;
            let request = format!("{} {}", req.method(), req.path());
            key.used_by = Some(Box::new((crate::request_context::ClientOrigin::of(req).0, request)));
            return Ok(Caller::ApiKey(key));
        }
        let claims = state.jwt.verify(token).map_err(|e| unauthenticated(e.to_string()))?;
        Ok(Caller::User(SessionClaim { user_id: UserId(claims.sub), session_id: claims.sid }))
    }

    /// The user the access token names (not yet checked against the database), `None` for an API key.
    pub fn claimed_user(&self) -> Option<UserId> {
        match self {
            Self::User(claim) => Some(claim.user_id),
            Self::ApiKey(_) => None,
        }
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Self::from_headers(req))
    }
}

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct UserPrincipal {
    pub user: users::Model,
    pub session_id: uuid::Uuid,
}

/// Who is calling, on an endpoint outside a tenant.
#[derive(Debug, Clone)]
pub enum Principal {
    User(UserPrincipal),
    /// A parsed, not yet verified, API key.
    ApiKey(ApiKeyToken),
}

impl Principal {
    /// The signed-in user, for endpoints that API keys may not use.
    pub fn user(&self) -> Result<&UserPrincipal, ApiError> {
        match self {
            Self::User(u) => Ok(u),
            Self::ApiKey(_) => Err(api_key_not_allowed()),
        }
    }
}

/// A 401 with the `WWW-Authenticate` challenge RFC 6750 asks for.
pub fn unauthenticated(detail: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::Unauthenticated, detail)
        .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"testio-hub\""))
}

/// The 401 of a valid access token whose session was revoked or has expired (or is not the token's user's).
pub(super) fn session_ended() -> ApiError {
    unauthenticated("The session has ended; sign in again.")
}

/// The 401 of a valid access token of a disabled account.
pub(super) fn account_disabled() -> ApiError {
    unauthenticated("The account is disabled.")
}

/// The 403 of an API key used where only a signed-in user may act.
pub(super) fn api_key_not_allowed() -> ApiError {
    ApiError::new(ErrorCode::Forbidden, "API keys can only be used on tenant endpoints (/v1/tenants/{tenant_id}/...).")
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let caller = Caller::from_headers(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let claim = match caller? {
                Caller::ApiKey(token) => return Ok(Principal::ApiKey(token)),
                Caller::User(claim) => claim,
            };
            let state = state.ok_or_else(|| ApiError::internal(anyhow::anyhow!("AppState is not registered")))?;
            // A read, so it may run again when the pooled connection it got was dead.
            let found = entity::db::retry_if_dead(&state.db, || {
                sessions::find_with_user(&state.db, claim.session_id, claim.user_id)
            })
            .await
            .context("Failed to read the session and the signed-in user")?;
            let found = found.filter(|f| f.session_active).ok_or_else(session_ended)?;
            if found.user.disabled_at.is_some() {
                return Err(account_disabled());
            }
            tracing::Span::current().record("user_id", tracing::field::display(found.user.id));
            Ok(Principal::User(UserPrincipal { user: found.user, session_id: claim.session_id }))
        })
    }
}
