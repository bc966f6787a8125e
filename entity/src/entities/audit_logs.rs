//! `audit_logs`: the append-only audit trail. Written only through [`crate::audit::record`]; the runtime role has
//! INSERT and SELECT on it and nothing else.

use sea_orm::QueryOrder;
use sea_orm::QuerySelect;
use sea_orm::entity::prelude::*;

use crate::{TenantId, TenantTxn};

/// Who performed an audited action.
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
pub enum ActorType {
    #[sea_orm(string_value = "user")]
    User,
    #[sea_orm(string_value = "api_key")]
    ApiKey,
    /// An operator command, the demo bootstrap, billing events.
    #[sea_orm(string_value = "system")]
    System,
    /// The sync worker, on its own decision.
    #[sea_orm(string_value = "worker")]
    Worker,
    /// Someone not (yet) known: a sign-in with an unknown email.
    #[sea_orm(string_value = "anonymous")]
    Anonymous,
}

/// How an audited action ended.
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
pub enum Outcome {
    #[sea_orm(string_value = "success")]
    Success,
    /// The action was attempted and failed (for instance a wrong password).
    #[sea_orm(string_value = "failure")]
    Failure,
    /// The action was refused for lack of permission.
    #[sea_orm(string_value = "denied")]
    Denied,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_logs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: TenantId,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub actor_type: ActorType,
    pub actor_id: Option<Uuid>,
    /// The actor's name as it was when the event happened (`Name <email>`, a key's name and prefix...).
    pub actor_display: Option<String>,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    /// The target's name as it was when the event happened.
    pub target_display: Option<String>,
    pub metadata: Json,
    pub ip_address: Option<ipnetwork::IpNetwork>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub outcome: Outcome,
    pub created_at: DateTimeUtc,
    /// 1: written before the event shape had display names; 2: this shape.
    pub schema_version: i16,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// The newest `limit` entries of the transaction's tenant, newest first.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn latest(txn: &TenantTxn, limit: u64) -> Result<Vec<Model>, DbErr> {
    Entity::find().order_by_desc(Column::CreatedAt).order_by_desc(Column::Id).limit(limit).all(txn.conn()).await
}
