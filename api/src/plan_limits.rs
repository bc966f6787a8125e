//! Plan limits, enforced inside the request's transaction: the tenant row is locked while its use is counted, so two
//! requests at the limit cannot both pass (the second waits, then counts the first's addition).

use anyhow::Context;
use entity::plans::{Limit, Plan};

use crate::auth::tenant_access::TenantAccess;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// Refuses with 402 `plan_limit` when adding one more of `limit` would exceed what the tenant's plan in force allows.
pub async fn require_room(state: &AppState, access: &TenantAccess, limit: Limit) -> Result<(), ApiError> {
    let usage = entity::billing::lock_usage(&access.txn)
        .await
        .context("Failed to count the tenant's use of its plan")?
        .ok_or_else(|| ApiError::not_found("Tenant"))?;
    let plan = state.plans.in_force(
        usage.plan,
        usage.subscription_status.as_deref(),
        usage.subscription_past_due_since,
        chrono::Utc::now(),
    );
    let used = match limit {
        Limit::Seats => usage.seats,
        Limit::Products => usage.products,
        Limit::ApiKeys => usage.api_keys,
        Limit::SyncInterval => 0,
    };
    let wanted = u64::try_from(used).unwrap_or(0) + 1;
    if state.plans.allows(plan, limit, wanted) {
        return Ok(());
    }
    Err(exceeded(state, plan, limit, wanted))
}

/// The 402 for wanting `wanted` of `limit` on `plan`.
pub fn exceeded(state: &AppState, plan: Plan, limit: Limit, wanted: u64) -> ApiError {
    let limits = state.plans.limits(plan);
    let allowed = match limit {
        Limit::Seats => limits.seats.map(u64::from),
        Limit::Products => limits.products.map(u64::from),
        Limit::ApiKeys => limits.api_keys.map(u64::from),
        Limit::SyncInterval => Some(limits.min_sync_interval_secs),
    };
    let upgrade = state.plans.lifted_by(plan, limit, wanted);
    let plan_name = sea_orm::ActiveEnum::to_value(&plan);
    let what = match limit {
        Limit::Seats => "seats (members and pending invitations)",
        Limit::Products => "mirrored products",
        Limit::ApiKeys => "active API keys",
        Limit::SyncInterval => "the sync interval",
    };
    let detail = match (limit, allowed, upgrade) {
        (Limit::SyncInterval, Some(min), Some(up)) => format!(
            "The {plan_name} plan syncs at most every {min} s; the {} plan allows this.",
            sea_orm::ActiveEnum::to_value(&up)
        ),
        (_, Some(max), Some(up)) => format!(
            "The {plan_name} plan allows {max} {what}; the {} plan allows more.",
            sea_orm::ActiveEnum::to_value(&up)
        ),
        (_, Some(max), None) => format!("The {plan_name} plan allows {max} {what}, and no plan allows more."),
        (_, None, _) => format!("The {plan_name} plan does not allow this."),
    };
    ApiError::new(ErrorCode::PlanLimit, detail)
        .with_extension("limit", serde_json::json!(limit.as_str()))
        .with_extension("plan", serde_json::json!(plan_name))
        .with_extension("allowed", serde_json::json!(allowed))
        .with_extension("upgrade_to", serde_json::json!(upgrade.map(|p| sea_orm::ActiveEnum::to_value(&p))))
}
