//! Stripe webhook verification: the `Stripe-Signature` header (`t=<unix time>,v1=<hex HMAC-SHA256 of "t.body">`, one
//! `v1` per signing secret Stripe holds), checked against each configured secret (two during a rotation) in constant
//! time, with a tolerance on the timestamp; then the event's envelope, read loosely (only the fields acted on).

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::Sha256;

/// Why a webhook was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    #[error("the Stripe-Signature header is missing")]
    MissingSignature,
    #[error("the Stripe-Signature header is malformed")]
    MalformedSignature,
    #[error("no signature matches a configured webhook secret")]
    BadSignature,
    #[error("the signature's timestamp is outside the tolerance")]
    Stale,
    #[error("the body is not a Stripe event: {0}")]
    NotAnEvent(String),
}

/// The secrets webhooks may be signed with, and how old a signature may be.
#[derive(Clone)]
pub struct Verifier {
    secrets: Vec<SecretString>,
    tolerance: chrono::Duration,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("secrets", &self.secrets.len()).field("tolerance", &self.tolerance).finish()
    }
}

impl Verifier {
    pub fn new(secrets: Vec<SecretString>, tolerance: chrono::Duration) -> Self {
        Self { secrets, tolerance }
    }

    /// Whether any secret is configured (without one, every webhook is refused).
    pub fn is_configured(&self) -> bool {
        !self.secrets.is_empty()
    }

    /// Checks `header` over `body` at `now`.
    pub fn verify(&self, header: Option<&str>, body: &[u8], now: DateTime<Utc>) -> Result<(), WebhookError> {
        let header = header.ok_or(WebhookError::MissingSignature)?;
        let mut timestamp: Option<i64> = None;
        let mut signatures: Vec<Vec<u8>> = Vec::new();
        for part in header.split(',') {
            let Some((key, value)) = part.trim().split_once('=') else { continue };
            match key {
                "t" => timestamp = Some(value.parse().map_err(|_| WebhookError::MalformedSignature)?),
                "v1" => signatures.push(hex::decode(value).map_err(|_| WebhookError::MalformedSignature)?),
                _ => {}
            }
        }
        let timestamp = timestamp.ok_or(WebhookError::MalformedSignature)?;
        if signatures.is_empty() {
            return Err(WebhookError::MalformedSignature);
        }
        let matched = self.secrets.iter().any(|secret| {
            let expected = sign(secret.expose_secret(), timestamp, body);
            signatures.iter().any(|s| subtle::ConstantTimeEq::ct_eq(s.as_slice(), expected.as_slice()).into())
        });
        if !matched {
            return Err(WebhookError::BadSignature);
        }
        let signed_at = DateTime::from_timestamp(timestamp, 0).ok_or(WebhookError::MalformedSignature)?;
        if (now - signed_at).abs() > self.tolerance {
            return Err(WebhookError::Stale);
        }
        Ok(())
    }
}

/// HMAC-SHA256 of `"{timestamp}.{body}"` under `secret`.
fn sign(secret: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    // An HMAC takes a key of any length.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return Vec::new() };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// The `Stripe-Signature` header for `body` signed at `timestamp` with `secret` (the simulator's and tests' side).
pub fn signature_header(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", hex::encode(sign(secret, timestamp, body)))
}

/// The envelope of a Stripe event.
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// Unix seconds.
    pub created: i64,
    pub data: EventData,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EventData {
    pub object: serde_json::Value,
}

/// The event types this service acts on; others are acknowledged and logged.
pub const HANDLED: [&str; 6] = [
    "checkout.session.completed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.paid",
    "invoice.payment_failed",
];

impl Event {
    /// Reads the envelope of a (verified) body.
    pub fn parse(body: &[u8]) -> Result<Self, WebhookError> {
        let event: Event = serde_json::from_slice(body).map_err(|e| WebhookError::NotAnEvent(e.to_string()))?;
        if event.id.is_empty() || event.id.len() > 255 || event.event_type.is_empty() || event.event_type.len() > 255 {
            return Err(WebhookError::NotAnEvent("id and type must be 1 to 255 characters".to_owned()));
        }
        if !event.data.object.is_object() {
            return Err(WebhookError::NotAnEvent("data.object must be an object".to_owned()));
        }
        Ok(event)
    }

    pub fn is_handled(&self) -> bool {
        HANDLED.contains(&self.event_type.as_str())
    }

    pub fn created_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.created, 0).unwrap_or_else(Utc::now)
    }

    /// The customer the event is about: `data.object.customer` (an id, or an expanded object's id).
    pub fn customer(&self) -> Option<&str> {
        id_of(self.data.object.get("customer")?)
    }

    /// The subscription the event is about: the object itself for `customer.subscription.*`, its `subscription`
    /// for a Checkout session or an invoice (or, in newer API versions, the invoice's
    /// `parent.subscription_details.subscription`).
    pub fn subscription(&self) -> Option<&str> {
        let object = &self.data.object;
        if self.event_type.starts_with("customer.subscription.") {
            return object.get("id").and_then(serde_json::Value::as_str);
        }
        object
            .get("subscription")
            .and_then(id_of)
            .or_else(|| object.pointer("/parent/subscription_details/subscription").and_then(id_of))
    }

    /// The prices the event's object names: a subscription's items'.
    pub fn prices(&self) -> Vec<&str> {
        let Some(items) = self.data.object.pointer("/items/data").and_then(serde_json::Value::as_array) else {
            return Vec::new();
        };
        items.iter().filter_map(|item| item.pointer("/price/id").and_then(serde_json::Value::as_str)).collect()
    }
}

