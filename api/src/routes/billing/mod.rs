//! Billing with Stripe: `GET /v1/plans`; a tenant's `GET .../billing`, `POST .../billing/checkout-session` and
//! `POST .../billing/portal-session`; and `POST /v1/webhooks/stripe`, which stores each verified event once for the
//! worker to apply (see `worker::billing`).

mod plans;
mod tenant;
mod webhook;

use utoipa_actix_web::service_config::ServiceConfig;

pub use plans::{PlanView, PlansView};
pub use tenant::BillingView;

/// `GET /v1/plans` (see `routes::configure`).
pub fn configure_plans(cfg: &mut ServiceConfig) {
    cfg.service(plans::list_plans);
}

/// The handlers under `/v1/tenants/{tenant_id}/billing`.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(tenant::get_billing).service(tenant::create_checkout_session).service(tenant::create_portal_session);
}

/// `POST /v1/webhooks/stripe`.
pub fn configure_webhooks(cfg: &mut ServiceConfig) {
    cfg.service(webhook::stripe_webhook);
}

/// The answer when `STRIPE_SECRET_KEY` is not set.
pub(crate) fn not_configured() -> crate::error::ApiError {
    crate::error::ApiError::new(
        crate::error::ErrorCode::ServiceUnavailable,
        "Billing is not configured on this server.",
    )
}

/// A Stripe failure as the caller sees it: 502, with what Stripe said (never the key).
pub(crate) fn upstream(e: billing::StripeError) -> crate::error::ApiError {
    tracing::warn!(error = %e, "a Stripe call failed");
    crate::error::ApiError::new(
        crate::error::ErrorCode::UpstreamUnavailable,
        format!("Stripe did not complete the request: {e}"),
    )
}

/// Whether a subscription in this state still charges (or will charge) the customer.
pub(crate) fn is_live(status: Option<&str>) -> bool {
    matches!(status, Some("active" | "trialing" | "past_due"))
}
