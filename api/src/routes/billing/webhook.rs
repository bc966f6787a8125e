//! `POST /v1/webhooks/stripe`: Stripe's events. The signature is checked over the raw body (any configured secret,
//! within the tolerance), the event is read, its customer (and, for a subscription, its prices) must be known, and it
//! is stored once by id: a replay answers 200 and changes nothing. The worker applies stored events (so a crash
//! between receipt and application loses nothing). Event types this service does not act on are acknowledged (200)
//! and logged, not stored.

use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, post, web};
use anyhow::Context;
use billing::webhook::{Event, WebhookError};
use serde::Serialize;
use utoipa::ToSchema;

use super::not_configured;
use crate::error::{ApiError, ErrorCode, ProblemDetails};
use crate::state::AppState;

/// What became of a webhook event.
#[derive(Serialize, ToSchema)]
pub struct WebhookAck {
    pub received: bool,
    /// `stored` (to be applied), `duplicate` (already stored: nothing changed) or `ignored` (a type not acted on).
    pub outcome: String,
}

fn refused(detail: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::BadRequest, detail)
}

/// Receives a Stripe event (called by Stripe, signed with `Stripe-Signature`). The body is the event as Stripe sent
/// it, read raw (the signature covers its exact bytes).
#[utoipa::path(
    tag = "billing",
    params(("Stripe-Signature" = String, Header, description = "`t=<unix time>,v1=<HMAC-SHA256 hex>`")),
    responses(
        (status = 200, body = WebhookAck),
        (status = 413, description = "The body is larger than the server accepts", body = ProblemDetails),
        (status = 400, description = "Unsigned, wrongly signed, too old, not an event, or for an unknown customer or price; nothing was stored", body = ProblemDetails),
        (status = 503, description = "No webhook secret is configured, or the database is unreachable", body = ProblemDetails),
    ),
)]
#[post("/stripe")]
pub async fn stripe_webhook(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let received = receive(&state, &req, payload).await;
    let outcome = match &received {
        Ok(ack) => ack.outcome,
        Err(e) if e.code().status().is_client_error() => "refused",
        Err(_) => "failed",
    };
    metrics::counter!("stripe_webhooks_total", "outcome" => outcome).increment(1);
    received.map(|ack| HttpResponse::Ok().json(WebhookAck { received: true, outcome: ack.outcome.to_owned() }))
}

/// What became of a webhook that was accepted.
struct Accepted {
    outcome: &'static str,
}

async fn receive(state: &AppState, req: &HttpRequest, payload: web::Payload) -> Result<Accepted, ApiError> {
    if !state.webhooks.is_configured() {
        return Err(not_configured());
    }
    let limit = state.settings.max_body_bytes;
    let body: Bytes = match payload.to_bytes_limited(limit).await {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => return Err(refused(format!("The body could not be read: {e}"))),
        Err(_) => {
            return Err(ApiError::new(ErrorCode::PayloadTooLarge, format!("The body is larger than {limit} bytes.")));
        }
    };
    let header = req.headers().get("stripe-signature").and_then(|v| v.to_str().ok());
    state.webhooks.verify(header, &body, chrono::Utc::now()).map_err(|e| refused(e.to_string()))?;
    let event = Event::parse(&body).map_err(|e| refused(e.to_string()))?;
    if !event.is_handled() {
        tracing::info!(event_id = %event.id, event_type = %event.event_type, "ignored a Stripe event of a type not acted on");
        return Ok(Accepted { outcome: "ignored" });
    }
    let customer = event
        .customer()
        .ok_or_else(|| refused(WebhookError::NotAnEvent("it names no customer".to_owned()).to_string()))?;
    let tenant =
        entity::billing::tenant_of_customer(&state.db, customer).await.context("Failed to look the customer up")?;
    let Some(tenant) = tenant else {
        // A deleted tenant's subscription, cancelled as the tenant was deleted: nothing to apply, and no reason for
        // Stripe to retry. Any other event of an unknown customer is refused.
        if event.event_type == "customer.subscription.deleted" {
            tracing::info!(event_id = %event.id, "ignored the end of a subscription of no tenant (a deleted tenant's)");
            return Ok(Accepted { outcome: "ignored" });
        }
        return Err(refused(format!("The customer {customer} is not a tenant's.")));
    };
    if let Some(unknown) = event.prices().into_iter().find(|p| state.plans.plan_of_price(p).is_none()) {
        return Err(refused(format!("The price {unknown} is not one of the plans'.")));
    }
    let payload: serde_json::Value = serde_json::from_slice(&body).context("Failed to re-read the event")?;
    let txn = entity::TenantTxn::begin(&state.db, tenant).await.context("Failed to begin the tenant transaction")?;
    let stored = entity::billing::store_event(&txn, &event.id, &event.event_type, event.created_at(), &payload)
        .await
        .context("Failed to store the Stripe event")?;
    txn.commit().await.context("Failed to commit")?;
    tracing::info!(event_id = %event.id, event_type = %event.event_type, tenant_id = %tenant, stored, "received a Stripe event");
    Ok(Accepted { outcome: if stored { "stored" } else { "duplicate" } })
}
