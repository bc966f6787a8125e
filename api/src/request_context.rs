//! The outermost middleware: gives every request an id, a root span, an access-log line and its deadline
//! (`APP_REQUEST_TIMEOUT_MS`, see [`DeadlineExceeded`]).
//!
//! The id is the incoming `x-request-id` when it is a sane token (1-128 characters of `[A-Za-z0-9._:-]`), otherwise
//! a new UUID; it is echoed in the `x-request-id` response header, carried by the root span (so every log line of the
//! request has it), and put in every problem+json body. The span also has empty `tenant_id` and `user_id` fields that
//! handlers fill in once they know them.
//!
//! Hand-written rather than `tracing-actix-web`'s `TracingLogger`: that one always generates its own request id,
//! while this one keeps a sane id sent by the caller (a proxy's or a client's), so one id follows a request across
//! services.

use std::net::IpAddr;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use tracing::Instrument;
use tracing::field::Empty;

use crate::http_policy::{DeadlineExceeded, HttpPolicy};

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
    pub(crate) static CURRENT: RequestId;
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
    let policy = req.app_data::<actix_web::web::Data<HttpPolicy>>().map(|p| (p.request_timeout(), p.hsts.clone()));
    let labels = RouteLabels::of(&req);
    let started = Instant::now();
    let served = CURRENT.scope(request_id.clone(), next.call(req)).instrument(span.clone());
    let result = match policy {
        Some((Some(limit), hsts)) => match tokio::time::timeout(limit, served).await {
            Ok(result) => result,
            Err(_) => {
                span.in_scope(|| tracing::warn!(status = 503, ?limit, "request ran past its deadline"));
                labels.record(503, started.elapsed());
                return Err(DeadlineExceeded { limit, request_id, hsts }.into());
            }
        },
        _ => served.await,
    };
    // The inner services render every error into a response (handlers through `ApiError`, the rest through the
    // `ErrorHandlers` fallback), so an `Err` here is a bug in a middleware: actix renders it, and we log it.
    let mut response = result.inspect_err(|err| {
        span.in_scope(|| tracing::error!(error = %err, "middleware error escaped the error handlers"));
    })?;
    if let Ok(value) = HeaderValue::from_str(request_id.as_str()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let status = response.status().as_u16();
    labels.record(status, started.elapsed());
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

/// The labels of a request's metrics: its method and its route template (`/v1/tenants/{tenant_id}`, never the path
/// itself, so the number of series stays bounded).
struct RouteLabels {
    method: &'static str,
    route: String,
}

impl RouteLabels {
    fn of(req: &ServiceRequest) -> Self {
        let method = match req.method().as_str() {
            "GET" => "GET",
            "POST" => "POST",
            "PUT" => "PUT",
            "PATCH" => "PATCH",
            "DELETE" => "DELETE",
            "HEAD" => "HEAD",
            "OPTIONS" => "OPTIONS",
            _ => "other",
        };
        let route = match req.match_pattern() {
            Some(pattern) if pattern.starts_with("/docs/") => "/docs/{file}".to_owned(),
            Some(pattern) => pattern,
            None => "unmatched".to_owned(),
        };
        Self { method, route }
    }

    /// `http_requests_total` and `http_request_duration_seconds`, by method, route and status.
    fn record(&self, status: u16, elapsed: std::time::Duration) {
        let labels =
            [("method", self.method.to_owned()), ("route", self.route.clone()), ("status", status.to_string())];
        metrics::counter!("http_requests_total", &labels).increment(1);
        metrics::histogram!("http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
    }
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

/// Which `X-Forwarded-For` to believe. A proxy appends the address it received the request from, so everything left of
/// what the trusted proxies appended was written by the client and proves nothing: the client address is the entry
/// `hops` places from the right (the address the outermost trusted proxy saw), and only on connections that come from
/// a trusted proxy when a list of them is configured.
#[derive(Debug, Clone, Default)]
pub struct ProxyTrust {
    enabled: bool,
    proxies: Vec<ipnetwork::IpNetwork>,
    hops: usize,
}

impl ProxyTrust {
    /// From `APP_TRUST_FORWARDED_FOR`, `APP_TRUSTED_PROXIES` (addresses or CIDR ranges, comma-separated; setting it
    /// turns trust on) and `APP_TRUSTED_PROXY_HOPS` (at least 1).
    pub fn from_settings(trust_forwarded_for: bool, proxies: &str, hops: usize) -> anyhow::Result<Self> {
        let proxies = proxies
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse().map_err(|_| anyhow::anyhow!("APP_TRUSTED_PROXIES: {p:?} is not an address or CIDR range"))
            })
            .collect::<anyhow::Result<Vec<ipnetwork::IpNetwork>>>()?;
        if hops == 0 {
            anyhow::bail!("APP_TRUSTED_PROXY_HOPS must be at least 1");
        }
        Ok(Self { enabled: trust_forwarded_for || !proxies.is_empty(), proxies, hops })
    }

    /// The client address of a request from `peer` carrying these `X-Forwarded-For` header values (in order).
    pub fn client_address<'a>(
        &self,
        peer: Option<IpAddr>,
        forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> Option<IpAddr> {
        if !self.enabled {
            return peer;
        }
        if !self.proxies.is_empty() && !peer.is_some_and(|p| self.proxies.iter().any(|net| net.contains(p))) {
            return peer;
        }
        let entries: Vec<&str> =
            forwarded_for.into_iter().flat_map(|v| v.split(',')).map(str::trim).filter(|e| !e.is_empty()).collect();
        let Some(entry) = entries.get(entries.len().saturating_sub(self.hops)) else {
            return peer;
        };
        entry.parse::<IpAddr>().ok().or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|a| a.ip())).or(peer)
    }
}

