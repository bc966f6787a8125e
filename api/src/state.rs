//! [`AppState`]: what every handler can reach, registered once as `web::Data<AppState>`.

use std::sync::Arc;

use common::token_cipher::TokenKeys;
use entity::mirror::query::StatsCache;
use sea_orm::DatabaseConnection;
use testio::allowlist::AllowedBaseUrls;
use testio::client::TestioClient;

use crate::auth::jwt::JwtKeys;
use crate::auth::password::PasswordHasher;
use crate::config::Settings;
use crate::mailer::Mailer;
use crate::pagination::CursorKeys;
use crate::request_context::ProxyTrust;
use crate::routes::mirror::stats::CountedStats;

/// How many tenants' statistics the API keeps in memory (each a few KiB to a few tens of KiB).
pub const STATS_CACHE_TENANTS: usize = 2_000;

#[derive(Clone)]
pub struct AppState {
    /// Pool connected as the runtime role.
    pub db: DatabaseConnection,
    pub settings: Arc<Settings>,
    pub jwt: Arc<JwtKeys>,
    pub mailer: Arc<dyn Mailer>,
    /// Seals TestIO tokens before they are stored.
    pub token_keys: Arc<TokenKeys>,
    /// Checks TestIO tokens when a connection is saved.
    pub testio: TestioClient,
    /// The base URLs a connection may be saved with (`TESTIO_ALLOWED_BASE_URLS`).
    pub testio_allowlist: Arc<AllowedBaseUrls>,
    /// Bounded argon2id hashing.
    pub passwords: PasswordHasher,
    /// Which `X-Forwarded-For` to believe.
    pub proxy_trust: Arc<ProxyTrust>,
    /// Signs and opens the lists' `next_cursor`.
    pub cursors: Arc<CursorKeys>,
    /// Each tenant's counted statistics, kept under the version of its counters.
    pub stats: Arc<StatsCache<CountedStats>>,
    /// The plans, their limits and prices.
    pub plans: Arc<entity::plans::Catalog>,
    /// Stripe, when `STRIPE_SECRET_KEY` is set.
    pub stripe: Option<billing::StripeClient>,
    /// Checks Stripe webhook signatures (`STRIPE_WEBHOOK_SECRETS`).
    pub webhooks: Arc<billing::webhook::Verifier>,
    /// Request rate limits per client address and per tenant.
    pub rate_limits: crate::rate_limit::RateLimits,
}
