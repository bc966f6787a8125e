//! `sessions`: login sessions (global, per user). Access tokens name their session; revoking it ends them all.

use sea_orm::ActiveValue::Set;
use sea_orm::IntoActiveModel;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::Expr;

use crate::UserId;
use crate::tenancy::{Db, conn};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: UserId,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub revoked_at: Option<DateTimeUtc>,
    pub revoked_reason: Option<String>,
    pub user_agent: Option<String>,
    pub ip_address: Option<ipnetwork::IpNetwork>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    pub fn is_active(&self, now: DateTimeUtc) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum RevokeReason {
    Logout,
    RefreshTokenReuse,
    PasswordChange,
    Admin,
}

impl RevokeReason {
    /// The value stored in `sessions.revoked_reason`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Opens a session for `user_id` that lasts until `expires_at`.
#[tracing::instrument(skip_all)]
pub async fn create(
    db: &impl Db,
    user_id: UserId,
    expires_at: DateTimeUtc,
    origin: &crate::audit::Origin,
) -> Result<Model, DbErr> {
    let db = conn(db);
    ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        created_at: Set(chrono::Utc::now()),
        expires_at: Set(expires_at),
        revoked_at: Set(None),
        revoked_reason: Set(None),
        user_agent: Set(origin.user_agent.as_deref().map(|ua| crate::audit::truncate(ua, 1024).to_owned())),
        ip_address: Set(origin.ip_address.map(ipnetwork::IpNetwork::from)),
    }
    .insert(db)
    .await
}

#[tracing::instrument(skip_all)]
pub async fn find(db: &impl Db, id: Uuid) -> Result<Option<Model>, DbErr> {
    let db = conn(db);
    Entity::find_by_id(id).one(db).await
}

/// A session's state together with its user's account: what authenticates a signed-in request, in one round trip.
#[derive(Debug, Clone, PartialEq, Eq, sea_orm::FromQueryResult)]
pub struct SessionWithUser {
    /// The session is not revoked and has not expired (by the database's clock).
    pub session_active: bool,
    #[sea_orm(nested)]
    pub user: crate::users::Model,
}

/// The session `id` with its user's account, in one statement; `None` when there is no such session or it is not
/// `user`'s.
#[tracing::instrument(skip_all)]
pub async fn find_with_user(db: &impl Db, id: Uuid, user: UserId) -> Result<Option<SessionWithUser>, DbErr> {
    use sea_orm::FromQueryResult;
    SessionWithUser::find_by_statement(crate::db::stmt(
        "SELECT s.revoked_at IS NULL AND s.expires_at > now() AS session_active,
                u.id, u.email, u.name, u.avatar_url, u.password_hash, u.is_platform_admin, u.created_at,
                u.last_login_at, u.disabled_at, u.email_verified_at
           FROM sessions s
           JOIN users u ON u.id = s.user_id
          WHERE s.id = $1 AND s.user_id = $2",
        [id.into(), user.0.into()],
    ))
    .one(conn(db))
    .await
}

/// Ends one session (no-op if already ended).
#[tracing::instrument(skip_all)]
pub async fn revoke(db: &impl Db, session: Model, reason: RevokeReason) -> Result<(), DbErr> {
    let db = conn(db);
    if session.revoked_at.is_some() {
        return Ok(());
    }
    let mut active = session.into_active_model();
    active.revoked_at = Set(Some(chrono::Utc::now()));
    active.revoked_reason = Set(Some(reason.as_str().to_owned()));
    active.update(db).await.map(|_| ())
}

/// Ends every open session of a user; returns how many were open.
#[tracing::instrument(skip_all)]
pub async fn revoke_all_for_user(db: &impl Db, user_id: UserId, reason: RevokeReason) -> Result<u64, DbErr> {
    let db = conn(db);
    let result = Entity::update_many()
        .col_expr(Column::RevokedAt, Expr::value(chrono::Utc::now()))
        .col_expr(Column::RevokedReason, Expr::value(reason.as_str()))
        .filter(Column::UserId.eq(user_id))
        .filter(Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
