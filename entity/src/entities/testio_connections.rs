//! `testio_connections`: a tenant's link to the TestIO Customer API. Tenant-owned; the token is stored sealed (see
//! [`crate::token_cipher`]) with its last four characters for display.

use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use sea_orm::{IntoActiveModel, sea_query::OnConflict};

use crate::{TenantId, TenantTxn, UserId};

/// A TestIO token as stored (sealed by `common::token_cipher`): which key sealed it, the nonce, and the ciphertext
/// with its tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// Whether the worker may use the connection.
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
pub enum ConnectionStatus {
    /// Syncing.
    #[sea_orm(string_value = "active")]
    Active,
    /// TestIO refused the token (401): syncing stops until a new token is saved.
    #[sea_orm(string_value = "needs_token")]
    NeedsToken,
    /// The stored base URL is outside the worker's `TESTIO_ALLOWED_BASE_URLS` (the list changed since it was saved, or
    /// differs from the API's): syncing stops, without a request, until the connection is saved again with an allowed
    /// base URL.
    #[sea_orm(string_value = "base_url_not_allowed")]
    BaseUrlNotAllowed,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "testio_connections")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: TenantId,
    pub base_url: String,
    pub token_ciphertext: Vec<u8>,
    pub token_nonce: Vec<u8>,
    pub token_key_id: String,
    pub token_last4: String,
    pub status: ConnectionStatus,
    pub status_reason: Option<String>,
    pub created_by: Option<UserId>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub verified_at: DateTimeUtc,
    pub last_reconcile_at: Option<DateTimeUtc>,
    /// Every change TestIO made before this time is in the mirror (the oldest of the products' last complete, clean
    /// verification passes); `None` until the whole mirror has been verified once.
    pub verified_through: Option<DateTimeUtc>,
    /// The interval between scheduled syncs the tenant asked for, in seconds (never below its plan's); `None`: the
    /// plan's.
    pub sync_interval_secs: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// The sealed token, to open with [`crate::token_cipher::TokenKeys::open`].
    pub fn sealed_token(&self) -> Sealed {
        Sealed {
            key_id: self.token_key_id.clone(),
            nonce: self.token_nonce.clone(),
            ciphertext: self.token_ciphertext.clone(),
        }
    }
}

/// Everything a saved connection needs.
pub struct NewConnection {
    pub base_url: String,
    pub token: Sealed,
    pub token_last4: String,
    pub saved_by: Option<UserId>,
    pub sync_interval_secs: Option<i64>,
}

/// The last four characters of a token, the only part of it ever shown.
pub fn last4(token: &secrecy::SecretString) -> String {
    let chars: Vec<char> = secrecy::ExposeSecret::expose_secret(token).chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

/// Saves the connection and starts syncing with it: a run is queued (or the queued one found) and the tenant is due
/// at once. Returns the connection and that run.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn connect(txn: &TenantTxn, new: NewConnection) -> Result<(Model, crate::sync_runs::Model), DbErr> {
    let saved_by = new.saved_by;
    let connection = save(txn, new).await?;
    let (run, _) = crate::sync_runs::request(txn, crate::sync_runs::SyncTrigger::Connection, false, saved_by).await?;
    crate::sync::schedule::schedule_now(txn).await?;
    Ok((connection, run))
}

#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn find(txn: &TenantTxn) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id(txn.tenant_id()).one(txn.conn()).await
}