/// An id, or an expanded object's `id`.
fn id_of(value: &serde_json::Value) -> Option<&str> {
    value.as_str().or_else(|| value.get("id").and_then(serde_json::Value::as_str)).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier(secrets: &[&str]) -> Verifier {
        Verifier::new(
            secrets.iter().map(|s| SecretString::from(s.to_string())).collect(),
            chrono::Duration::seconds(300),
        )
    }

    #[test]
    fn a_signature_by_any_configured_secret_within_the_tolerance_passes() {
        let body = br#"{"id":"evt_1"}"#;
        let now = Utc::now();
        let t = now.timestamp();
        let v = verifier(&["whsec_old", "whsec_new"]);
        assert_eq!(v.verify(Some(&signature_header("whsec_new", t, body)), body, now), Ok(()));
        assert_eq!(v.verify(Some(&signature_header("whsec_old", t, body)), body, now), Ok(()));
        // Stripe sends one v1 per secret it holds during its own rotation: any may match.
        let both =
            format!("{},v1={}", signature_header("whsec_other", t, body), hex::encode(sign("whsec_new", t, body)));
        assert_eq!(v.verify(Some(&both), body, now), Ok(()));
        assert_eq!(
            v.verify(Some(&signature_header("whsec_other", t, body)), body, now),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            v.verify(Some(&signature_header("whsec_new", t, b"{\"id\":\"evt_2\"}")), body, now),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            v.verify(Some(&signature_header("whsec_new", t - 301, body)), body, now),
            Err(WebhookError::Stale),
            "too old"
        );
        assert_eq!(v.verify(Some(&signature_header("whsec_new", t + 301, body)), body, now), Err(WebhookError::Stale));
        assert_eq!(v.verify(None, body, now), Err(WebhookError::MissingSignature));
        assert_eq!(v.verify(Some("v1=abcd"), body, now), Err(WebhookError::MalformedSignature));
        assert_eq!(v.verify(Some("t=1,v1=zz"), body, now), Err(WebhookError::MalformedSignature));
        assert_eq!(v.verify(Some(&format!("t={t}")), body, now), Err(WebhookError::MalformedSignature));
        assert_eq!(
            verifier(&[]).verify(Some(&signature_header("x", t, body)), body, now),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn the_envelope_names_customer_subscription_and_prices() {
        let sub = Event::parse(
            br#"{"id":"evt_1","type":"customer.subscription.updated","created":1700000000,
                 "data":{"object":{"id":"sub_1","customer":"cus_1","items":{"data":[{"price":{"id":"price_pro"}}]}}}}"#,
        )
        .unwrap();
        assert_eq!(
            (sub.customer(), sub.subscription(), sub.prices()),
            (Some("cus_1"), Some("sub_1"), vec!["price_pro"])
        );
        let invoice = Event::parse(
            br#"{"id":"evt_2","type":"invoice.paid","created":1700000000,
                 "data":{"object":{"id":"in_1","customer":{"id":"cus_1"},
                                   "parent":{"subscription_details":{"subscription":"sub_1"}}}}}"#,
        )
        .unwrap();
        assert_eq!((invoice.customer(), invoice.subscription()), (Some("cus_1"), Some("sub_1")));
        assert!(Event::parse(b"not json").is_err());
        assert!(Event::parse(br#"{"id":"evt_3","type":"x","created":1,"data":{"object":5}}"#).is_err());
        assert!(Event::parse(br#"{"id":"","type":"x","created":1,"data":{"object":{}}}"#).is_err());
    }
}
