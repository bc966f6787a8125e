//! Sessions and their token pairs: a session row per sign-in, a short-lived JWT for requests and a single-use
//! refresh token (stored hashed) to get the next pair.

use anyhow::Context;
use chrono::{DateTime, Utc};
use entity::audit::Origin;
use entity::{Db, UserId, refresh_tokens, sessions};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::secrets;
use crate::error::ApiError;
use crate::state::AppState;

/// A fresh pair of credentials.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPair {
    /// Short-lived JWT; send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Single-use token for `POST /v1/auth/refresh`; each use returns a new one.
    pub refresh_token: String,
    /// When the session (and so every refresh token of it) ends.
    pub refresh_expires_at: DateTime<Utc>,
}

/// Opens a session in `db` and issues its first token pair.
pub async fn start(state: &AppState, db: &impl Db, user_id: UserId, origin: &Origin) -> Result<TokenPair, ApiError> {
    let expires_at = chrono::Utc::now() + chrono::Duration::seconds(state.settings.session_ttl_secs as i64);
    let session = sessions::create(db, user_id, expires_at, origin).await.context("Failed to create the session")?;
    issue_tokens(state, db, user_id, &session).await
}

/// A new token pair for `session`: the refresh token is stored (hashed) in `db`.
pub async fn issue_tokens(
    state: &AppState,
    db: &impl Db,
    user_id: UserId,
    session: &sessions::Model,
) -> Result<TokenPair, ApiError> {
    let refresh_token = secrets::new_refresh_token();
    refresh_tokens::insert(db, session.id, secrets::sha256(&refresh_token), session.expires_at)
        .await
        .context("Failed to store the refresh token")?;
    Ok(TokenPair {
        access_token: state.jwt.issue(user_id.0, session.id)?,
        token_type: "Bearer",
        expires_in: state.jwt.ttl().as_secs(),
        refresh_token,
        refresh_expires_at: session.expires_at,
    })
}
