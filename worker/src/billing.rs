//! Applying Stripe's word to the tenants: the webhook events the API stored (`stripe_events`), and the
//! reconciliation (`worker billing-reconcile`) that re-reads every billed tenant's subscription.
//!
//! Both make the tenant's billing state what Stripe says *now*: the subscription an event names is read from Stripe
//! after the tenant's row is locked, so events may arrive late, twice or out of order and the last write is always
//! the newest state (an older event never overwrites newer state). An event is claimed (`FOR UPDATE SKIP LOCKED`) and
//! applied in the tenant's transaction together with its audit row (`billing.subscription_update`, actor `system`,
//! the event id in the metadata) and its `applied` mark; when Stripe cannot be reached it is retried with backoff,
//! and a worker killed midway takes its lock with it, leaving the event due for the next one.

use std::time::Duration;

use anyhow::Context;
use billing::{StripeClient, StripeError};
use entity::audit::{self, Actor, AuditAction, Event, Origin};
use entity::billing::{Applied, StoredEvent, SubscriptionState};
use entity::plans::Catalog;
use entity::{TenantId, TenantTxn};
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

/// Attempts at one event before it is marked `failed` for an operator.
pub const MAX_ATTEMPTS: i32 = 20;

/// What to apply and why.
#[derive(Debug, Clone, Copy)]
pub enum Cause<'a> {
    /// A stored webhook event (locked by this transaction).
    Event { id: &'a str, event_type: &'a str },
    /// The reconciliation.
    Reconcile,
}

/// In `txn` (bound to the tenant): locks the tenant, reads `subscription` (else the tenant's own) from Stripe and
/// makes it the tenant's billing state, with its audit row and, for an event, the event's `applied` mark. The caller
/// commits. The outcome, as recorded on the event.
pub async fn sync_subscription(
    txn: &TenantTxn,
    stripe: &StripeClient,
    plans: &Catalog,
    subscription: Option<&str>,
    cause: Cause<'_>,
) -> anyhow::Result<&'static str> {
    let tenant = txn.tenant_id();
    let Some(row) = entity::billing::lock_tenant(txn).await.context("Failed to lock the tenant")? else {
        return finish(txn, cause, "tenant_gone").await;
    };
    // The event's subscription, else the one the tenant has (an invoice of a one-off payment names none).
    let Some(id) = subscription.map(str::to_owned).or_else(|| row.stripe_subscription_id.clone()) else {
        return finish(txn, cause, "no_subscription").await;
    };
    let state = match stripe.subscription(&id).await {
        Ok(state) => state,
        // Gone at Stripe: as good as canceled.
        Err(StripeError::NotFound(_)) => SubscriptionState {
            id: id.clone(),
            customer: row.stripe_customer_id.clone().unwrap_or_default(),
            status: "canceled".to_owned(),
            price_id: row.subscription_price_id.clone(),
            current_period_end: row.subscription_current_period_end,
            cancel_at_period_end: false,
        },
        Err(e) => return Err(anyhow::Error::new(e).context("Failed to read the subscription from Stripe")),
    };
    if row.stripe_customer_id.as_deref() != Some(state.customer.as_str()) {
        tracing::warn!(tenant_id = %tenant, subscription = %id, "a subscription of another customer: not applied");
        return finish(txn, cause, "other_customer").await;
    }
    let price_plan = state.price_id.as_deref().and_then(|p| plans.plan_of_price(p));
    let outcome = match entity::billing::apply_subscription(txn, &row, &state, price_plan, chrono::Utc::now())
        .await
        .context("Failed to update the tenant's billing state")?
    {
        Applied::Changed(change) => {
            let (before, after) = *change;
            let (event_id, event_type, source) = match cause {
                Cause::Event { id, event_type } => (Some(id), Some(event_type), "webhook"),
                Cause::Reconcile => (None, None, "reconcile"),
            };
            let metadata = serde_json::json!({
                "source": source,
                "event_id": event_id,
                "event_type": event_type,
                "subscription_id": state.id,
                "before": before,
                "after": after,
            });
            let event =
                Event::new(AuditAction::BillingSubscriptionUpdate, Actor::system()).on(tenant).metadata(metadata);
            audit::record(txn, event, &Origin::default()).await.context("Failed to audit the change")?;
            tracing::info!(tenant_id = %tenant, subscription = %state.id, status = %state.status, source, "billing state changed");
            "changed"
        }
        Applied::Unchanged => "unchanged",
        Applied::NotTracked => "not_tracked",
    };
    finish(txn, cause, outcome).await
}

async fn finish(txn: &TenantTxn, cause: Cause<'_>, outcome: &'static str) -> anyhow::Result<&'static str> {
    if let Cause::Event { id, .. } = cause {
        entity::billing::finish_event(txn, id, outcome).await.context("Failed to mark the event applied")?;
    }
    Ok(outcome)
}

