//! A request's tenant transaction, bound to the tenant by the same statement that reads what authenticates and
//! authorizes its caller, so that a tenant request costs `BEGIN`, that statement, its own statements and `COMMIT`.
//!
//! The statement calls `app_authorize_user` or `app_authorize_api_key` (migration `m20261201_000011_request_auth`).
//! Each first sets `app.tenant_id` for the rest of the transaction, as [`TenantTxn::begin`] does, and then reads the
//! session, account, membership or key: tenant rows through row-level security like every other read, and all of it
//! inside the request's transaction, so a logout, a disabled account, a removal, a role change or a revoked key that
//! committed before the request began its work is seen by it. The rules themselves (which states refuse, with which
//! status; the key's secret; the creator's cap) are the caller's: these functions only read.

use sea_orm::{DatabaseConnection, DbErr, FromQueryResult};

use crate::api_keys::KeyWithCreator;
use crate::db::stmt;
use crate::tenant_users::Role;
use crate::{TenantId, TenantTxn, UserId};

/// What a signed-in user's request is authorized by, read as its transaction was bound to the tenant.
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct UserAuth {
    /// The session is not revoked and has not expired (by the database's clock).
    pub session_active: bool,
    /// The user's account is not disabled.
    pub user_active: bool,
    /// The user's role in the tenant; `None` when they are not a member.
    pub role: Option<Role>,
}

impl TenantTxn {
    /// Begins a transaction bound to `tenant_id` whose first statement also reads the session `session` of `user`,
    /// the user's account and their membership in the tenant. `None` when there is no such session, or it is
    /// another user's.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant_id))]
    pub async fn begin_as_user(
        db: &DatabaseConnection,
        tenant_id: TenantId,
        user: UserId,
        session: uuid::Uuid,
    ) -> Result<(Self, Option<UserAuth>), DbErr> {
        let txn = crate::db::begin(db).await?;
        let auth = UserAuth::find_by_statement(stmt(
            "SELECT session_active, user_active, role FROM app_authorize_user($1, $2, $3)",
            [tenant_id.0.into(), user.0.into(), session.into()],
        ))
        .one(&txn)
        .await?;
        Ok((Self::bound(txn, tenant_id), auth))
    }

    /// Begins a transaction bound to `tenant_id` whose first statement also reads the API key `key_id` with its
    /// creator's current role in the tenant and account state (see [`KeyWithCreator`]). `None` when the tenant has
    /// no such key.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant_id))]
    pub async fn begin_with_api_key(
        db: &DatabaseConnection,
        tenant_id: TenantId,
        key_id: uuid::Uuid,
    ) -> Result<(Self, Option<KeyWithCreator>), DbErr> {
        let txn = crate::db::begin(db).await?;
        let key = KeyWithCreator::find_by_statement(stmt(
            "SELECT tenant_id, id, name, prefix, secret_hash, role, created_by, created_at, last_used_at, revoked_at,
                    creator_role, creator_active
               FROM app_authorize_api_key($1, $2)",
            [tenant_id.0.into(), key_id.into()],
        ))
        .one(&txn)
        .await?;
        Ok((Self::bound(txn, tenant_id), key))
    }
}
