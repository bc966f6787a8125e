//! `sync_runs`: the record of every sync of a tenant's TestIO mirror: who or what triggered it, how it ended, and what
//! it read and changed. Tenant-owned. At most one run per tenant is queued or running (a partial unique index), so a
//! second trigger finds the first instead of starting another.

use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use sea_orm::{DbBackend, IntoActiveModel, QueryOrder, QuerySelect, Statement};

use crate::{TenantTxn, UserId};

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
pub enum SyncTrigger {
    /// The tenant's sync interval elapsed.
    #[sea_orm(string_value = "schedule")]
    Schedule,
    /// `POST /v1/tenants/{tenant_id}/sync-runs`.
    #[sea_orm(string_value = "api")]
    Api,
    /// `worker sync --tenant ...`.
    #[sea_orm(string_value = "cli")]
    Cli,
    /// A connection was saved.
    #[sea_orm(string_value = "connection")]
    Connection,
}

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
pub enum SyncStatus {
    /// Waiting for a worker.
    #[sea_orm(string_value = "queued")]
    Queued,
    #[sea_orm(string_value = "running")]
    Running,
    /// Everything was read.
    #[sea_orm(string_value = "succeeded")]
    Succeeded,
    /// Finished, but some pages or items could not be read: they are recorded as gaps and retried by later runs.
    #[sea_orm(string_value = "partial")]
    Partial,
    /// Stopped by an error (see `error`); what was written before it is kept.
    #[sea_orm(string_value = "failed")]
    Failed,
    /// The worker stopped (shutdown, crash, lost lease) before finishing; the next run continues.
    #[sea_orm(string_value = "interrupted")]
    Interrupted,
}

impl SyncStatus {
    /// The stored name (`succeeded`, `partial`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Partial => "partial",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
        }
    }

    pub fn is_active(self) -> bool {
        matches!(self, Self::Queued | Self::Running)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sync_runs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: crate::TenantId,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub trigger: SyncTrigger,
    pub full_sync: bool,
    pub status: SyncStatus,
    pub requested_by: Option<UserId>,
    pub worker: Option<String>,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    pub requests: i32,
    pub pages: i32,
    pub products: i32,
    pub tests_new: i32,
    pub tests_updated: i32,
    pub tests_deleted: i32,
    pub bugs_new: i32,
    pub bugs_updated: i32,
    pub bugs_deleted: i32,
    pub gaps_opened: i32,
    pub gaps_resolved: i32,
    pub error: Option<String>,
    pub list_pages_read: i32,
    pub list_pages_total: i32,
    pub products_verified: i32,
    /// The tenant's `verified_through` when the run ended.
    pub verified_through: Option<DateTimeUtc>,
    /// Products TestIO listed that the plan does not mirror (kept as they were, not updated).
    pub products_skipped: i32,
    /// Their ids (a JSON array of numbers).
    pub skipped_product_ids: Json,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// What a run read and changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub requests: i32,
    pub pages: i32,
    pub products: i32,
    pub tests_new: i32,
    pub tests_updated: i32,
    pub tests_deleted: i32,
    pub bugs_new: i32,
    pub bugs_updated: i32,
    pub bugs_deleted: i32,
    pub gaps_opened: i32,
    pub gaps_resolved: i32,
    /// Pages of product test lists read (a page split after a failure counts once).
    pub list_pages_read: i32,
    /// Pages of all the tenant's product test lists, as far as the mirror knows them.
    pub list_pages_total: i32,
    /// Products whose verification slice (or whole list, on a full run) was read without a gap.
    pub products_verified: i32,
    /// Products listed but not mirrored: the plan allows fewer.
    pub products_skipped: i32,
}

/// Queues a run unless one is already queued or running; returns the run and whether it is new.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn request(
    txn: &TenantTxn,
    trigger: SyncTrigger,
    full_sync: bool,
    requested_by: Option<UserId>,
) -> Result<(Model, bool), DbErr> {
    // Two attempts: the run that made the insert a no-op may finish before we read it.
    for _ in 0..2 {
        let inserted = Entity::find()
            .from_raw_sql(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "INSERT INTO sync_runs (tenant_id, id, trigger, full_sync, status, requested_by)
                 VALUES ($1, $2, $3, $4, 'queued', $5)
                 ON CONFLICT (tenant_id) WHERE status IN ('queued', 'running') DO NOTHING
                 RETURNING *",
                [
                    txn.tenant_id().0.into(),
                    Uuid::now_v7().into(),
                    trigger.to_value().into(),
                    full_sync.into(),
                    requested_by.map(|u| u.0).into(),
                ],
            ))
            .one(txn.conn())
            .await?;
        if let Some(run) = inserted {
            return Ok((run, true));
        }
        // The conflicting run committed before the insert looked (or the insert would have waited for it), so this
        // statement's snapshot sees it. A full run asked of a queued one makes it full.
        if let Some(active) = active(txn).await? {
            if full_sync && !active.full_sync && active.status == SyncStatus::Queued {
                let mut upgraded = active.into_active_model();
                upgraded.full_sync = Set(true);
                return Ok((upgraded.update(txn.conn()).await?, false));
            }
            return Ok((active, false));
        }
    }
    Err(DbErr::RecordNotFound("active sync run".to_owned()))
}

/// The queued or running run, if any.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn active(txn: &TenantTxn) -> Result<Option<Model>, DbErr> {
    Entity::find().filter(Column::Status.is_in([SyncStatus::Queued, SyncStatus::Running])).one(txn.conn()).await
}

