//! The outermost middleware: gives every request an id, a root span and an access-log line.
//!
//! The id is the incoming `x-request-id` when it is a sane token (1-128 characters of `[A-Za-z0-9._:-]`), otherwise
//! a new UUID; it is echoed in the `x-request-id` response header, carried by the root span (so every log line of the
//! request has it), and put in every problem+json body. The span also has empty `tenant_id` and `user_id` fields that
//! handlers fill in once they know them.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use tracing::Instrument;
use tracing::field::Empty;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// Accepts a client-supplied id only if it is safe to log and echo.
    pub fn from_client(value: &str) -> Option<Self> {
        let ok = (1..=128).contains(&value.len())
            && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        ok.then(|| Self(value.to_owned()))
    }

    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

tokio::task_local! {
    /// The current request's id, readable wherever the response is built (error bodies included).
    static CURRENT: RequestId;
}

/// The id of the request being served on this task, if any.
pub fn current_request_id() -> Option<RequestId> {
    CURRENT.try_with(Clone::clone).ok()
}

/// See the module documentation.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, Error> {
    let request_id = req
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(RequestId::from_client)
        .unwrap_or_else(RequestId::generate);
    req.extensions_mut().insert(request_id.clone());

    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %req.method(),
        path = %req.path(),
        tenant_id = Empty,
        user_id = Empty,
    );
    let started = Instant::now();
    let result = CURRENT.scope(request_id.clone(), next.call(req)).instrument(span.clone()).await;
    // The inner services render every error into a response (handlers through `ApiError`, the rest through the
    // `ErrorHandlers` fallback), so an `Err` here is a bug in a middleware: actix renders it, and we log it.
    let mut response = result.inspect_err(|err| {
        span.in_scope(|| tracing::error!(error = %err, "middleware error escaped the error handlers"));
    })?;
    if let Ok(value) = HeaderValue::from_str(request_id.as_str()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status >= 500 {
            tracing::error!(status, elapsed_ms, "request failed");
        } else {
            tracing::info!(status, elapsed_ms, "request completed");
        }
    });
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::RequestId;

    #[test]
    fn client_ids_are_accepted_only_when_sane() {
        assert!(RequestId::from_client("abc-123_x.y:z").is_some());
        assert!(RequestId::from_client("").is_none());
        assert!(RequestId::from_client(&"a".repeat(129)).is_none());
        assert!(RequestId::from_client("has space").is_none());
        assert!(RequestId::from_client("inject\nline").is_none());
        assert!(RequestId::from_client("ünïcode").is_none());
    }
}

/// Where a request came from, for the audit log and the login throttle: the client address (the peer, or the first
/// `X-Forwarded-For` entry when `APP_TRUST_FORWARDED_FOR` is set), the user agent and the request id.
#[derive(Debug, Clone)]
pub struct ClientOrigin(pub entity::audit::Origin);

impl actix_web::FromRequest for ClientOrigin {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let trust_forwarded = req
            .app_data::<actix_web::web::Data<crate::state::AppState>>()
            .is_some_and(|s| s.settings.trust_forwarded_for);
        let forwarded = trust_forwarded
            .then(|| req.headers().get("x-forwarded-for"))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|ip| ip.trim().parse().ok());
        let ip_address = forwarded.or_else(|| req.peer_addr().map(|a| a.ip()));
        let user_agent = req
            .headers()
            .get(actix_web::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| entity::audit::truncate(ua, 1024).to_owned());
        let request_id = req.extensions().get::<RequestId>().map(|id| id.to_string());
        std::future::ready(Ok(Self(entity::audit::Origin { ip_address, user_agent, request_id })))
    }
}
