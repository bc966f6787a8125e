//! A billing fixture: the API and a worker wired to the Stripe simulator, with the simulator's prices for sale.

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::app::{TestApp, TestUser, spawn_app_with};
use crate::stripe_sim::{PRICE_ENTERPRISE, PRICE_PRO, SECRET_KEY, StripeSim, WEBHOOK_SECRET};

/// The plan limits the billing tests run with: small, so that a test reaches them in a few requests.
pub fn small_plans(plans: &mut common::settings::PlanSettings) {
    plans.free_seats = 2;
    plans.free_api_keys = 1;
    plans.free_products = 2;
    plans.pro_seats = 5;
    plans.pro_api_keys = 3;
    plans.pro_products = 10;
    plans.enterprise_seats = 0;
    plans.enterprise_api_keys = 0;
    plans.enterprise_products = 0;
    plans.stripe_price_pro = Some(PRICE_PRO.to_owned());
    plans.stripe_price_enterprise = Some(PRICE_ENTERPRISE.to_owned());
    plans.past_due_grace_days = 7;
}

/// Points an API's settings at `stripe` (its key, its prices, its webhook secret and a previous one).
pub fn use_stripe(s: &mut api::config::Settings, stripe: &StripeSim) {
    s.plans.stripe_price_pro = Some(PRICE_PRO.to_owned());
    s.plans.stripe_price_enterprise = Some(PRICE_ENTERPRISE.to_owned());
    s.stripe.stripe_secret_key = Some(SECRET_KEY.into());
    s.stripe.stripe_api_base = stripe.base_url.clone();
    s.stripe.stripe_timeout_secs = 5;
    s.stripe_webhook_secrets = Some(format!("whsec_previous,{WEBHOOK_SECRET}").into());
}

pub struct BillingFixture {
    pub app: TestApp,
    pub stripe: StripeSim,
    pub worker: worker::Worker,
}

impl BillingFixture {
    /// The API (with [`small_plans`] and the webhook secrets `whsec_previous`, then the simulator's) and a worker,
    /// both reaching the simulator.
    pub async fn start() -> Self {
        let stripe = StripeSim::start().await;
        let base = stripe.base_url.clone();
        let app = spawn_app_with(|s| {
            small_plans(&mut s.plans);
            use_stripe(s, &stripe);
        })
        .await;
        stripe.set_webhook(&format!("{}/v1/webhooks/stripe", app.address), WEBHOOK_SECRET);
        let worker = worker::Worker::build(&Self::worker_settings_for(&app, &base), CancellationToken::new())
            .await
            .expect("the worker builds");
        Self { app, stripe, worker }
    }

    /// Worker settings reaching the fixture's database and simulator.
    pub fn worker_settings_for(app: &TestApp, stripe_base: &str) -> worker::Settings {
        let mut settings = crate::sync::worker_settings(&app.db);
        small_plans(&mut settings.plans);
        settings.stripe.stripe_secret_key = Some(SECRET_KEY.into());
        settings.stripe.stripe_api_base = stripe_base.to_owned();
        settings.stripe.stripe_timeout_secs = 5;
        settings.billing_poll_interval_ms = 50;
        settings
    }

    pub fn worker_settings(&self) -> worker::Settings {
        Self::worker_settings_for(&self.app, &self.stripe.base_url)
    }

    /// Delivers the simulator's queued events and applies what was stored; the events applied.
    pub async fn settle(&self) -> usize {
        for (event, status) in self.stripe.deliver().await {
            assert_eq!(status, 200, "the webhook refused {event}");
        }
        self.worker.apply_billing_events().await.expect("the events apply")
    }

    /// `POST .../billing/checkout-session` with `{ "plan": plan }`.
    pub async fn checkout(&self, who: &str, tenant: uuid::Uuid, plan: &str) -> reqwest::Response {
        self.app
            .call(
                reqwest::Method::POST,
                &format!("/v1/tenants/{tenant}/billing/checkout-session"),
                Some(who),
                Some(serde_json::json!({ "plan": plan })),
            )
            .await
    }

    /// `GET .../billing`, expected 200.
    pub async fn billing(&self, who: &TestUser, tenant: uuid::Uuid) -> Value {
        let response = self
            .app
            .call(reqwest::Method::GET, &format!("/v1/tenants/{tenant}/billing"), Some(&who.access_token), None)
            .await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// `POST .../billing/portal-session`.
    pub async fn portal(&self, who: &str, tenant: uuid::Uuid) -> reqwest::Response {
        let path = format!("/v1/tenants/{tenant}/billing/portal-session");
        self.app.call(reqwest::Method::POST, &path, Some(who), None).await
    }

    /// Opens a Checkout session for `plan` as `owner` (expected 201); the simulator's session id.
    pub async fn open_checkout(&self, owner: &TestUser, tenant: uuid::Uuid, plan: &str) -> String {
        let response = self.checkout(&owner.access_token, tenant, plan).await;
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        self.stripe.session_of_url(body["url"].as_str().unwrap()).expect("a simulator Checkout URL")
    }

    /// Subscribes `tenant` to `plan` through Checkout, paid, delivered and applied; the subscription id.
    pub async fn subscribe(&self, owner: &TestUser, tenant: uuid::Uuid, plan: &str) -> String {
        let session = self.open_checkout(owner, tenant, plan).await;
        let subscription = self.stripe.complete_checkout(&session).expect("the session exists");
        self.settle().await;
        subscription
    }
}
