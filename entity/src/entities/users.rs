//! `users`: global accounts. Emails are unique case-insensitively (a unique index on `lower(email)`).

use sea_orm::entity::prelude::*;
use sea_orm::sea_query::{ExprTrait, Func};
use sea_orm::{ActiveValue::Set, IntoActiveModel};

use crate::UserId;
use crate::tenancy::{Db, conn};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub avatar_url: Option<String>,
    /// PHC-format argon2id hash; `None` for accounts that cannot log in with a password.
    pub password_hash: Option<String>,
    pub is_platform_admin: bool,
    pub created_at: DateTimeUtc,
    pub last_login_at: Option<DateTimeUtc>,
    pub disabled_at: Option<DateTimeUtc>,
    /// When the user proved they hold the mailbox of `email`; `None` until then.
    pub email_verified_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// The fields needed to create an account.
pub struct NewUser<'a> {
    pub email: &'a str,
    pub name: &'a str,
    pub password_hash: Option<String>,
}

/// Whether any user exists (the zero-config bootstrap runs only on an empty database).
#[tracing::instrument(skip_all)]
pub async fn any(db: &impl Db) -> Result<bool, DbErr> {
    let db = conn(db);
    Ok(Entity::find().one(db).await?.is_some())
}

/// Inserts a user. A duplicate email (in any letter case) fails with a unique violation on `users_email_lower_key`.
#[tracing::instrument(skip_all)]
pub async fn create(db: &impl Db, new: NewUser<'_>) -> Result<Model, DbErr> {
    let db = conn(db);
    ActiveModel {
        id: Set(UserId(Uuid::now_v7())),
        email: Set(new.email.to_owned()),
        name: Set(new.name.to_owned()),
        avatar_url: Set(None),
        password_hash: Set(new.password_hash),
        is_platform_admin: Set(false),
        created_at: Set(chrono::Utc::now()),
        last_login_at: Set(None),
        disabled_at: Set(None),
        email_verified_at: Set(None),
    }
    .insert(db)
    .await
}

/// Finds a user by email, ignoring letter case.
#[tracing::instrument(skip_all)]
pub async fn find_by_email(db: &impl Db, email: &str) -> Result<Option<Model>, DbErr> {
    let db = conn(db);
    Entity::find().filter(Func::lower(Expr::col(Column::Email)).eq(email.to_lowercase())).one(db).await
}

#[tracing::instrument(skip_all)]
pub async fn find(db: &impl Db, id: UserId) -> Result<Option<Model>, DbErr> {
    let db = conn(db);
    Entity::find_by_id(id).one(db).await
}

#[tracing::instrument(skip_all)]
pub async fn set_password_hash(db: &impl Db, user: Model, hash: String) -> Result<Model, DbErr> {
    let db = conn(db);
    let mut active = user.into_active_model();
    active.password_hash = Set(Some(hash));
    active.update(db).await
}

#[tracing::instrument(skip_all)]
pub async fn set_platform_admin(db: &impl Db, user: Model, admin: bool) -> Result<Model, DbErr> {
    let db = conn(db);
    let mut active = user.into_active_model();
    active.is_platform_admin = Set(admin);
    active.update(db).await
}

#[tracing::instrument(skip_all)]
pub async fn touch_last_login(db: &impl Db, user: Model) -> Result<Model, DbErr> {
    let db = conn(db);
    let mut active = user.into_active_model();
    active.last_login_at = Set(Some(chrono::Utc::now()));
    active.update(db).await
}

/// Records that the user holds the mailbox of their email address.
#[tracing::instrument(skip_all)]
pub async fn mark_email_verified(db: &impl Db, user: Model) -> Result<Model, DbErr> {
    let db = conn(db);
    let mut active = user.into_active_model();
    active.email_verified_at = Set(Some(chrono::Utc::now()));
    active.update(db).await
}
