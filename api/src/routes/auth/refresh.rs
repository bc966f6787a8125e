//! `POST /v1/auth/refresh`.

use actix_web::{HttpResponse, post, web};
use anyhow::Context;
use entity::audit::{self, Actor, AuditAction, Event};
use entity::audit_logs::Outcome;
use entity::sessions::{self, RevokeReason};
use entity::{PLATFORM_TENANT, TenantTxn, refresh_tokens, users};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::principal::unauthenticated;
use crate::auth::{secrets, session};
use crate::body::JsonBody;
use crate::error::{ApiError, ProblemDetails};
use crate::request_context::ClientOrigin;
use crate::routes::views::TokenPair;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"refresh_token": "rt_9Ql3eZ0mUuUoM3k4fH2b6R8pQ1xXvW7yTz5aC0dE4gI"}))]
pub struct RefreshRequest {
    /// The refresh token of the last pair (single use).
    #[schema(example = "rt_9Ql3eZ0mUuUoM3k4fH2b6R8pQ1xXvW7yTz5aC0dE4gI")]
    pub refresh_token: String,
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
#[post("/refresh")]
pub async fn refresh(
    state: web::Data<AppState>,
    origin: ClientOrigin,
    body: JsonBody<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let hash = secrets::sha256(body.refresh_token.trim());
    let txn = TenantTxn::begin(&state.db, PLATFORM_TENANT).await.context("Failed to begin the transaction")?;
    let token = refresh_tokens::find_by_hash_for_update(&txn, &hash)
        .await
        .context("Failed to read the refresh token")?
        .ok_or_else(|| unauthenticated("The refresh token is not valid."))?;
    let session = sessions::find(&txn, token.session_id)
        .await
        .context("Failed to read the session")?
        .ok_or_else(|| unauthenticated("The refresh token is not valid."))?;
    if token.used_at.is_some() {
        let user_id = session.user_id;
        let was_open = session.revoked_at.is_none();
        sessions::revoke(&txn, session, RevokeReason::RefreshTokenReuse).await.context("Failed to end the session")?;
        if was_open {
            let event = Event::new(AuditAction::AuthRefreshTokenReuse, Actor::user(user_id))
                .on(user_id)
                .outcome(Outcome::Denied)
                .metadata(serde_json::json!({ "session_id": token.session_id }));
            audit::record(&txn, event, &origin.0).await.context("Failed to write the audit entry")?;
        }
        txn.commit().await.context("Failed to commit")?;
        return Err(unauthenticated("The refresh token was already used; the session has been ended."));
    }
    let now = chrono::Utc::now();
    if !session.is_active(now) || token.expires_at <= now {
        return Err(unauthenticated("The session has ended; sign in again."));
    }
    let user = users::find(&txn, session.user_id)
        .await
        .context("Failed to read the user")?
        .filter(|u| u.disabled_at.is_none())
        .ok_or_else(|| unauthenticated("The account is disabled."))?;
    refresh_tokens::mark_used(&txn, token).await.context("Failed to use up the refresh token")?;
    let session_id = session.id;
    let pair = session::issue_tokens(&state, &txn, user.id, &session).await?;
    let event = Event::new(AuditAction::AuthRefresh, Actor::user(user.id))
        .on(user.id)
        .metadata(serde_json::json!({ "session_id": session_id }));
    audit::record(&txn, event, &origin.0).await.context("Failed to write the audit entry")?;
    txn.commit().await.context("Failed to commit")?;
    Ok(HttpResponse::Ok().json(pair))
}
