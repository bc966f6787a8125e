//! A tenant's billing state (the Stripe columns of `tenants`), what it uses of its plan, and the Stripe webhook events
//! waiting to be applied (`stripe_events`, migration `m20261202_000017_billing`).

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, FromQueryResult, QuerySelect};
use serde::Serialize;

use crate::db::stmt;
use crate::plans::{Plan, plan_of_subscription};
use crate::{TenantId, TenantTxn, tenants};

/// What a tenant uses of the limits its plan sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromQueryResult)]
pub struct Usage {
    /// Members plus pending (unexpired) invitations.
    pub seats: i64,
    /// Mirrored TestIO products.
    pub products: i64,
    /// API keys not revoked.
    pub api_keys: i64,
}

/// What tenant `$1` uses.
const USAGE: &str = "SELECT (SELECT count(*) FROM tenant_users WHERE tenant_id = $1)
                            + (SELECT count(*) FROM invitations
                                WHERE tenant_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL
                                  AND expires_at > now()) AS seats,
                            (SELECT count(*) FROM testio_products WHERE tenant_id = $1) AS products,
                            (SELECT count(*) FROM api_keys WHERE tenant_id = $1 AND revoked_at IS NULL) AS api_keys";

/// What the transaction's tenant uses, in one statement.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn usage(txn: &TenantTxn) -> Result<Usage, DbErr> {
    let row = Usage::find_by_statement(stmt(USAGE, [txn.tenant_id().0.into()])).one(txn.conn()).await?;
    row.ok_or_else(|| DbErr::RecordNotFound("usage".to_owned()))
}

/// The transaction's tenant's plan and what it uses, its row locked until the transaction ends (so that two requests
/// at the limit cannot both pass the check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanUsage {
    pub plan: Plan,
    pub subscription_status: Option<String>,
    pub subscription_past_due_since: Option<DateTime<Utc>>,
    pub seats: i64,
    pub products: i64,
    pub api_keys: i64,
}

/// See [`PlanUsage`]; `None` when the tenant is gone. Two statements: the lock first, then the counts, which (read
/// committed) see what a request that held the lock before committed.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn lock_usage(txn: &TenantTxn) -> Result<Option<PlanUsage>, DbErr> {
    let Some(tenant) = lock_tenant(txn).await? else { return Ok(None) };
    let usage = usage(txn).await?;
    Ok(Some(PlanUsage {
        plan: tenant.plan,
        subscription_status: tenant.subscription_status,
        subscription_past_due_since: tenant.subscription_past_due_since,
        seats: usage.seats,
        products: usage.products,
        api_keys: usage.api_keys,
    }))
}

/// The transaction's tenant, its row locked until the transaction ends: checkouts, limit checks and subscription
/// changes of one tenant take their turns.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn lock_tenant(txn: &TenantTxn) -> Result<Option<tenants::Model>, DbErr> {
    tenants::Entity::find_by_id(txn.tenant_id()).lock_exclusive().one(txn.conn()).await
}

/// Records the tenant's Stripe customer.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn set_customer(txn: &TenantTxn, customer: &str) -> Result<(), DbErr> {
    txn.conn()
        .execute_raw(stmt(
            "UPDATE tenants SET stripe_customer_id = $1 WHERE id = $2",
            [customer.into(), txn.tenant_id().0.into()],
        ))
        .await
        .map(|_| ())
}

/// The tenant whose Stripe customer this is.
#[tracing::instrument(skip_all)]
pub async fn tenant_of_customer(db: &DatabaseConnection, customer: &str) -> Result<Option<TenantId>, DbErr> {
    #[derive(FromQueryResult)]
    struct Row {
        id: uuid::Uuid,
    }
    let row = Row::find_by_statement(stmt("SELECT id FROM tenants WHERE stripe_customer_id = $1", [customer.into()]))
        .one(db)
        .await?;
    Ok(row.map(|r| TenantId(r.id)))
}

