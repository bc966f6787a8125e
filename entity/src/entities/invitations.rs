//! `invitations`: pending invitations to join a tenant. Tenant-owned; the token is stored hashed.

use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use sea_orm::{IntoActiveModel, QueryOrder, QuerySelect};

use crate::tenant_users::Role;
use crate::{TenantId, TenantTxn, UserId};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "invitations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: TenantId,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    pub token_hash: Vec<u8>,
    pub invited_by: Option<UserId>,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub accepted_at: Option<DateTimeUtc>,
    pub accepted_by: Option<UserId>,
    pub revoked_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    pub fn is_pending(&self, now: DateTimeUtc) -> bool {
        self.accepted_at.is_none() && self.revoked_at.is_none() && self.expires_at > now
    }
}

pub struct NewInvitation<'a> {
    pub id: Uuid,
    pub email: &'a str,
    pub role: Role,
    pub token_hash: Vec<u8>,
    pub invited_by: UserId,
    pub expires_at: DateTimeUtc,
}

#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn create(txn: &TenantTxn, new: NewInvitation<'_>) -> Result<Model, DbErr> {
    ActiveModel {
        tenant_id: Set(txn.tenant_id()),
        id: Set(new.id),
        email: Set(new.email.to_owned()),
        role: Set(new.role),
        token_hash: Set(new.token_hash),
        invited_by: Set(Some(new.invited_by)),
        created_at: Set(chrono::Utc::now()),
        expires_at: Set(new.expires_at),
        accepted_at: Set(None),
        accepted_by: Set(None),
        revoked_at: Set(None),
    }
    .insert(txn.conn())
    .await
}

/// Invitations neither accepted nor revoked nor expired, newest first.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn list_pending(txn: &TenantTxn) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::AcceptedAt.is_null())
        .filter(Column::RevokedAt.is_null())
        .filter(Column::ExpiresAt.gt(chrono::Utc::now()))
        .order_by_desc(Column::CreatedAt)
        .all(txn.conn())
        .await
}

#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn find(txn: &TenantTxn, id: Uuid) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id((txn.tenant_id(), id)).one(txn.conn()).await
}

/// Finds an invitation by its token hash and locks it, so that it can be accepted only once.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn find_by_token_hash_for_update(txn: &TenantTxn, token_hash: &[u8]) -> Result<Option<Model>, DbErr> {
    Entity::find().filter(Column::TokenHash.eq(token_hash.to_vec())).lock_exclusive().one(txn.conn()).await
}

#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn revoke(txn: &TenantTxn, invitation: Model) -> Result<Model, DbErr> {
    let mut active = invitation.into_active_model();
    active.revoked_at = Set(Some(chrono::Utc::now()));
    active.update(txn.conn()).await
}

#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn mark_accepted(txn: &TenantTxn, invitation: Model, by: UserId) -> Result<Model, DbErr> {
    let mut active = invitation.into_active_model();
    active.accepted_at = Set(Some(chrono::Utc::now()));
    active.accepted_by = Set(Some(by));
    active.update(txn.conn()).await
}

/// Revokes the pending invitations `inviter` sent for one of `roles` (the inviter was removed, or demoted below what
/// they invited); how many.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn revoke_pending_sent_by(txn: &TenantTxn, inviter: UserId, roles: &[Role]) -> Result<u64, DbErr> {
    use sea_orm::sea_query::Expr;
    if roles.is_empty() {
        return Ok(0);
    }
    let now = chrono::Utc::now();
    let result = Entity::update_many()
        .col_expr(Column::RevokedAt, Expr::value(now))
        .filter(Column::TenantId.eq(txn.tenant_id()))
        .filter(Column::InvitedBy.eq(inviter))
        .filter(Column::Role.is_in(roles.iter().copied()))
        .filter(Column::AcceptedAt.is_null())
        .filter(Column::RevokedAt.is_null())
        .filter(Column::ExpiresAt.gt(now))
        .exec(txn.conn())
        .await?;
    Ok(result.rows_affected)
}
