//! [`Principal`]: the authenticated caller, extracted from `Authorization: Bearer <credential>`.
//!
//! A JWT access token is verified (signature, algorithm, key id, claims) and then its session is read: a logged-out,
//! reused-refresh-token or password-changed session, or a disabled user, is refused at once, not when the token
//! expires. An API key (`thk_...`) is only parsed here; it is checked against its (hashed) row inside the request's
//! tenant transaction by [`super::tenant_access::TenantAccess`], the only place API keys are accepted.

use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpRequest, web};
use anyhow::Context;
use entity::{UserId, sessions, users};
use futures_util::future::LocalBoxFuture;

use super::secrets::{API_KEY_PREFIX, ApiKeyToken, parse_api_key};
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct UserPrincipal {
    pub user: users::Model,
    pub session_id: uuid::Uuid,
}

/// Who is calling.
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
            Self::ApiKey(_) => Err(ApiError::new(
                ErrorCode::Forbidden,
                "API keys can only be used on tenant endpoints (/v1/tenants/{tenant_id}/...).",
            )),
        }
    }
}

/// A 401 with the `WWW-Authenticate` challenge RFC 6750 asks for.
pub fn unauthenticated(detail: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::Unauthenticated, detail)
        .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"testio-hub\""))
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let credential =
            req.headers().get(header::AUTHORIZATION).map(|v| v.to_str().map(str::to_owned).unwrap_or_default());
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal(anyhow::anyhow!("AppState is not registered")))?;
            let credential = credential.ok_or_else(|| unauthenticated("Missing `Authorization: Bearer` header."))?;
            // The scheme name is case-insensitive (RFC 9110 section 11.1).
            let scheme_ok = credential.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("bearer "));
            let Some(token) = credential.get(7..).filter(|_| scheme_ok).map(str::trim) else {
                return Err(unauthenticated("The Authorization header must use the Bearer scheme."));
            };
            if token.starts_with(API_KEY_PREFIX) {
                return parse_api_key(token)
                    .map(Principal::ApiKey)
                    .ok_or_else(|| unauthenticated("The API key is malformed."));
            }
            let claims = state.jwt.verify(token).map_err(|e| unauthenticated(e.to_string()))?;
            let session = sessions::find(&state.db, claims.sid).await.context("Failed to read the session")?;
            let active = session
                .filter(|s| s.user_id.0 == claims.sub && s.is_active(chrono::Utc::now()))
                .ok_or_else(|| unauthenticated("The session has ended; sign in again."))?;
            let user = users::find(&state.db, UserId(claims.sub))
                .await
                .context("Failed to read the signed-in user")?
                .filter(|u| u.disabled_at.is_none())
                .ok_or_else(|| unauthenticated("The account is disabled."))?;
            tracing::Span::current().record("user_id", tracing::field::display(user.id));
            Ok(Principal::User(UserPrincipal { user, session_id: active.id }))
        })
    }
}