/// Every tenant with a Stripe subscription or customer (the reconciliation's work list), oldest read first.
#[tracing::instrument(skip_all)]
pub async fn billed_tenants(db: &DatabaseConnection) -> Result<Vec<(TenantId, String, Option<String>)>, DbErr> {
    #[derive(FromQueryResult)]
    struct Row {
        id: uuid::Uuid,
        stripe_customer_id: String,
        stripe_subscription_id: Option<String>,
    }
    let rows = Row::find_by_statement(stmt(
        "SELECT id, stripe_customer_id, stripe_subscription_id FROM tenants
          WHERE stripe_customer_id IS NOT NULL ORDER BY billing_synced_at NULLS FIRST, id",
        [],
    ))
    .all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (TenantId(r.id), r.stripe_customer_id, r.stripe_subscription_id)).collect())
}

/// A subscription as Stripe has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionState {
    pub id: String,
    pub customer: String,
    /// Stripe's status: `active`, `trialing`, `past_due`, `unpaid`, `canceled`, `incomplete`, `incomplete_expired`,
    /// `paused`.
    pub status: String,
    pub price_id: Option<String>,
    pub current_period_end: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
}

impl SubscriptionState {
    /// Whether the subscription still pays for a plan (or may again).
    pub fn is_live(&self) -> bool {
        is_live(Some(&self.status))
    }
}

fn is_live(status: Option<&str>) -> bool {
    matches!(status, Some("active" | "trialing" | "past_due" | "incomplete"))
}

/// A tenant's billing columns, as the audit log shows them before and after a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BillingSnapshot {
    pub plan: Plan,
    pub subscription_id: Option<String>,
    pub status: Option<String>,
    pub price_id: Option<String>,
    pub current_period_end: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
    pub past_due_since: Option<DateTime<Utc>>,
}

impl BillingSnapshot {
    pub fn of(tenant: &tenants::Model) -> Self {
        Self {
            plan: tenant.plan,
            subscription_id: tenant.stripe_subscription_id.clone(),
            status: tenant.subscription_status.clone(),
            price_id: tenant.subscription_price_id.clone(),
            current_period_end: tenant.subscription_current_period_end,
            cancel_at_period_end: tenant.subscription_cancel_at_period_end,
            past_due_since: tenant.subscription_past_due_since,
        }
    }
}

/// How applying a subscription ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The tenant's billing state changed from the first to the second.
    Changed(Box<(BillingSnapshot, BillingSnapshot)>),
    /// It already was what Stripe says.
    Unchanged,
    /// Not the tenant's subscription: it has another one that is live, and this one is not.
    NotTracked,
}

/// Makes the transaction's tenant's billing state what Stripe says of `state` (read from Stripe *after* the tenant
/// row was locked by [`lock_tenant`], so that of two concurrent appliers the later read is written last).
/// `price_plan` is the plan `state.price_id` sells (`None`: a price not in the catalogue, which pays for nothing).
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn apply_subscription(
    txn: &TenantTxn,
    tenant: &tenants::Model,
    state: &SubscriptionState,
    price_plan: Option<Plan>,
    now: DateTime<Utc>,
) -> Result<Applied, DbErr> {
    let before = BillingSnapshot::of(tenant);
    if let Some(tracked) = &tenant.stripe_subscription_id
        && *tracked != state.id
        && is_live(tenant.subscription_status.as_deref())
        && !state.is_live()
    {
        return Ok(Applied::NotTracked);
    }
    let past_due_since = (state.status == "past_due").then(|| before.past_due_since.unwrap_or(now));
    let after = BillingSnapshot {
        plan: price_plan.map_or(Plan::Free, |p| plan_of_subscription(&state.status, p)),
        subscription_id: Some(state.id.clone()),
        status: Some(state.status.clone()),
        price_id: state.price_id.clone(),
        current_period_end: state.current_period_end,
        cancel_at_period_end: state.cancel_at_period_end,
        past_due_since,
    };
    txn.conn()
        .execute_raw(stmt(
            "UPDATE tenants SET plan = $1, stripe_subscription_id = $2, subscription_status = $3,
                    subscription_price_id = $4, subscription_current_period_end = $5,
                    subscription_cancel_at_period_end = $6, subscription_past_due_since = $7,
                    billing_synced_at = $8
              WHERE id = $9",
            [
                sea_orm::ActiveEnum::to_value(&after.plan).into(),
                after.subscription_id.clone().into(),
                after.status.clone().into(),
                after.price_id.clone().into(),
                after.current_period_end.into(),
                after.cancel_at_period_end.into(),
                after.past_due_since.into(),
                now.into(),
                txn.tenant_id().0.into(),
            ],
        ))
        .await?;
    Ok(if after == before { Applied::Unchanged } else { Applied::Changed(Box::new((before, after))) })
}