#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn find(txn: &TenantTxn, id: Uuid) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id((txn.tenant_id(), id)).one(txn.conn()).await
}

/// Newest first; `before` is the id of the last run of the previous page (ids are time-ordered UUIDv7).
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn list(txn: &TenantTxn, limit: u64, before: Option<Uuid>) -> Result<Vec<Model>, DbErr> {
    let mut query = Entity::find().order_by_desc(Column::Id).limit(limit);
    if let Some(before) = before {
        query = query.filter(Column::Id.lt(before));
    }
    query.all(txn.conn()).await
}

/// Starts the tenant's run: the queued one if there is one (with `trigger`'s full flag or-ed in), else a new run.
/// A run still marked running belongs to a worker that lost its lease (the caller holds it now): it is closed as
/// interrupted first.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn start(txn: &TenantTxn, trigger: SyncTrigger, full_sync: bool, worker: &str) -> Result<Model, DbErr> {
    let now = chrono::Utc::now();
    if let Some(run) = active(txn).await? {
        if run.status == SyncStatus::Running {
            // The interrupted run's full request carries over to the new one.
            let carried = run.full_sync;
            finish(txn, run, SyncStatus::Interrupted, Counts::default(), Some("the worker stopped before finishing"))
                .await?;
            return start_new(txn, trigger, full_sync || carried, worker).await;
        } else {
            let full = run.full_sync || full_sync;
            let mut active = run.into_active_model();
            active.status = Set(SyncStatus::Running);
            active.full_sync = Set(full);
            active.worker = Set(Some(worker.to_owned()));
            active.started_at = Set(Some(now));
            return active.update(txn.conn()).await;
        }
    }
    start_new(txn, trigger, full_sync, worker).await
}

async fn start_new(txn: &TenantTxn, trigger: SyncTrigger, full_sync: bool, worker: &str) -> Result<Model, DbErr> {
    let now = chrono::Utc::now();
    ActiveModel {
        tenant_id: Set(txn.tenant_id()),
        id: Set(Uuid::now_v7()),
        trigger: Set(trigger),
        full_sync: Set(full_sync),
        status: Set(SyncStatus::Running),
        requested_by: Set(None),
        worker: Set(Some(worker.to_owned())),
        created_at: Set(now),
        started_at: Set(Some(now)),
        finished_at: Set(None),
        requests: Set(0),
        pages: Set(0),
        products: Set(0),
        tests_new: Set(0),
        tests_updated: Set(0),
        tests_deleted: Set(0),
        bugs_new: Set(0),
        bugs_updated: Set(0),
        bugs_deleted: Set(0),
        gaps_opened: Set(0),
        gaps_resolved: Set(0),
        error: Set(None),
        list_pages_read: Set(0),
        list_pages_total: Set(0),
        products_verified: Set(0),
        verified_through: Set(None),
        products_skipped: Set(0),
        skipped_product_ids: Set(serde_json::json!([])),
    }
    .insert(txn.conn())
    .await
}

/// Records progress of a running run (so a crash still shows what was done).
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn record_progress(txn: &TenantTxn, id: Uuid, counts: Counts) -> Result<(), DbErr> {
    let Some(run) = find(txn, id).await? else { return Ok(()) };
    let mut active = run.into_active_model();
    set_counts(&mut active, counts);
    active.update(txn.conn()).await.map(|_| ())
}

/// Closes a run.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn finish(
    txn: &TenantTxn,
    run: Model,
    status: SyncStatus,
    counts: Counts,
    error: Option<&str>,
) -> Result<Model, DbErr> {
    let keep_counts = run.status == SyncStatus::Running && counts == Counts::default();
    let mut active = run.into_active_model();
    if !keep_counts {
        set_counts(&mut active, counts);
    }
    active.status = Set(status);
    active.finished_at = Set(Some(chrono::Utc::now()));
    active.error = Set(error.map(|e| crate::audit::truncate(e, 2000).to_owned()));
    active.update(txn.conn()).await
}

fn set_counts(active: &mut ActiveModel, c: Counts) {
    active.requests = Set(c.requests);
    active.pages = Set(c.pages);
    active.products = Set(c.products);
    active.tests_new = Set(c.tests_new);
    active.tests_updated = Set(c.tests_updated);
    active.tests_deleted = Set(c.tests_deleted);
    active.bugs_new = Set(c.bugs_new);
    active.bugs_updated = Set(c.bugs_updated);
    active.bugs_deleted = Set(c.bugs_deleted);
    active.gaps_opened = Set(c.gaps_opened);
    active.gaps_resolved = Set(c.gaps_resolved);
    active.list_pages_read = Set(c.list_pages_read);
    active.list_pages_total = Set(c.list_pages_total);
    active.products_verified = Set(c.products_verified);
    active.products_skipped = Set(c.products_skipped);
}

/// Records on the run which listed products the plan left out.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn record_skipped_products(txn: &TenantTxn, id: Uuid, products: &[i64]) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::SkippedProductIds, sea_orm::sea_query::Expr::value(serde_json::json!(products)))
        .filter(Column::TenantId.eq(txn.tenant_id()))
        .filter(Column::Id.eq(id))
        .exec(txn.conn())
        .await
        .map(|_| ())
}

/// Records on the run how far the tenant's mirror was verified when it ended.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn record_verified_through(txn: &TenantTxn, id: Uuid, at: Option<DateTimeUtc>) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::VerifiedThrough, sea_orm::sea_query::Expr::value(at))
        .filter(Column::TenantId.eq(txn.tenant_id()))
        .filter(Column::Id.eq(id))
        .exec(txn.conn())
        .await
        .map(|_| ())
}