/// Creates or replaces the tenant's connection; a replaced one becomes active again. The mirrored data is kept: it
/// belongs to the tenant, not to the token.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn save(txn: &TenantTxn, new: NewConnection) -> Result<Model, DbErr> {
    let now = chrono::Utc::now();
    let model = ActiveModel {
        tenant_id: Set(txn.tenant_id()),
        base_url: Set(new.base_url),
        token_ciphertext: Set(new.token.ciphertext),
        token_nonce: Set(new.token.nonce),
        token_key_id: Set(new.token.key_id),
        token_last4: Set(new.token_last4),
        status: Set(ConnectionStatus::Active),
        status_reason: Set(None),
        created_by: Set(new.saved_by),
        created_at: Set(now),
        updated_at: Set(now),
        verified_at: Set(now),
        last_reconcile_at: Set(None),
        verified_through: Set(None),
        sync_interval_secs: Set(new.sync_interval_secs),
    };
    Entity::insert(model)
        .on_conflict(
            OnConflict::column(Column::TenantId)
                .update_columns([
                    Column::BaseUrl,
                    Column::TokenCiphertext,
                    Column::TokenNonce,
                    Column::TokenKeyId,
                    Column::TokenLast4,
                    Column::Status,
                    Column::StatusReason,
                    Column::UpdatedAt,
                    Column::VerifiedAt,
                    Column::SyncIntervalSecs,
                ])
                .to_owned(),
        )
        .exec(txn.conn())
        .await?;
    Entity::find_by_id(txn.tenant_id())
        .one(txn.conn())
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("testio connection after save".to_owned()))
}

/// Deletes the tenant's connection; whether there was one.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn delete(txn: &TenantTxn) -> Result<bool, DbErr> {
    Ok(Entity::delete_by_id(txn.tenant_id()).exec(txn.conn()).await?.rows_affected > 0)
}

/// Marks the connection as refused by TestIO; the worker stops syncing the tenant until a new token is saved.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn mark_needs_token(txn: &TenantTxn, connection: Model, reason: &str) -> Result<Model, DbErr> {
    let mut active = connection.into_active_model();
    active.status = Set(ConnectionStatus::NeedsToken);
    active.status_reason = Set(Some(crate::audit::truncate(reason, 500).to_owned()));
    active.updated_at = Set(chrono::Utc::now());
    active.update(txn.conn()).await
}

/// Marks the connection as aimed outside the allowed base URLs; the worker stops syncing the tenant until the
/// connection is saved again. Applies only while the stored base URL is still `connection`'s: `None` when a save
/// replaced it meanwhile (that connection is then the one to sync).
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn mark_base_url_not_allowed(
    txn: &TenantTxn,
    connection: Model,
    reason: &str,
) -> Result<Option<Model>, DbErr> {
    let updated = Entity::update_many()
        .col_expr(Column::Status, sea_orm::sea_query::Expr::value(ConnectionStatus::BaseUrlNotAllowed))
        .col_expr(Column::StatusReason, sea_orm::sea_query::Expr::value(crate::audit::truncate(reason, 500)))
        .col_expr(Column::UpdatedAt, sea_orm::sea_query::Expr::value(chrono::Utc::now()))
        .filter(Column::TenantId.eq(txn.tenant_id()))
        .filter(Column::BaseUrl.eq(connection.base_url))
        .exec(txn.conn())
        .await?;
    if updated.rows_affected == 0 {
        return Ok(None);
    }
    find(txn).await
}

/// Records the end of a full reconcile.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn set_reconciled(txn: &TenantTxn, at: DateTimeUtc) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::LastReconcileAt, sea_orm::sea_query::Expr::value(at))
        .filter(Column::TenantId.eq(txn.tenant_id()))
        .exec(txn.conn())
        .await
        .map(|_| ())
}

/// Records how far the whole mirror is verified (see [`Model::verified_through`]).
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn set_verified_through(txn: &TenantTxn, at: Option<DateTimeUtc>) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::VerifiedThrough, sea_orm::sea_query::Expr::value(at))
        .filter(Column::TenantId.eq(txn.tenant_id()))
        .exec(txn.conn())
        .await
        .map(|_| ())
}

/// Re-seals the stored token with the current key (key rotation), unless a new token replaced `old` meanwhile.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn reseal(txn: &TenantTxn, old: &[u8], token: Sealed) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::TokenCiphertext, sea_orm::sea_query::Expr::value(token.ciphertext))
        .col_expr(Column::TokenNonce, sea_orm::sea_query::Expr::value(token.nonce))
        .col_expr(Column::TokenKeyId, sea_orm::sea_query::Expr::value(token.key_id))
        .filter(Column::TenantId.eq(txn.tenant_id()))
        .filter(Column::TokenCiphertext.eq(old.to_vec()))
        .exec(txn.conn())
        .await
        .map(|_| ())
}
