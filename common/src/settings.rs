//! Pieces of the API's and the worker's settings that are the same in both: the log format and the clap parser of
//! secret values (so that a secret is wrapped from the moment it is read).

use clap::ValueEnum;
use secrecy::SecretString;

/// How log lines are written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, for log collectors.
    Json,
    /// Human-readable lines, for a terminal.
    Pretty,
}

/// clap value parser for secrets: `value_parser = common::settings::secret`.
pub fn secret(s: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(s))
}

/// The plans' limits and prices (shared by the API, which enforces them, and the worker, which syncs and purges by
/// them). A limit of 0 means none.
#[derive(Debug, Clone, clap::Args)]
pub struct PlanSettings {
    /// Seats (members plus pending invitations) of the free plan.
    #[arg(long, env = "PLAN_FREE_SEATS", default_value_t = 5)]
    pub free_seats: u32,
    /// Seats of the pro plan.
    #[arg(long, env = "PLAN_PRO_SEATS", default_value_t = 50)]
    pub pro_seats: u32,
    /// Seats of the enterprise plan.
    #[arg(long, env = "PLAN_ENTERPRISE_SEATS", default_value_t = 0)]
    pub enterprise_seats: u32,
    /// TestIO products mirrored on the free plan.
    #[arg(long, env = "PLAN_FREE_PRODUCTS", default_value_t = 10)]
    pub free_products: u32,
    /// TestIO products mirrored on the pro plan.
    #[arg(long, env = "PLAN_PRO_PRODUCTS", default_value_t = 100)]
    pub pro_products: u32,
    /// TestIO products mirrored on the enterprise plan.
    #[arg(long, env = "PLAN_ENTERPRISE_PRODUCTS", default_value_t = 0)]
    pub enterprise_products: u32,
    /// Active API keys of the free plan.
    #[arg(long, env = "PLAN_FREE_API_KEYS", default_value_t = 5)]
    pub free_api_keys: u32,
    /// Active API keys of the pro plan.
    #[arg(long, env = "PLAN_PRO_API_KEYS", default_value_t = 50)]
    pub pro_api_keys: u32,
    /// Active API keys of the enterprise plan.
    #[arg(long, env = "PLAN_ENTERPRISE_API_KEYS", default_value_t = 0)]
    pub enterprise_api_keys: u32,
    /// Sync interval (and the shortest a tenant may ask for) of the free plan, in seconds.
    #[arg(long, env = "SYNC_INTERVAL_FREE_SECS", default_value_t = 3600)]
    pub interval_free_secs: u64,
    /// Sync interval of the pro plan, in seconds.
    #[arg(long, env = "SYNC_INTERVAL_PRO_SECS", default_value_t = 900)]
    pub interval_pro_secs: u64,
    /// Sync interval of the enterprise plan, in seconds.
    #[arg(long, env = "SYNC_INTERVAL_ENTERPRISE_SECS", default_value_t = 300)]
    pub interval_enterprise_secs: u64,
    /// Days the audit events of a tenant on the free plan are kept.
    #[arg(long, env = "AUDIT_RETENTION_FREE_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    pub audit_retention_free_days: u32,
    /// Days the audit events of a tenant on the pro plan are kept.
    #[arg(long, env = "AUDIT_RETENTION_PRO_DAYS", default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..))]
    pub audit_retention_pro_days: u32,
    /// Days the audit events of a tenant on the enterprise plan are kept.
    #[arg(long, env = "AUDIT_RETENTION_ENTERPRISE_DAYS", default_value_t = 2555, value_parser = clap::value_parser!(u32).range(1..))]
    pub audit_retention_enterprise_days: u32,
    /// The Stripe price id the pro plan is sold at (unset: not for sale through Checkout).
    #[arg(long, env = "STRIPE_PRICE_PRO")]
    pub stripe_price_pro: Option<String>,
    /// The Stripe price id the enterprise plan is sold at.
    #[arg(long, env = "STRIPE_PRICE_ENTERPRISE")]
    pub stripe_price_enterprise: Option<String>,
    /// Days a past-due subscription keeps its paid plan before the free plan's limits apply.
    #[arg(long, env = "BILLING_PAST_DUE_GRACE_DAYS", default_value_t = 7)]
    pub past_due_grace_days: u32,
}

impl PlanSettings {
    /// The catalogue these settings describe.
    pub fn catalog(&self) -> entity::plans::Catalog {
        let limit = |n: u32| (n > 0).then_some(n);
        let limits = |seats, products, keys, interval, days| entity::plans::Limits {
            seats: limit(seats),
            products: limit(products),
            api_keys: limit(keys),
            min_sync_interval_secs: interval,
            audit_retention_days: days,
        };
        let price = |p: &Option<String>| p.as_ref().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        entity::plans::Catalog {
            free: limits(
                self.free_seats,
                self.free_products,
                self.free_api_keys,
                self.interval_free_secs,
                self.audit_retention_free_days,
            ),
            pro: limits(
                self.pro_seats,
                self.pro_products,
                self.pro_api_keys,
                self.interval_pro_secs,
                self.audit_retention_pro_days,
            ),
            enterprise: limits(
                self.enterprise_seats,
                self.enterprise_products,
                self.enterprise_api_keys,
                self.interval_enterprise_secs,
                self.audit_retention_enterprise_days,
            ),
            pro_price: price(&self.stripe_price_pro),
            enterprise_price: price(&self.stripe_price_enterprise),
            past_due_grace: chrono::Duration::days(i64::from(self.past_due_grace_days)),
        }
    }
}

/// How to reach Stripe (the API and the worker both call it).
#[derive(Debug, Clone, clap::Args)]
pub struct StripeSettings {
    /// Stripe secret key (`sk_...`). Unset: billing is off (checkout and portal answer 503; webhooks are refused).
    #[arg(long, env = "STRIPE_SECRET_KEY", hide_env_values = true, value_parser = secret)]
    pub stripe_secret_key: Option<SecretString>,
    /// Base URL of the Stripe API (a local simulator in tests and the demo).
    #[arg(long, env = "STRIPE_API_BASE", default_value = "https://api.stripe.com/")]
    pub stripe_api_base: String,
    /// Timeout of one Stripe request, in seconds.
    #[arg(long, env = "STRIPE_TIMEOUT_SECS", default_value_t = 10)]
    pub stripe_timeout_secs: u64,
}
