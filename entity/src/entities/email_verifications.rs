//! `email_verifications`: proofs that a user holds the mailbox of their email address. Global (users are global);
//! single-use, expiring, stored as the SHA-256 of a 256-bit random token. Sending a new one expires the older ones.

use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::Expr;
use sea_orm::{IntoActiveModel, QuerySelect};

use crate::UserId;
use crate::tenancy::{Db, conn};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "email_verifications")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: UserId,
    /// The address the token was sent to: it verifies only that address.
    pub email: String,
    pub token_hash: Vec<u8>,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub used_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Stores a new token for `user` and `email`, expiring every older unused one of the user.
#[tracing::instrument(skip_all)]
pub async fn create(
    db: &impl Db,
    user: UserId,
    email: &str,
    token_hash: Vec<u8>,
    expires_at: DateTimeUtc,
) -> Result<Model, DbErr> {
    let db = conn(db);
    let now = chrono::Utc::now();
    Entity::update_many()
        .col_expr(Column::ExpiresAt, Expr::value(now))
        .filter(Column::UserId.eq(user))
        .filter(Column::UsedAt.is_null())
        .filter(Column::ExpiresAt.gt(now))
        .exec(db)
        .await?;
    ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user),
        email: Set(email.to_owned()),
        token_hash: Set(token_hash),
        created_at: Set(now),
        expires_at: Set(expires_at),
        used_at: Set(None),
    }
    .insert(db)
    .await
}

/// Finds a token by hash and locks it, so that it is used once even when presented twice at the same moment.
#[tracing::instrument(skip_all)]
pub async fn find_by_hash_for_update(db: &impl Db, token_hash: &[u8]) -> Result<Option<Model>, DbErr> {
    let db = conn(db);
    Entity::find().filter(Column::TokenHash.eq(token_hash.to_vec())).lock_exclusive().one(db).await
}

#[tracing::instrument(skip_all)]
pub async fn mark_used(db: &impl Db, token: Model) -> Result<Model, DbErr> {
    let db = conn(db);
    let mut active = token.into_active_model();
    active.used_at = Set(Some(chrono::Utc::now()));
    active.update(db).await
}
