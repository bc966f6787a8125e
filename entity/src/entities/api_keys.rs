//! `api_keys`: credentials for machine clients of one tenant. Tenant-owned; only a hash of the secret is stored.

use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{IntoActiveModel, QueryOrder};

use crate::tenant_users::Role;
use crate::{TenantId, TenantTxn, UserId};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: TenantId,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    pub secret_hash: Vec<u8>,
    pub role: Role,
    pub created_by: Option<UserId>,
    pub created_at: DateTimeUtc,
    pub last_used_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

pub struct NewApiKey<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub prefix: String,
    pub secret_hash: Vec<u8>,
    pub role: Role,
    pub created_by: UserId,
}

#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn create(txn: &TenantTxn, new: NewApiKey<'_>) -> Result<Model, DbErr> {
    ActiveModel {
        tenant_id: Set(txn.tenant_id()),
        id: Set(new.id),
        name: Set(new.name.to_owned()),
        prefix: Set(new.prefix),
        secret_hash: Set(new.secret_hash),
        role: Set(new.role),
        created_by: Set(Some(new.created_by)),
        created_at: Set(chrono::Utc::now()),
        last_used_at: Set(None),
        revoked_at: Set(None),
    }
    .insert(txn.conn())
    .await
}

/// Keys not revoked, newest first.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn list_active(txn: &TenantTxn) -> Result<Vec<Model>, DbErr> {
    Entity::find().filter(Column::RevokedAt.is_null()).order_by_desc(Column::CreatedAt).all(txn.conn()).await
}

/// A key together with what its creator is now: an API key never does more than the member who made it may do at the
/// time of the request. Read, in the request's transaction, by [`TenantTxn::begin_with_api_key`].
#[derive(Debug, Clone, PartialEq, Eq, sea_orm::FromQueryResult)]
pub struct KeyWithCreator {
    #[sea_orm(nested)]
    pub key: Model,
    /// The creator's current role in the key's tenant; `None` when they are no longer a member (or were deleted).
    pub creator_role: Option<Role>,
    /// Whether the creator's account exists and is not disabled.
    pub creator_active: bool,
}

/// Revokes every active key `user` created in the transaction's tenant (they left or were removed); how many.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn revoke_created_by(txn: &TenantTxn, user: UserId) -> Result<u64, DbErr> {
    let result = Entity::update_many()
        .col_expr(Column::RevokedAt, Expr::value(chrono::Utc::now()))
        .filter(Column::TenantId.eq(txn.tenant_id()))
        .filter(Column::CreatedBy.eq(user))
        .filter(Column::RevokedAt.is_null())
        .exec(txn.conn())
        .await?;
    Ok(result.rows_affected)
}

#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn find(txn: &TenantTxn, id: Uuid) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id((txn.tenant_id(), id)).one(txn.conn()).await
}

#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn revoke(txn: &TenantTxn, key: Model) -> Result<Model, DbErr> {
    let mut active = key.into_active_model();
    active.revoked_at = Set(Some(chrono::Utc::now()));
    active.update(txn.conn()).await
}

/// Records a use, at most once a minute per key, so that a busy key does not turn every read into a write.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn touch_last_used(txn: &TenantTxn, id: Uuid) -> Result<(), DbErr> {
    let now = chrono::Utc::now();
    Entity::update_many()
        .col_expr(Column::LastUsedAt, Expr::value(now))
        .filter(Column::TenantId.eq(txn.tenant_id()))
        .filter(Column::Id.eq(id))
        .filter(Column::LastUsedAt.is_null().or(Column::LastUsedAt.lt(now - chrono::Duration::minutes(1))))
        .exec(txn.conn())
        .await
        .map(|_| ())
}
