//! `refresh_tokens`: single-use, rotating refresh tokens, stored hashed. A token presented twice reveals theft.

use crate::tenancy::{Db, conn};
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use sea_orm::{IntoActiveModel, QuerySelect};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "refresh_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub session_id: Uuid,
    pub token_hash: Vec<u8>,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub used_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

#[tracing::instrument(skip_all)]
pub async fn insert(
    db: &impl Db,
    session_id: Uuid,
    token_hash: Vec<u8>,
    expires_at: DateTimeUtc,
) -> Result<Model, DbErr> {
    let db = conn(db);
    ActiveModel {
        id: Set(Uuid::now_v7()),
        session_id: Set(session_id),
        token_hash: Set(token_hash),
        created_at: Set(chrono::Utc::now()),
        expires_at: Set(expires_at),
        used_at: Set(None),
    }
    .insert(db)
    .await
}

/// Finds a token by hash and locks its row, so that two concurrent refreshes with the same token are serialised and
/// the second one sees it used.
#[tracing::instrument(skip_all)]
pub async fn find_by_hash_for_update(db: &impl Db, token_hash: &[u8]) -> Result<Option<Model>, DbErr> {
    let db = conn(db);
    Entity::find().filter(Column::TokenHash.eq(token_hash.to_vec())).lock_exclusive().one(db).await
}

#[tracing::instrument(skip_all)]
pub async fn mark_used(db: &impl Db, token: Model) -> Result<(), DbErr> {
    let db = conn(db);
    let mut active = token.into_active_model();
    active.used_at = Set(Some(chrono::Utc::now()));
    active.update(db).await.map(|_| ())
}
