//! [`TenantAccess`]: the authentication and authorization of one request on one tenant, decided inside the
//! transaction that does the work. The tenant id in the path is only a selector: the session, the account and the
//! membership (or the API key row and its creator) are read by the statement that binds the `TenantTxn` to the tenant
//! (`TenantTxn::begin_as_user`, `TenantTxn::begin_with_api_key`), so a logout, a disabled account, a removed member or
//! a revoked key loses access at once, and the request pays one round trip for all of it. An API key acts with the
//! lower of its own role and its creator's current role, and stops working (401) once its creator is no longer an
//! active member. A caller who is not a member gets 404, exactly as for a tenant that does not exist, so existence
//! never leaks; a member lacking the permission gets 403.

use anyhow::Context;
use entity::audit::{self, Actor, AuditAction, Event, Origin};
use entity::audit_logs::Outcome;
use entity::tenant_users::Role;
use entity::{TenantId, TenantTxn, UserId, api_keys};
use subtle::ConstantTimeEq;

use super::permissions::{Permission, allows};
use super::principal::{Caller, account_disabled, api_key_not_allowed, session_ended, unauthenticated};
use super::secrets::ApiKeyToken;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

pub struct TenantAccess {
    pub txn: TenantTxn,
    /// The caller's role in the tenant; for an API key, the key's role capped by its creator's current role.
    pub role: Role,
    /// Who the audit log names.
    pub actor: Actor,
    /// The signed-in user, `None` for API keys.
    pub user_id: Option<UserId>,
}

/// Records in the tenant's log that one of its API keys was refused (`api_key.use_denied`, with the reason, the
/// request and where it came from), in the request's transaction, bound to the tenant, which then commits: the
/// refusal itself changed nothing else.
async fn deny_key(txn: TenantTxn, token: &ApiKeyToken, reason: &str) -> Result<(), ApiError> {
    let (origin, request) = token.used_by.as_deref().cloned().unwrap_or_default();
    let event = Event::new(AuditAction::ApiKeyUseDenied, Actor::api_key(token.key_id))
        .on(token.key_id)
        .outcome(Outcome::Denied)
        .metadata(serde_json::json!({ "reason": reason, "request": request }));
    audit::record(&txn, event, &origin).await.context("Failed to record the refused API key")?;
    txn.commit().await.context("Failed to commit")?;
    Ok(())
}

impl TenantAccess {
    /// Opens the tenant transaction and checks that `caller` may do `permission` in `tenant_id`: `BEGIN`, then one
    /// statement that binds the transaction to the tenant and reads the caller's session, account and membership (or
    /// API key and its creator), so the whole check costs two round trips.
    pub async fn begin(
        state: &AppState,
        caller: &Caller,
        tenant_id: TenantId,
        permission: Permission,
    ) -> Result<Self, ApiError> {
        let not_found = || ApiError::not_found("Tenant");
        let (txn, role, actor, user_id) = match caller {
            Caller::User(claim) => {
                let (txn, auth) = TenantTxn::begin_as_user(&state.db, tenant_id, claim.user_id, claim.session_id)
                    .await
                    .context("Failed to begin the tenant transaction")?;
                let auth = auth.filter(|a| a.session_active).ok_or_else(session_ended)?;
                if !auth.user_active {
                    return Err(account_disabled());
                }
                tracing::Span::current().record("user_id", tracing::field::display(claim.user_id));
                // The platform tenant has no members; refused here too, whatever a row might say.
                let role = auth.role.filter(|_| tenant_id != entity::PLATFORM_TENANT).ok_or_else(not_found)?;
                (txn, role, Actor::user(claim.user_id), Some(claim.user_id))
            }
            Caller::ApiKey(token) => {
                if tenant_id == entity::PLATFORM_TENANT || token.tenant_id != tenant_id {
                    return Err(not_found());
                }
                let (txn, found) = TenantTxn::begin_with_api_key(&state.db, tenant_id, token.key_id)
                    .await
                    .context("Failed to begin the tenant transaction")?;
                // No such key in this tenant: nothing to name in its log.
                let found = found.ok_or_else(|| unauthenticated("The API key is invalid or revoked."))?;
                let refusal = if found.key.revoked_at.is_some() {
                    Some("revoked")
                } else if !bool::from(found.key.secret_hash.ct_eq(&token.secret_hash)) {
                    Some("wrong_secret")
                } else {
                    None
                };
                if let Some(reason) = refusal {
                    deny_key(txn, token, reason).await?;
                    return Err(unauthenticated("The API key is invalid or revoked."));
                }
                // The key acts for its creator: never above what they may do now, and not at all once they are gone.
                let Some(creator_role) = found.creator_role.filter(|_| found.creator_active) else {
                    deny_key(txn, token, "creator_not_member").await?;
                    return Err(unauthenticated(
                        "The member who created this API key is no longer an active member of the tenant, so the key \
                         no longer works; create a new one.",
                    ));
                };
                let key = found.key;
                let stale = key.last_used_at.is_none_or(|t| t < chrono::Utc::now() - chrono::Duration::minutes(1));
                if stale {
                    api_keys::touch_last_used(&txn, key.id).await.context("Failed to record the API key's use")?;
                }
                (txn, key.role.least(creator_role), Actor::api_key(key.id), None)
            }
        };
        tracing::Span::current().record("tenant_id", tracing::field::display(tenant_id));
        if !allows(role, permission) {
            if let Caller::ApiKey(token) = caller {
                deny_key(txn, token, "role").await?;
            }
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                format!("Your role ({}) does not allow this.", role.as_str()),
            ));
        }
        Ok(Self { txn, role, actor, user_id })
    }

    /// Who is calling, as idempotency keys are scoped: `user:<id>` or `api_key:<id>`.
    pub fn principal(&self) -> String {
        match (self.user_id, self.actor.id) {
            (Some(user), _) => format!("user:{user}"),
            (None, Some(key)) => format!("api_key:{key}"),
            (None, None) => "unknown".to_owned(),
        }
    }

    /// The signed-in user, for actions an API key may not take (minting credentials): checked only once the tenant
    /// is known to be the caller's, so a stranger's key still gets 404.
    pub fn user(&self) -> Result<UserId, ApiError> {
        self.user_id.ok_or_else(api_key_not_allowed)
    }

    /// Appends a successful `action` on the resource `target_id` to the tenant's audit log, in this transaction,
    /// with the caller as actor.
    pub async fn audit(
        &self,
        action: AuditAction,
        target_id: impl ToString,
        metadata: serde_json::Value,
        origin: &Origin,
    ) -> Result<(), ApiError> {
        let event = Event::new(action, self.actor.clone()).on(target_id).metadata(metadata);
        audit::record(&self.txn, event, origin).await.context("Failed to write the audit entry")?;
        Ok(())
    }

    /// Commits the work (and its audit rows).
    pub async fn commit(self) -> Result<(), ApiError> {
        Ok(self.txn.commit().await.context("Failed to commit")?)
    }
}
