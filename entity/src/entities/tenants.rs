//! `tenants`: the organisations, with their billing state. A global table: membership in `tenant_users` (tenant-owned)
//! is what grants access to one.

use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, IntoActiveModel, QueryOrder};

use crate::TenantId;
use crate::tenancy::{Db, conn};

/// The subscription plan; decides limits such as the sync interval.
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
)]
#[sea_orm(rs_type = "String", db_type = "Text")]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    #[sea_orm(string_value = "free")]
    Free,
    #[sea_orm(string_value = "pro")]
    Pro,
    #[sea_orm(string_value = "enterprise")]
    Enterprise,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tenants")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: TenantId,
    pub name: String,
    pub slug: String,
    pub plan: Plan,
    pub stripe_customer_id: Option<String>,
    pub stripe_subscription_id: Option<String>,
    pub subscription_status: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub active: bool,
    /// The subscription's price, as last read from Stripe.
    pub subscription_price_id: Option<String>,
    pub subscription_current_period_end: Option<DateTimeUtc>,
    pub subscription_cancel_at_period_end: bool,
    /// Since when the subscription has been `past_due` (the grace period counts from here).
    pub subscription_past_due_since: Option<DateTimeUtc>,
    /// When the subscription was last read from Stripe.
    pub billing_synced_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Inserts an active tenant on the free plan. A taken slug fails with a unique violation on `tenants_slug_key`.
#[tracing::instrument(skip_all)]
pub async fn create(db: &impl Db, name: &str, slug: &str) -> Result<Model, DbErr> {
    create_with_id(db, TenantId(Uuid::now_v7()), name, slug).await
}

/// [`create`] with an id chosen beforehand (so that a `TenantTxn` for it can be opened first).
#[tracing::instrument(skip_all)]
pub async fn create_with_id(db: &impl Db, id: TenantId, name: &str, slug: &str) -> Result<Model, DbErr> {
    let db = conn(db);
    let now = chrono::Utc::now();
    ActiveModel {
        id: Set(id),
        name: Set(name.to_owned()),
        slug: Set(slug.to_owned()),
        plan: Set(Plan::Free),
        stripe_customer_id: Set(None),
        stripe_subscription_id: Set(None),
        subscription_status: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        active: Set(true),
        subscription_price_id: Set(None),
        subscription_current_period_end: Set(None),
        subscription_cancel_at_period_end: Set(false),
        subscription_past_due_since: Set(None),
        billing_synced_at: Set(None),
    }
    .insert(db)
    .await
}

/// Finds a tenant by id.
#[tracing::instrument(skip_all)]
pub async fn find(db: &impl Db, id: TenantId) -> Result<Option<Model>, DbErr> {
    let db = conn(db);
    Entity::find_by_id(id).one(db).await
}

/// The tenants with these ids, by name.
#[tracing::instrument(skip_all)]
pub async fn find_many(db: &impl Db, ids: Vec<TenantId>) -> Result<Vec<Model>, DbErr> {
    let db = conn(db);
    Entity::find().filter(Column::Id.is_in(ids)).order_by_asc(Column::Name).all(db).await
}

/// Applies the given changes (None = unchanged). A taken slug fails with a unique violation on `tenants_slug_key`.
#[tracing::instrument(skip_all)]
pub async fn update(db: &impl Db, tenant: Model, name: Option<String>, slug: Option<String>) -> Result<Model, DbErr> {
    let db = conn(db);
    let mut active = tenant.into_active_model();
    if let Some(name) = name {
        active.name = Set(name);
    }
    if let Some(slug) = slug {
        active.slug = Set(slug);
    }
    active.updated_at = Set(chrono::Utc::now());
    active.update(db).await
}

/// Deletes a tenant and, by cascade, its memberships, invitations and API keys. The audit log is kept.
#[tracing::instrument(skip_all)]
pub async fn delete(db: &impl Db, tenant: Model) -> Result<(), DbErr> {
    let db = conn(db);
    tenant.into_active_model().delete(db).await.map(|_| ())
}
