//! `Idempotency-Key` on the POST routes that create things (tenants, API keys, invitations, sync runs, Checkout and
//! portal sessions). A retry with the same key and the same request gets the first answer again (same status, body and
//! `Location`, plus `Idempotency-Replayed: true`) and creates nothing; the same key with another request is 422
//! `idempotency_key_reused`; a duplicate sent while the first is still running waits for it. Keys are kept 24 hours,
//! per tenant and per caller. See [`entity::idempotency`] for how the key shares the work's transaction.
//!
//! The stored answer may hold a secret shown once (a new API key's): it is encrypted with AES-256-GCM under a key
//! derived from the client's `Idempotency-Key`, which the database holds only as a SHA-256 hash. Use random keys
//! (a UUID v4): whoever knows the key and may act as the caller can read the answer again, which is the point.

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use aes_gcm::aead::{Aead, Generate, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::Context;
use entity::TenantTxn;
use entity::idempotency::{self as store, Claim, Claimed, Stored};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ErrorCode};

pub const HEADER: HeaderName = HeaderName::from_static("idempotency-key");
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotency-replayed");

/// Longest key accepted.
pub const MAX_LEN: usize = 255;

/// The request's `Idempotency-Key`, if it sent one (1 to 255 visible ASCII characters, else 400), and the path it was
/// sent to.
#[derive(Debug, Clone, Default)]
pub struct IdempotencyKey {
    key: Option<String>,
    path: String,
}

impl FromRequest for IdempotencyKey {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let mut values = req.headers().get_all(HEADER);
        let key = match (values.next(), values.next()) {
            (None, _) => Ok(None),
            (Some(value), None) => match value.to_str() {
                Ok(key) if (1..=MAX_LEN).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()) => {
                    Ok(Some(key.to_owned()))
                }
                _ => Err(bad_key()),
            },
            (Some(_), Some(_)) => Err(bad_key()),
        };
        std::future::ready(key.map(|key| Self { key, path: req.path().to_owned() }))
    }
}

fn bad_key() -> ApiError {
    ApiError::new(ErrorCode::BadRequest, "Idempotency-Key must be one header of 1 to 255 visible ASCII characters.")
}

impl IdempotencyKey {
    /// Binds the key (if any) to the caller, the operation and the request: its path and its JSON body, canonical (the
    /// order of an object's members does not matter).
    pub fn bind(&self, principal: String, operation: &'static str, body: &serde_json::Value) -> Option<Idempotent> {
        let key = self.key.as_deref()?;
        let mut request = Sha256::new();
        request.update(operation.as_bytes());
        request.update([0]);
        request.update(self.path.as_bytes());
        request.update([0]);
        request.update(canonical(body).as_bytes());
        Some(Idempotent {
            principal,
            key_hash: hex::encode(Sha256::digest(key.as_bytes())),
            body_key: Sha256::new_with_prefix(b"testio-hub idempotent answer\0")
                .chain_update(key.as_bytes())
                .finalize()
                .into(),
            operation,
            request_hash: request.finalize().into(),
        })
    }
}

/// `value` as JSON with every object's members sorted by name.
fn canonical(value: &serde_json::Value) -> String {
    fn sorted(value: &serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<(&String, &serde_json::Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k.clone(), sorted(v))).collect())
            }
            serde_json::Value::Array(items) => serde_json::Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    // A `Map` keeps insertion order when serde_json's `preserve_order` is on: the pairs are inserted sorted.
    sorted(value).to_string()
}

/// A request bound to its key.
pub struct Idempotent {
    principal: String,
    key_hash: String,
    body_key: [u8; 32],
    operation: &'static str,
    request_hash: [u8; 32],
}

impl Idempotent {
    /// An id derived from `owner` and the key (a UUID v8): what a created resource whose id must be found again by a
    /// retry is given.
    pub fn derived_id(&self, owner: uuid::Uuid) -> uuid::Uuid {
        let digest = Sha256::new_with_prefix(b"testio-hub idempotent id\0")
            .chain_update(owner.as_bytes())
            .chain_update(self.key_hash.as_bytes())
            .finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_custom_bytes(bytes).into_uuid()
    }
}

/// An answer to send (and, for an idempotent request, to store): a status, a few headers and a JSON body.
pub struct Answer {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Vec<u8>,
}