/// The subscription a stored event names, if any.
fn subscription_of(event: &StoredEvent) -> Option<String> {
    let parsed: billing::webhook::Event = serde_json::from_value(event.payload.clone()).ok()?;
    parsed.subscription().map(str::to_owned)
}

/// The wait after `attempts` failed attempts: 2, 4, 8 ... seconds, at most an hour.
pub fn backoff(attempts: i32) -> Duration {
    Duration::from_secs(2u64.saturating_pow(u32::try_from(attempts.clamp(1, 12)).unwrap_or(12)).min(3600))
}

/// Applies the tenant's oldest due event; `Ok(false)` when it has none due. A failure is recorded on the event (due
/// again after a backoff) and returned.
pub async fn apply_one(
    db: &DatabaseConnection,
    stripe: &StripeClient,
    plans: &Catalog,
    tenant: TenantId,
) -> anyhow::Result<bool> {
    let txn = TenantTxn::begin(db, tenant).await.context("Failed to begin the tenant transaction")?;
    let Some(event) = entity::billing::claim_event(&txn).await.context("Failed to claim a Stripe event")? else {
        return Ok(false);
    };
    let subscription = subscription_of(&event);
    let cause = Cause::Event { id: &event.id, event_type: &event.event_type };
    match sync_subscription(&txn, stripe, plans, subscription.as_deref(), cause).await {
        Ok(outcome) => {
            txn.commit().await.context("Failed to commit the billing change")?;
            metrics::counter!("stripe_events_applied_total", "outcome" => outcome).increment(1);
            tracing::info!(tenant_id = %tenant, event_id = %event.id, event_type = %event.event_type, outcome, "applied a Stripe event");
            Ok(true)
        }
        Err(e) => {
            drop(txn);
            metrics::counter!("stripe_events_applied_total", "outcome" => "retry").increment(1);
            let error = format!("{e:#}");
            tracing::warn!(tenant_id = %tenant, event_id = %event.id, attempts = event.attempts, error, "a Stripe event could not be applied yet");
            let retry = TenantTxn::begin(db, tenant).await.context("Failed to begin the tenant transaction")?;
            entity::billing::retry_event(&retry, &event.id, &error, backoff(event.attempts + 1), MAX_ATTEMPTS)
                .await
                .context("Failed to put the event back")?;
            retry.commit().await.context("Failed to commit the retry")?;
            Err(e)
        }
    }
}

/// Applies every due event of every tenant (a tenant whose event fails is left for later); how many were applied.
pub async fn apply_due(db: &DatabaseConnection, stripe: &StripeClient, plans: &Catalog) -> anyhow::Result<usize> {
    let mut applied = 0;
    for tenant in entity::billing::due_tenants(db, 100).await.context("Failed to find the tenants with events due")? {
        loop {
            match apply_one(db, stripe, plans, tenant).await {
                Ok(true) => applied += 1,
                Ok(false) => break,
                Err(_) => break,
            }
        }
    }
    Ok(applied)
}

/// Applies due events until `shutdown`, every `every`.
pub async fn events_loop(
    db: DatabaseConnection,
    stripe: StripeClient,
    plans: Catalog,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        if let Err(e) = apply_due(&db, &stripe, &plans).await {
            tracing::warn!(error = format!("{e:#}"), "Failed to apply Stripe events");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// What a reconciliation did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reconciled {
    pub tenants: usize,
    pub changed: usize,
    pub failed: usize,
}

/// Re-reads the subscription of every tenant with a Stripe customer and fixes what drifted (each fix audited).
pub async fn reconcile(db: &DatabaseConnection, stripe: &StripeClient, plans: &Catalog) -> anyhow::Result<Reconciled> {
    let mut done = Reconciled::default();
    for (tenant, _customer, subscription) in
        entity::billing::billed_tenants(db).await.context("Failed to list the billed tenants")?
    {
        let Some(subscription) = subscription else { continue };
        done.tenants += 1;
        let synced = async {
            let txn = TenantTxn::begin(db, tenant).await.context("Failed to begin the tenant transaction")?;
            let outcome = sync_subscription(&txn, stripe, plans, Some(&subscription), Cause::Reconcile).await?;
            txn.commit().await.context("Failed to commit the billing change")?;
            anyhow::Ok(outcome)
        };
        match synced.await {
            Ok("changed") => done.changed += 1,
            Ok(_) => {}
            Err(e) => {
                done.failed += 1;
                tracing::warn!(tenant_id = %tenant, error = format!("{e:#}"), "Failed to reconcile a tenant's subscription");
            }
        }
    }
    Ok(done)
}