/// A Stripe event, stored when its webhook arrived, waiting to be applied.
#[derive(Debug, Clone, FromQueryResult)]
pub struct StoredEvent {
    pub id: String,
    pub event_type: String,
    pub payload: serde_json::Value,
    pub attempts: i32,
}

/// Stores a verified event of the transaction's tenant; `false` when an event with its id was already stored (a
/// replay: nothing changes).
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id(), event_id = id))]
pub async fn store_event(
    txn: &TenantTxn,
    id: &str,
    event_type: &str,
    created: DateTime<Utc>,
    payload: &serde_json::Value,
) -> Result<bool, DbErr> {
    let stored = txn
        .conn()
        .execute_raw(stmt(
            "INSERT INTO stripe_events (tenant_id, id, event_type, stripe_created_at, payload)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            [txn.tenant_id().0.into(), id.into(), event_type.into(), created.into(), payload.clone().into()],
        ))
        .await?;
    Ok(stored.rows_affected() == 1)
}

/// The tenants with events due, those waiting longest first (at most `max`).
#[tracing::instrument(skip_all)]
pub async fn due_tenants(db: &DatabaseConnection, max: i32) -> Result<Vec<TenantId>, DbErr> {
    #[derive(FromQueryResult)]
    struct Row {
        tenant_id: uuid::Uuid,
    }
    let rows = Row::find_by_statement(stmt("SELECT t AS tenant_id FROM stripe_events_due_tenants($1) t", [max.into()]))
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|r| TenantId(r.tenant_id)).collect())
}

/// The transaction's tenant's oldest due event, locked until the transaction ends (another worker skips it; if this
/// one dies, the lock goes with its transaction and the event stays due).
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn claim_event(txn: &TenantTxn) -> Result<Option<StoredEvent>, DbErr> {
    StoredEvent::find_by_statement(stmt(
        "SELECT id, event_type, payload, attempts FROM stripe_events
          WHERE tenant_id = $1 AND status = 'pending' AND next_attempt_at <= now()
          ORDER BY stripe_created_at, received_at, id
          LIMIT 1 FOR UPDATE SKIP LOCKED",
        [txn.tenant_id().0.into()],
    ))
    .one(txn.conn())
    .await
}

/// Marks an event applied, in the transaction that applied it (so that both happen, or neither).
#[tracing::instrument(skip_all, fields(event_id = id))]
pub async fn finish_event(txn: &TenantTxn, id: &str, outcome: &str) -> Result<(), DbErr> {
    txn.conn()
        .execute_raw(stmt(
            "UPDATE stripe_events SET status = 'applied', applied_at = now(), outcome = $3, last_error = NULL,
                    attempts = attempts + 1
              WHERE tenant_id = $1 AND id = $2",
            [txn.tenant_id().0.into(), id.into(), outcome.into()],
        ))
        .await
        .map(|_| ())
}

/// Counts a failed attempt at an event and makes it due again after `delay`; after `max_attempts` it is `failed` (an
/// operator looks at `last_error`).
#[tracing::instrument(skip_all, fields(event_id = id))]
pub async fn retry_event(
    txn: &TenantTxn,
    id: &str,
    error: &str,
    delay: std::time::Duration,
    max_attempts: i32,
) -> Result<(), DbErr> {
    txn.conn()
        .execute_raw(stmt(
            "UPDATE stripe_events
                SET attempts = attempts + 1,
                    status = CASE WHEN attempts + 1 >= $5 THEN 'failed' ELSE 'pending' END,
                    next_attempt_at = now() + make_interval(secs => $4), last_error = left($3, 2000)
              WHERE tenant_id = $1 AND id = $2",
            [txn.tenant_id().0.into(), id.into(), error.into(), delay.as_secs_f64().into(), max_attempts.into()],
        ))
        .await
        .map(|_| ())
}
