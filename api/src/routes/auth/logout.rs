//! `POST /v1/auth/logout`.

use actix_web::{HttpResponse, post, web};
use anyhow::Context;
use entity::audit::{self, Actor, AuditAction, Event};
use entity::sessions::{self, RevokeReason};
use entity::{PLATFORM_TENANT, TenantTxn};

use crate::auth::principal::Principal;
use crate::error::{ApiError, ProblemDetails};
use crate::request_context::ClientOrigin;
use crate::state::AppState;

/// End the current session: its access and refresh tokens stop working at once.
#[utoipa::path(
    tag = "auth",
    responses((status = 204), (status = 401, body = ProblemDetails)),
)]
#[post("/logout")]
pub async fn logout(
    state: web::Data<AppState>,
    principal: Principal,
    origin: ClientOrigin,
) -> Result<HttpResponse, ApiError> {
    let me = principal.user()?;
    let txn = TenantTxn::begin(&state.db, PLATFORM_TENANT).await.context("Failed to begin the transaction")?;
    if let Some(session) = sessions::find(&txn, me.session_id).await.context("Failed to read the session")? {
        sessions::revoke(&txn, session, RevokeReason::Logout).await.context("Failed to end the session")?;
    }
    let event = Event::new(AuditAction::AuthLogout, Actor::user(me.user.id))
        .on(me.user.id)
        .metadata(serde_json::json!({ "session_id": me.session_id }));
    audit::record(&txn, event, &origin.0).await.context("Failed to write the audit entry")?;
    txn.commit().await.context("Failed to commit")?;
    Ok(HttpResponse::NoContent().finish())
}
