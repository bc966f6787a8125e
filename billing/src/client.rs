//! The Stripe client (async-stripe 1.0, Stripe API `2026-09-30`): the four calls this service makes. Every call has a
//! timeout; creating calls carry an idempotency key, so a retried request (or two concurrent ones) never creates two
//! of anything.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::TenantId;
use entity::billing::SubscriptionState;
use secrecy::{ExposeSecret, SecretString};
use stripe::{ApiErrorsCode, Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeRequest};
use stripe_billing::billing_portal_session::CreateBillingPortalSession;
use stripe_billing::subscription::{CancelSubscription, RetrieveSubscription};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionSubscriptionData,
};
use stripe_core::customer::CreateCustomer;
use stripe_shared::CheckoutSessionMode;

/// How a Stripe call failed.
#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// Stripe could not be reached, timed out, or failed on its side (5xx, 429): try again later.
    #[error("Stripe is unavailable: {0}")]
    Unavailable(String),
    /// Stripe refused the request (a 4xx other than 404 and 429).
    #[error("Stripe refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
    /// The object does not exist (404, `resource_missing`).
    #[error("not found at Stripe: {0}")]
    NotFound(String),
}

impl From<stripe::StripeError> for StripeError {
    fn from(e: stripe::StripeError) -> Self {
        match e {
            stripe::StripeError::Stripe(api, status) => {
                let message = api.message.clone().unwrap_or_default();
                if status == 404 || matches!(api.code, Some(ApiErrorsCode::ResourceMissing)) {
                    StripeError::NotFound(message)
                } else if status == 429 || status >= 500 {
                    StripeError::Unavailable(format!("{status}: {message}"))
                } else {
                    StripeError::Refused { status, message }
                }
            }
            stripe::StripeError::Timeout => StripeError::Unavailable("timed out".to_owned()),
            stripe::StripeError::ClientError(e) => StripeError::Unavailable(e),
            other => StripeError::Unavailable(other.to_string()),
        }
    }
}

/// A Stripe API client.
#[derive(Clone)]
pub struct StripeClient {
    client: Client,
}

impl std::fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StripeClient")
    }
}

fn idempotent(key: &str) -> Result<RequestStrategy, StripeError> {
    IdempotencyKey::new(key)
        .map(RequestStrategy::Idempotent)
        .map_err(|e| StripeError::Refused { status: 0, message: format!("bad idempotency key: {e}") })
}

impl StripeClient {
    /// A client of the Stripe API at `base` (`https://api.stripe.com/`, or a simulator), with `secret`.
    pub fn new(secret: &SecretString, base: &str, timeout: Duration) -> anyhow::Result<Self> {
        let base = if base.ends_with('/') { base.to_owned() } else { format!("{base}/") };
        let client = ClientBuilder::new(secret.expose_secret())
            .url(base)
            .timeout(timeout)
            .build()
            .map_err(|e| anyhow::anyhow!("Failed to build the Stripe client: {e}"))?;
        Ok(Self { client })
    }

    /// The client `settings` describe; `None` when no secret key is set (billing is off).
    pub fn from_settings(settings: &common::settings::StripeSettings) -> anyhow::Result<Option<Self>> {
        settings
            .stripe_secret_key
            .as_ref()
            .filter(|key| !key.expose_secret().trim().is_empty())
            .map(|key| Self::new(key, &settings.stripe_api_base, Duration::from_secs(settings.stripe_timeout_secs)))
            .transpose()
    }

    /// Creates the Stripe customer of `tenant` (named for it, its id in the metadata). The idempotency key is the
    /// tenant's: however often it is asked (concurrently, or again after a lost answer), Stripe makes one customer.
    pub async fn create_customer(&self, tenant: TenantId, name: &str, email: &str) -> Result<String, StripeError> {
        let metadata = HashMap::from([("tenant_id".to_owned(), tenant.0.to_string())]);
        let customer = CreateCustomer::new()
            .name(name)
            .email(email)
            .metadata(metadata)
            .customize()
            .request_strategy(idempotent(&format!("testio-hub-customer-{}", tenant.0))?)
            .send(&self.client)
            .await?;
        Ok(customer.id.to_string())
    }

    /// Opens a Checkout session subscribing `customer` to `price` for `tenant`; its URL. `key` makes a retry of the
    /// same request return the same session.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_checkout_session(
        &self,
        tenant: TenantId,
        customer: &str,
        price: &str,
        success_url: &str,
        cancel_url: &str,
        key: &str,
    ) -> Result<CheckoutSession, StripeError> {
        let mut item = CreateCheckoutSessionLineItems::new();
        item.price = Some(price.to_owned());
        item.quantity = Some(1);
        let mut subscription = CreateCheckoutSessionSubscriptionData::new();
        subscription.metadata = Some(HashMap::from([("tenant_id".to_owned(), tenant.0.to_string())]));
        let session = CreateCheckoutSession::new()
            .mode(CheckoutSessionMode::Subscription)
            .customer(customer)
            .line_items(vec![item])
            .success_url(success_url)
            .cancel_url(cancel_url)
            .client_reference_id(tenant.0.to_string())
            .subscription_data(subscription)
            .customize()
            .request_strategy(idempotent(key)?)
            .send(&self.client)
            .await?;
        let url = session.url.ok_or_else(|| StripeError::Unavailable("the Checkout session has no URL".to_owned()))?;
        Ok(CheckoutSession { id: session.id.to_string(), url })
    }

    /// Opens a customer portal session for `customer`; its URL.
    pub async fn create_portal_session(&self, customer: &str, return_url: &str) -> Result<String, StripeError> {
        let session =
            CreateBillingPortalSession::new().customer(customer).return_url(return_url).send(&self.client).await?;
        Ok(session.url)
    }

    /// Cancels the subscription at once (no further invoice; Stripe then sends `customer.subscription.deleted`).
    /// `Ok` also when Stripe has no such subscription any more: there is nothing left to charge.
    pub async fn cancel_subscription(&self, id: &str) -> Result<(), StripeError> {
        match CancelSubscription::new(id).send(&self.client).await.map_err(StripeError::from) {
            Ok(_) | Err(StripeError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The subscription as Stripe has it now (`NotFound` when Stripe has no such subscription).
    pub async fn subscription(&self, id: &str) -> Result<SubscriptionState, StripeError> {
        let s = RetrieveSubscription::new(id).send(&self.client).await?;
        let item = s.items.data.first();
        Ok(SubscriptionState {
            id: s.id.to_string(),
            customer: s.customer.id().to_string(),
            status: s.status.as_str().to_owned(),
            price_id: item.map(|i| i.price.id.to_string()),
            current_period_end: item.and_then(|i| DateTime::<Utc>::from_timestamp(i.current_period_end, 0)),
            cancel_at_period_end: s.cancel_at_period_end,
        })
    }
}

/// An open Checkout session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutSession {
    pub id: String,
    pub url: String,
}
