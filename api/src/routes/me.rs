//! `/v1/me`: the signed-in user, their memberships, and their password.

use actix_web::{HttpResponse, get, post, web};
use entity::audit::{Actor, Origin};
use entity::audit_logs::Outcome;
use entity::sessions::{self, RevokeReason};
use entity::{PLATFORM_TENANT, TenantTxn, UserId, UserTxn, tenant_users, tenants, users};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::principal::Principal;
use crate::auth::throttle;
use crate::body::JsonBody;
use crate::domain::{Password, invalid};
use crate::error::{ApiError, ProblemDetails};
use crate::request_context::ClientOrigin;
use crate::routes::auth::{audit_platform, start_session};
use crate::routes::views::{MembershipView, TokenPair, UserView};
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct MeResponse {
    pub user: UserView,
    /// Every tenant the user belongs to, with their role.
    pub memberships: Vec<MembershipView>,
}

/// The tenants `user` belongs to, read through the own-memberships policy.
pub(crate) async fn memberships(state: &AppState, user: entity::UserId) -> Result<Vec<MembershipView>, ApiError> {
    let txn = UserTxn::begin(&state.db, user).await?;
    let rows = tenant_users::memberships_of(&txn).await?;
    txn.commit().await?;
    let found = tenants::find_many(&state.db, rows.iter().map(|m| m.tenant_id).collect()).await?;
    Ok(found
        .into_iter()
        .filter_map(|t| {
            let role = rows.iter().find(|m| m.tenant_id == t.id)?.role;
            Some(MembershipView { tenant: t.into(), role })
        })
        .collect())
}

/// The signed-in user and their memberships.
#[utoipa::path(tag = "me", responses((status = 200, body = MeResponse), (status = 401, body = ProblemDetails)))]
#[get("/v1/me")]
pub async fn get_me(state: web::Data<AppState>, principal: Principal) -> Result<HttpResponse, ApiError> {
    let me = principal.user()?;
    let memberships = memberships(&state, me.user.id).await?;
    Ok(HttpResponse::Ok().json(MeResponse { user: me.user.clone().into(), memberships }))
}

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
    let txn = TenantTxn::begin(&state.db, PLATFORM_TENANT).await?;
    let outcome = if reason == "throttled" { Outcome::Denied } else { Outcome::Failure };
    let metadata = serde_json::json!({ "reason": reason });
    audit_platform(&txn, Actor::user(user), "user.password_change", Some(user.to_string()), outcome, metadata, origin)
        .await?;
    txn.commit().await?;
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
#[post("/v1/me/password")]
pub async fn change_password(
    state: web::Data<AppState>,
    principal: Principal,
    origin: ClientOrigin,
    body: JsonBody<ChangePasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    let me = principal.user()?;
    let body = body.into_inner();
    let new_password = Password::parse("new_password", body.new_password).map_err(|e| ApiError::validation(vec![e]))?;
    if body.current_password.chars().count() > Password::MAX_CHARS {
        return Err(ApiError::validation(vec![invalid("current_password", "is not the current password")]));
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
        return Err(ApiError::validation(vec![invalid("current_password", "is not the current password")]));
    }
    let hash = state.passwords.hash(new_password.expose().to_owned()).await?;
    let txn = TenantTxn::begin(&state.db, PLATFORM_TENANT).await?;
    check.succeeded(txn.connection()).await?;
    let user = users::set_password_hash(txn.connection(), me.user.clone(), hash).await?;
    let ended = sessions::revoke_all_for_user(txn.connection(), user.id, RevokeReason::PasswordChange).await?;
    let tokens = start_session(&state, txn.connection(), user.id, &origin.0).await?;
    audit_platform(
        &txn,
        Actor::user(user.id),
        "user.password_change",
        Some(user.id.to_string()),
        Outcome::Success,
        serde_json::json!({ "sessions_ended": ended }),
        &origin.0,
    )
    .await?;
    txn.commit().await?;
    Ok(HttpResponse::Ok().json(tokens))
}