impl Answer {
    pub fn json(status: StatusCode, body: &impl Serialize) -> Result<Self, ApiError> {
        let body = serde_json::to_vec(body).context("Failed to serialize the answer")?;
        Ok(Self { status, headers: Vec::new(), body })
    }

    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    fn into_response(self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        response.content_type("application/json");
        for (name, value) in self.headers {
            response.insert_header((name, value));
        }
        response.body(self.body)
    }
}

/// Claims the key of `idempotent` (if any) in `txn`, before any work: `Ok(None)` to go on, `Ok(Some(answer))` to send
/// the first request's answer again (the caller then drops its transaction: nothing was done), or 422 when the key
/// was used for another request.
pub async fn begin(idempotent: Option<&Idempotent>, txn: &TenantTxn) -> Result<Option<HttpResponse>, ApiError> {
    let Some(request) = idempotent else { return Ok(None) };
    let claim = Claim {
        principal: &request.principal,
        key_hash: &request.key_hash,
        operation: request.operation,
        request_hash: request.request_hash,
    };
    let claimed = store::claim(txn, &claim).await.context("Failed to claim the idempotency key")?;
    let outcome = match &claimed {
        Claimed::New => "new",
        Claimed::Replay(_) => "replayed",
        Claimed::Mismatch => "mismatch",
    };
    metrics::counter!("idempotency_requests_total", "outcome" => outcome).increment(1);
    match claimed {
        Claimed::New => Ok(None),
        Claimed::Mismatch => Err(reused()),
        Claimed::Replay(stored) => {
            let body = open(&request.body_key, &stored.body).context("Failed to open the stored answer")?;
            let mut response = HttpResponse::build(StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK));
            response.content_type("application/json").insert_header((REPLAYED, HeaderValue::from_static("true")));
            for (name, value) in stored.headers {
                if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
                    response.insert_header((name, value));
                }
            }
            Ok(Some(response.body(body)))
        }
    }
}

/// 422 `idempotency_key_reused`.
pub fn reused() -> ApiError {
    ApiError::new(
        ErrorCode::IdempotencyKeyReused,
        "This Idempotency-Key was used for another request (or, for a tenant, more than 24 hours ago); use a new key.",
    )
}

/// Stores `answer` for the key of `idempotent` (if any) in `txn`, which the caller then commits; the response to send.
pub async fn finish(
    idempotent: Option<&Idempotent>,
    txn: &TenantTxn,
    answer: Answer,
) -> Result<HttpResponse, ApiError> {
    if let Some(request) = idempotent {
        let stored = Stored {
            status: answer.status.as_u16(),
            headers: answer
                .headers
                .iter()
                .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect(),
            body: seal(&request.body_key, &answer.body)?,
        };
        store::record(txn, &request.principal, &request.key_hash, &stored)
            .await
            .context("Failed to store the idempotent answer")?;
    }
    Ok(answer.into_response())
}

/// `nonce || AES-256-GCM(body)` under `key`.
fn seal(key: &[u8; 32], body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| anyhow::anyhow!("bad answer key length"))?;
    let nonce = Nonce::generate();
    let sealed = cipher.encrypt(&nonce, body).map_err(|_| anyhow::anyhow!("Failed to encrypt the answer"))?;
    Ok([nonce.to_vec(), sealed].concat())
}

fn open(key: &[u8; 32], sealed: &[u8]) -> anyhow::Result<Vec<u8>> {
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| anyhow::anyhow!("bad answer key length"))?;
    anyhow::ensure!(sealed.len() > 12, "the stored answer is too short");
    let (nonce, body) = sealed.split_at(12);
    let nonce = Nonce::try_from(nonce).map_err(|_| anyhow::anyhow!("bad nonce"))?;
    cipher.decrypt(&nonce, body).map_err(|_| anyhow::anyhow!("the stored answer does not decrypt"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_ignores_member_order_but_not_values() {
        let a = serde_json::json!({"b": 1, "a": {"y": [1, 2], "x": null}});
        let b = serde_json::json!({"a": {"x": null, "y": [1, 2]}, "b": 1});
        assert_eq!(canonical(&a), canonical(&b));
        assert_ne!(canonical(&a), canonical(&serde_json::json!({"a": {"x": null, "y": [2, 1]}, "b": 1})));
    }

    #[test]
    fn a_sealed_answer_opens_only_with_its_key() {
        let key = [7u8; 32];
        let sealed = seal(&key, b"{\"secret\":\"s\"}").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"secret"), "not stored in clear");
        assert_eq!(open(&key, &sealed).unwrap(), b"{\"secret\":\"s\"}");
        assert!(open(&[8u8; 32], &sealed).is_err());
    }
}