/// Where a request came from, for the audit log and the throttles: the client address (the peer, or what the trusted
/// proxies say, see [`ProxyTrust`]), the user agent and the request id.
#[derive(Debug, Clone)]
pub struct ClientOrigin(pub entity::audit::Origin);

impl actix_web::FromRequest for ClientOrigin {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(Ok(Self::of(req)))
    }
}

impl ClientOrigin {
    /// The origin of `req`.
    pub fn of(req: &actix_web::HttpRequest) -> Self {
        let peer = req.peer_addr().map(|a| a.ip());
        let forwarded = req.headers().get_all("x-forwarded-for").filter_map(|v| v.to_str().ok());
        let ip_address = match req.app_data::<actix_web::web::Data<crate::state::AppState>>() {
            Some(state) => state.proxy_trust.client_address(peer, forwarded),
            None => peer,
        };
        let user_agent = req
            .headers()
            .get(actix_web::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| entity::audit::truncate(ua, 1024).to_owned());
        let request_id = req.extensions().get::<RequestId>().map(|id| id.to_string());
        Self(entity::audit::Origin { ip_address, user_agent, request_id })
    }
}

#[cfg(test)]
mod proxy_tests {
    use super::ProxyTrust;
    use std::net::IpAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn without_trust_the_peer_is_the_client_whatever_the_header_says() {
        let trust = ProxyTrust::from_settings(false, "", 1).unwrap();
        assert_eq!(trust.client_address(Some(ip("10.0.0.1")), ["198.51.100.7"]), Some(ip("10.0.0.1")));
    }

    #[test]
    fn the_right_most_entry_is_what_a_single_proxy_saw_and_the_left_is_ignored() {
        let trust = ProxyTrust::from_settings(true, "", 1).unwrap();
        let peer = Some(ip("10.0.0.1"));
        assert_eq!(trust.client_address(peer, ["198.51.100.7, 203.0.113.9"]), Some(ip("203.0.113.9")));
        // Several header lines are one list, in order.
        assert_eq!(trust.client_address(peer, ["198.51.100.7", "203.0.113.9"]), Some(ip("203.0.113.9")));
        assert_eq!(trust.client_address(peer, ["203.0.113.9:4711"]), Some(ip("203.0.113.9")));
        assert_eq!(trust.client_address(peer, ["[2001:db8::1]:443"]), Some(ip("2001:db8::1")));
        assert_eq!(trust.client_address(peer, ["garbage"]), peer, "an unreadable entry falls back to the peer");
        assert_eq!(trust.client_address(peer, Vec::<&str>::new()), peer);
    }

    #[test]
    fn with_two_hops_the_second_entry_from_the_right_is_the_client() {
        let trust = ProxyTrust::from_settings(true, "", 2).unwrap();
        let peer = Some(ip("10.0.0.1"));
        assert_eq!(trust.client_address(peer, ["1.1.1.1, 198.51.100.7, 10.0.0.2"]), Some(ip("198.51.100.7")));
        assert_eq!(trust.client_address(peer, ["198.51.100.7"]), Some(ip("198.51.100.7")));
    }

    #[test]
    fn a_proxy_list_limits_trust_to_connections_from_those_proxies() {
        let trust = ProxyTrust::from_settings(false, "10.0.0.0/8, 192.0.2.1", 1).unwrap();
        assert_eq!(trust.client_address(Some(ip("10.1.2.3")), ["203.0.113.9"]), Some(ip("203.0.113.9")));
        assert_eq!(trust.client_address(Some(ip("192.0.2.1")), ["203.0.113.9"]), Some(ip("203.0.113.9")));
        assert_eq!(trust.client_address(Some(ip("198.51.100.1")), ["203.0.113.9"]), Some(ip("198.51.100.1")));
        assert!(ProxyTrust::from_settings(false, "not-an-ip", 1).is_err());
        assert!(ProxyTrust::from_settings(true, "", 0).is_err());
    }
}
