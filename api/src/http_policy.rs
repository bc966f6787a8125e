//! What every response carries and how long a request may take: security headers, the request deadline and CORS.
//!
//! - Every response gets `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`, `X-Frame-Options: DENY`,
//!   `Cache-Control: no-store` (unless the route set its own) and a Content-Security-Policy: `default-src 'none'` for
//!   JSON (nothing in an API answer may load or run anything), a policy that lets Swagger UI run from this origin only
//!   on `/docs/`, and the viewer's own (set by [`crate::viewer`]). `Strict-Transport-Security` is added when the API
//!   is served over TLS (`APP_PUBLIC_URL` is `https://`): browsers ignore it on plain HTTP anyway.
//! - A request that has not started its answer after `APP_REQUEST_TIMEOUT_MS` is answered 503 (`Retry-After: 1`);
//!   its handler is dropped, so its transaction rolls back and nothing it did is kept.
//! - CORS (`actix-cors`) only for the origins of `CORS_ALLOWED_ORIGINS`; with none configured no CORS header is sent
//!   and browsers keep pages of other origins out.

use std::time::Duration;

use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse, ResponseError, web};

use crate::config::Settings;
use crate::error::ApiError;
use crate::request_context::{CURRENT as REQUEST_ID, REQUEST_ID_HEADER, RequestId};

/// The policy of [`security_headers`] and of the request deadline, built once from the settings.
#[derive(Debug, Clone)]
pub struct HttpPolicy {
    pub(crate) hsts: Option<HeaderValue>,
    request_timeout: Option<Duration>,
}

/// The Content-Security-Policy of JSON answers: they may load, run and frame nothing.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The Content-Security-Policy of Swagger UI (`/docs/`): its scripts and styles from this origin only, the inline
/// styles it sets on elements, its `data:` icons, and requests to this origin only (the document and "Try it out").
pub const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                            img-src 'self' data:; font-src 'self' data:; connect-src 'self'; form-action 'self'; \
                            frame-ancestors 'none'; base-uri 'none'";

/// Request headers a browser page may send, and response headers it may read.
const CORS_REQUEST_HEADERS: [HeaderName; 4] =
    [header::AUTHORIZATION, header::CONTENT_TYPE, crate::idempotency::HEADER, REQUEST_ID_HEADER];
const CORS_EXPOSED_HEADERS: [&str; 9] = [
    "x-request-id",
    "retry-after",
    "location",
    "content-disposition",
    "idempotency-replayed",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "ratelimit-policy",
];

impl HttpPolicy {
    pub fn from_settings(settings: &Settings) -> Self {
        let tls = settings.public_url.to_ascii_lowercase().starts_with("https://");
        let hsts = (tls && settings.hsts_max_age_secs > 0)
            .then(|| HeaderValue::from_str(&format!("max-age={}; includeSubDomains", settings.hsts_max_age_secs)))
            .and_then(Result::ok);
        let request_timeout =
            (settings.request_timeout_ms > 0).then(|| Duration::from_millis(settings.request_timeout_ms));
        Self { hsts, request_timeout }
    }

    /// How long a request may take before it is answered 503 ([`DeadlineExceeded`]).
    pub fn request_timeout(&self) -> Option<Duration> {
        self.request_timeout
    }
}

/// The CORS middleware of `CORS_ALLOWED_ORIGINS`, or `None` when no origin is allowed. An origin must be a bare
/// `scheme://host[:port]`: anything else stops start-up.
pub fn cors(settings: &Settings) -> anyhow::Result<Option<Cors>> {
    let origins: Vec<&str> =
        settings.cors_allowed_origins.split(',').map(str::trim).filter(|o| !o.is_empty()).collect();
    if origins.is_empty() {
        return Ok(None);
    }
    let mut cors = Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE"])
        .allowed_headers(CORS_REQUEST_HEADERS)
        .expose_headers(CORS_EXPOSED_HEADERS)
        .max_age(3600)
        // A request from a browser page of another origin is refused (400) rather than served with no CORS header.
        .block_on_origin_mismatch(true);
    for origin in origins {
        if origin == "*" {
            cors = cors.allow_any_origin();
            continue;
        }
        let parsed =
            url::Url::parse(origin).map_err(|_| anyhow::anyhow!("CORS_ALLOWED_ORIGINS: {origin:?} is not a URL"))?;
        let bare =
            parsed.path() == "/" && !origin.ends_with('/') && parsed.query().is_none() && parsed.username().is_empty();
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() || !bare {
            anyhow::bail!("CORS_ALLOWED_ORIGINS: {origin:?} is not an origin (scheme://host[:port], no path)");
        }
        cors = cors.allowed_origin(origin);
    }
    Ok(Some(cors))
}

/// See the module documentation.
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, Error> {
    let hsts = req.app_data::<web::Data<HttpPolicy>>().and_then(|p| p.hsts.clone());
    let docs = req.path().starts_with("/docs");
    let mut response = next.call(req).await?;
    secure(response.headers_mut(), docs, hsts);
    Ok(response)
}

/// Adds the security headers to an answer (of `/docs/` or not), keeping a Content-Security-Policy or Cache-Control
/// the route set itself.
fn secure(headers: &mut HeaderMap, docs: bool, hsts: Option<HeaderValue>) {
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        let csp = if docs { DOCS_CSP } else { API_CSP };
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    }
    if !headers.contains_key(header::CACHE_CONTROL) && !docs {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if let Some(hsts) = hsts {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts);
    }
}

/// A request that ran past `APP_REQUEST_TIMEOUT_MS`: its handler is dropped (so its transaction rolls back) and this
/// error is answered in its place, 503 problem+json with `Retry-After`, the request id and the security headers.
///
/// The deadline is kept by [`crate::request_context`], the outermost layer, because only there is the whole request
/// under one timer; a middleware cannot hold the request while the router still needs it, so this answer is rendered
/// from the error (by actix), complete in itself.
#[derive(Debug)]
pub struct DeadlineExceeded {
    pub limit: Duration,
    pub request_id: RequestId,
    pub hsts: Option<HeaderValue>,
}

impl std::fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the request ran past APP_REQUEST_TIMEOUT_MS ({:?})", self.limit)
    }
}

impl ResponseError for DeadlineExceeded {
    fn status_code(&self) -> actix_web::http::StatusCode {
        actix_web::http::StatusCode::SERVICE_UNAVAILABLE
    }

    fn error_response(&self) -> HttpResponse {
        let error = ApiError::timed_out(anyhow::anyhow!("{self}"));
        let mut response = REQUEST_ID.sync_scope(self.request_id.clone(), || error.error_response());
        let headers = response.headers_mut();
        secure(headers, false, self.hsts.clone());
        if let Ok(value) = HeaderValue::from_str(self.request_id.as_str()) {
            headers.insert(REQUEST_ID_HEADER, value);
        }
        response
    }
}
