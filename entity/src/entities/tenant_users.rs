//! `tenant_users`: who belongs to a tenant, with which role. Tenant-owned: every query takes a [`TenantTxn`].

use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, IntoActiveModel, PaginatorTrait, QueryOrder};

use crate::{TenantId, TenantTxn, UserId, UserTxn};

/// A member's role in a tenant, from most to least privileged.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    EnumIter,
    DeriveActiveEnum,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
    strum::IntoStaticStr,
)]
#[sea_orm(rs_type = "String", db_type = "Text")]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Role {
    #[sea_orm(string_value = "owner")]
    Owner,
    #[sea_orm(string_value = "admin")]
    Admin,
    #[sea_orm(string_value = "member")]
    Member,
    #[sea_orm(string_value = "viewer")]
    Viewer,
}

impl Role {
    /// The name clients see (`owner`, `admin`...), the same as the stored one.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// How much the role may do: owner 3, admin 2, member 1, viewer 0.
    pub const fn rank(self) -> u8 {
        match self {
            Self::Owner => 3,
            Self::Admin => 2,
            Self::Member => 1,
            Self::Viewer => 0,
        }
    }

    /// The less privileged of two roles (what an API key may do: its own role, capped by its creator's).
    pub const fn least(self, other: Self) -> Self {
        if self.rank() <= other.rank() { self } else { other }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tenant_users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: TenantId,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: UserId,
    pub email: String,
    pub role: Role,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Adds `user_id` to the transaction's tenant. A second membership of the same user fails with a unique violation on
/// `tenant_users_tenant_id_user_id_key`.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn add(txn: &TenantTxn, user_id: UserId, email: &str, role: Role) -> Result<Model, DbErr> {
    ActiveModel {
        tenant_id: Set(txn.tenant_id()),
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        email: Set(email.to_owned()),
        role: Set(role),
        created_at: Set(chrono::Utc::now()),
    }
    .insert(txn.conn())
    .await
}

/// The members of the transaction's tenant, oldest first. Row-level security alone decides which rows are visible:
/// the query carries no tenant filter of its own.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn list(txn: &TenantTxn) -> Result<Vec<Model>, DbErr> {
    Entity::find().order_by_asc(Column::CreatedAt).order_by_asc(Column::Id).all(txn.conn()).await
}

/// The membership of `user_id` in the transaction's tenant, if any.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn find_for_user(txn: &TenantTxn, user_id: UserId) -> Result<Option<Model>, DbErr> {
    Entity::find().filter(Column::TenantId.eq(txn.tenant_id())).filter(Column::UserId.eq(user_id)).one(txn.conn()).await
}

/// Changes a member's role.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn set_role(txn: &TenantTxn, member: Model, role: Role) -> Result<Model, DbErr> {
    let mut active = member.into_active_model();
    active.role = Set(role);
    active.update(txn.conn()).await
}

/// Removes a member.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn remove(txn: &TenantTxn, member: Model) -> Result<(), DbErr> {
    member.into_active_model().delete(txn.conn()).await.map(|_| ())
}

/// How many owners the tenant has, counted with the owner rows locked so that two concurrent demotions cannot both
/// see "another owner remains".
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn lock_and_count_owners(txn: &TenantTxn) -> Result<u64, DbErr> {
    use sea_orm::QuerySelect;
    let owners = Entity::find().filter(Column::Role.eq(Role::Owner)).lock_exclusive().all(txn.conn()).await?;
    Ok(owners.len() as u64)
}

/// Every membership of the transaction's user, across tenants (readable through the own-memberships policy).
#[tracing::instrument(skip_all)]
pub async fn memberships_of(txn: &UserTxn) -> Result<Vec<Model>, DbErr> {
    Entity::find().filter(Column::UserId.eq(txn.user_id())).order_by_asc(Column::CreatedAt).all(txn.conn()).await
}

/// Number of members of the transaction's tenant.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn count(txn: &TenantTxn) -> Result<u64, DbErr> {
    Entity::find().count(txn.conn()).await
}

#[cfg(test)]
mod tests {
    use super::Role;

    #[test]
    fn least_is_the_lower_role_whatever_the_order() {
        let all = [Role::Owner, Role::Admin, Role::Member, Role::Viewer];
        for a in all {
            for b in all {
                let least = a.least(b);
                assert_eq!(least, b.least(a));
                assert!(least.rank() <= a.rank() && least.rank() <= b.rank());
                assert!(least == a || least == b);
            }
        }
        assert_eq!(Role::Admin.least(Role::Viewer), Role::Viewer);
        assert_eq!(Role::Owner.least(Role::Member), Role::Member);
    }
}
