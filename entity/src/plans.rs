//! Plans and their limits: one catalogue, built from configuration at start-up, read by the API (enforcing limits,
//! `GET /v1/plans`, checkout) and by the worker (sync intervals, mirrored products, audit retention).

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use crate::tenants::Plan;

/// What a plan allows. `None`: no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Limits {
    /// Members plus pending invitations.
    pub seats: Option<u32>,
    /// TestIO products mirrored (the others are listed as skipped, never deleted).
    pub products: Option<u32>,
    /// Active (not revoked) API keys.
    pub api_keys: Option<u32>,
    /// The shortest interval between scheduled syncs, in seconds.
    pub min_sync_interval_secs: u64,
    /// How long audit events are kept, in days.
    pub audit_retention_days: u32,
}

/// A limit a request can run into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    Seats,
    Products,
    ApiKeys,
    SyncInterval,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Seats => "seats",
            Limit::Products => "products",
            Limit::ApiKeys => "api_keys",
            Limit::SyncInterval => "sync_interval",
        }
    }
}

/// Every plan, cheapest first.
pub const PLANS: [Plan; 3] = [Plan::Free, Plan::Pro, Plan::Enterprise];

/// The plans on offer: each plan's limits, the Stripe price of the paid ones, and how long a past-due subscription
/// keeps its plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    pub free: Limits,
    pub pro: Limits,
    pub enterprise: Limits,
    /// Stripe price ids of the paid plans (`None`: not for sale through Checkout).
    pub pro_price: Option<String>,
    pub enterprise_price: Option<String>,
    /// How long a `past_due` subscription keeps its paid plan before the free plan's limits apply.
    pub past_due_grace: chrono::Duration,
}

impl Catalog {
    pub fn limits(&self, plan: Plan) -> Limits {
        match plan {
            Plan::Free => self.free,
            Plan::Pro => self.pro,
            Plan::Enterprise => self.enterprise,
        }
    }

    /// The Stripe price a plan is sold at.
    pub fn price(&self, plan: Plan) -> Option<&str> {
        match plan {
            Plan::Free => None,
            Plan::Pro => self.pro_price.as_deref(),
            Plan::Enterprise => self.enterprise_price.as_deref(),
        }
    }

    /// The plan a Stripe price sells.
    pub fn plan_of_price(&self, price: &str) -> Option<Plan> {
        PLANS.into_iter().find(|p| self.price(*p) == Some(price))
    }

    /// The cheapest plan above `current` that allows `wanted` of `limit` (a count, or an interval in seconds).
    pub fn lifted_by(&self, current: Plan, limit: Limit, wanted: u64) -> Option<Plan> {
        PLANS.into_iter().skip_while(|p| *p != current).skip(1).find(|p| self.allows(*p, limit, wanted))
    }

    /// Whether `plan` allows `wanted` of `limit`.
    pub fn allows(&self, plan: Plan, limit: Limit, wanted: u64) -> bool {
        let limits = self.limits(plan);
        let within = |max: Option<u32>| max.is_none_or(|m| wanted <= u64::from(m));
        match limit {
            Limit::Seats => within(limits.seats),
            Limit::Products => within(limits.products),
            Limit::ApiKeys => within(limits.api_keys),
            Limit::SyncInterval => wanted >= limits.min_sync_interval_secs,
        }
    }

    /// The plan whose limits apply now: the subscribed plan, except that a subscription past due for longer than the
    /// grace period falls back to the free plan's limits (its data is kept; only new things are refused).
    pub fn in_force(
        &self,
        plan: Plan,
        status: Option<&str>,
        past_due_since: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Plan {
        match (status, past_due_since) {
            (Some("past_due"), Some(since)) if now >= since + self.past_due_grace => Plan::Free,
            _ => plan,
        }
    }
}

impl Catalog {
    /// [`Catalog::in_force`] for a tenant as stored.
    pub fn in_force_for(&self, tenant: &crate::tenants::Model, now: DateTime<Utc>) -> Plan {
        self.in_force(tenant.plan, tenant.subscription_status.as_deref(), tenant.subscription_past_due_since, now)
    }
}

/// The plan a subscription in `status` for `price_plan` pays for: the price's plan while it is live (trialing,
/// active, or past due within the grace period, which [`Catalog::in_force`] judges), the free plan otherwise
/// (incomplete, canceled, unpaid, paused, expired).
pub fn plan_of_subscription(status: &str, price_plan: Plan) -> Plan {
    match status {
        "active" | "trialing" | "past_due" => price_plan,
        _ => Plan::Free,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let limits = |seats, products, keys, interval, days| Limits {
            seats,
            products,
            api_keys: keys,
            min_sync_interval_secs: interval,
            audit_retention_days: days,
        };
        Catalog {
            free: limits(Some(3), Some(2), Some(2), 3600, 30),
            pro: limits(Some(20), Some(50), Some(20), 900, 365),
            enterprise: limits(None, None, None, 300, 2555),
            pro_price: Some("price_pro".into()),
            enterprise_price: Some("price_ent".into()),
            past_due_grace: chrono::Duration::days(7),
        }
    }

    #[test]
    fn the_cheapest_plan_that_allows_it_lifts_a_limit() {
        let c = catalog();
        assert!(c.allows(Plan::Free, Limit::Seats, 3));
        assert!(!c.allows(Plan::Free, Limit::Seats, 4));
        assert_eq!(c.lifted_by(Plan::Free, Limit::Seats, 4), Some(Plan::Pro));
        assert_eq!(c.lifted_by(Plan::Free, Limit::Seats, 21), Some(Plan::Enterprise));
        assert_eq!(c.lifted_by(Plan::Pro, Limit::ApiKeys, 10_000), Some(Plan::Enterprise));
        assert_eq!(c.lifted_by(Plan::Enterprise, Limit::Seats, 10_000), None);
        assert!(!c.allows(Plan::Free, Limit::SyncInterval, 900));
        assert_eq!(c.lifted_by(Plan::Free, Limit::SyncInterval, 900), Some(Plan::Pro));
        assert_eq!(c.lifted_by(Plan::Free, Limit::SyncInterval, 60), None);
    }

    #[test]
    fn prices_name_plans_and_past_due_keeps_the_plan_for_the_grace_period_only() {
        let c = catalog();
        assert_eq!(c.plan_of_price("price_pro"), Some(Plan::Pro));
        assert_eq!(c.plan_of_price("price_ent"), Some(Plan::Enterprise));
        assert_eq!(c.plan_of_price("price_other"), None);
        let now = Utc::now();
        assert_eq!(c.in_force(Plan::Pro, Some("active"), None, now), Plan::Pro);
        assert_eq!(c.in_force(Plan::Pro, Some("past_due"), Some(now - chrono::Duration::days(6)), now), Plan::Pro);
        assert_eq!(c.in_force(Plan::Pro, Some("past_due"), Some(now - chrono::Duration::days(7)), now), Plan::Free);
        assert_eq!(plan_of_subscription("canceled", Plan::Pro), Plan::Free);
        assert_eq!(plan_of_subscription("incomplete", Plan::Pro), Plan::Free);
        assert_eq!(plan_of_subscription("past_due", Plan::Pro), Plan::Pro);
    }
}
