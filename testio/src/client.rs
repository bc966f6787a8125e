//! The HTTP client of the TestIO Customer API v2: `Token` auth, root-key envelopes, and the pacing every call goes
//! through: a process-wide limit on concurrent requests, a timeout per request, exponential backoff with full jitter on
//! transient failures (transport errors, timeouts, 502/503/504, unreadable bodies), and `Retry-After` on 429.
//!
//! Some failures are returned at once because the caller has a better move than waiting: a 500 on a test list page
//! (reproducible at the same offsets: the caller shrinks the page), a 524 on a bug batch (the caller splits it), 401
//! (the token is dead), 404/403 (unknown or foreign id). The token never appears in logs or errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rand::RngExt;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use url::Url;

/// The real API; connections default to it.
pub const DEFAULT_BASE_URL: &str = "https://api.test.io/customer/v2/";

/// Pacing and limits of the client.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub request_timeout: Duration,
    /// Attempts per request for transient failures (429 included), the first one counted.
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// A `Retry-After` longer than this is not waited for: the request fails and is retried by a later run.
    pub max_retry_after: Duration,
    pub max_response_bytes: usize,
    /// Concurrent requests of this process, all tenants together.
    pub max_concurrent_requests: usize,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            max_attempts: 4,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(120),
            max_response_bytes: 64 * 1024 * 1024,
            max_concurrent_requests: 8,
        }
    }
}

/// Where and as whom to call.
#[derive(Clone)]
pub struct Endpoint {
    pub base_url: Url,
    pub token: SecretString,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("base_url", &self.base_url.as_str()).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum FetchError {
    #[error("TestIO refused the token (401)")]
    Unauthorized,
    #[error("TestIO answered {0} (unknown or foreign id)")]
    NotFound(u16),
    #[error("TestIO answered {0}")]
    Status(u16),
    #[error("TestIO sent an unreadable response: {0}")]
    Malformed(String),
    #[error("TestIO sent more than {0} bytes")]
    TooLarge(usize),
    #[error("TestIO asked to wait {0} s (Retry-After), longer than allowed")]
    RetryAfterTooLong(u64),
    #[error("TestIO could not be reached: {0}")]
    Transport(String),
    #[error("the worker is shutting down")]
    Cancelled,
}

impl FetchError {
    /// A 500 or an unreadable body on a list page: worth shrinking the page (TestIO fails at fixed offsets). An
    /// outage (timeouts, 502-504 after the retries) is not: it ends the run instead of splitting every page.
    pub fn is_page_failure(&self) -> bool {
        matches!(self, Self::Status(500) | Self::Malformed(_) | Self::TooLarge(_))
    }
}

/// Statuses returned to the caller at once: retrying the same request would fail the same way.
/// `testio_requests_total` and `testio_request_duration_seconds` by status (the HTTP status, or `transport_error`).
fn record_request(status: &str, started: std::time::Instant) {
    metrics::counter!("testio_requests_total", "status" => status.to_owned()).increment(1);
    metrics::histogram!("testio_request_duration_seconds", "status" => status.to_owned())
        .record(started.elapsed().as_secs_f64());
}

fn is_final_for_caller(status: StatusCode) -> bool {
    matches!(status.as_u16(), 500 | 524) || status.is_client_error()
}

#[derive(Clone)]
pub struct TestioClient {
    http: reqwest::Client,
    settings: Arc<ClientSettings>,
    permits: Arc<Semaphore>,
    shutdown: CancellationToken,
}

impl TestioClient {
    pub fn new(settings: ClientSettings, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .connect_timeout(settings.request_timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("testio-hub/", env!("CARGO_PKG_VERSION")))
            // A redirect could lead the token to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| anyhow::anyhow!("Failed to build the TestIO HTTP client: {e}"))?;
        let permits = Arc::new(Semaphore::new(settings.max_concurrent_requests.max(1)));
        Ok(Self { http, settings: Arc::new(settings), permits, shutdown })
    }

    /// `GET base_url + path?query`, paced and retried as the module explains; the parsed JSON body.
    pub async fn get(&self, endpoint: &Endpoint, path: &str, query: &[(&str, String)]) -> Result<Value, FetchError> {
        self.get_counted(endpoint, path, query, &AtomicU32::new(0)).await
    }

    /// [`TestioClient::get`], adding every HTTP request it makes (retries included) to `requests`.
    #[tracing::instrument(skip_all, fields(path = %path))]
    pub async fn get_counted(
        &self,
        endpoint: &Endpoint,
        path: &str,
        query: &[(&str, String)],
        requests: &AtomicU32,
    ) -> Result<Value, FetchError> {
        let mut url = endpoint.base_url.join(path).map_err(|e| FetchError::Transport(format!("bad URL: {e}")))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= self.settings.max_attempts;
            requests.fetch_add(1, Ordering::Relaxed);
            let wait = match self.once(endpoint, &url).await {
                Ok(value) => return Ok(value),
                Err(Failure::Final(e)) => return Err(e),
                Err(Failure::Retry(e, _)) if last => return Err(e),
                Err(Failure::Retry(e, after)) => {
                    tracing::debug!(attempt, error = %e, "retrying a TestIO request");
                    after.unwrap_or_else(|| self.backoff(attempt))
                }
            };
            tokio::select! {
                _ = self.shutdown.cancelled() => return Err(FetchError::Cancelled),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Whether TestIO accepts the token: one `GET /products`, as when a connection is saved.
    pub async fn verify_token(&self, endpoint: &Endpoint) -> Result<(), FetchError> {
        self.get(endpoint, "products", &[]).await.and_then(|b| envelope_list(b, "products")).map(|_| ())
    }

    fn backoff(&self, attempt: u32) -> Duration {
        full_jitter(backoff_cap(self.settings.backoff_base, self.settings.backoff_max, attempt))
    }

    async fn once(&self, endpoint: &Endpoint, url: &Url) -> Result<Value, Failure> {
        let _permit = tokio::select! {
            _ = self.shutdown.cancelled() => return Err(Failure::Final(FetchError::Cancelled)),
            permit = self.permits.acquire() => permit.map_err(|_| Failure::Final(FetchError::Cancelled))?,
        };
        let request = self
            .http
            .get(url.clone())
            .header("Authorization", format!("Token {}", endpoint.token.expose_secret()))
            .header("Accept", "application/json");
        let started = std::time::Instant::now();
        let response = tokio::select! {
            _ = self.shutdown.cancelled() => return Err(Failure::Final(FetchError::Cancelled)),
            r = request.send() => r.map_err(|e| {
                record_request("transport_error", started);
                Failure::Retry(FetchError::Transport(transport_reason(&e)), None)
            })?,
        };
        let status = response.status();
        record_request(status.as_str(), started);
        if status == StatusCode::UNAUTHORIZED {
            return Err(Failure::Final(FetchError::Unauthorized));
        }
        if status == StatusCode::NOT_FOUND || status == StatusCode::FORBIDDEN {
            return Err(Failure::Final(FetchError::NotFound(status.as_u16())));
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            let after = retry_after(response.headers());
            return match after {
                Some(after) if after > self.settings.max_retry_after => {
                    Err(Failure::Final(FetchError::RetryAfterTooLong(after.as_secs())))
                }
                after => Err(Failure::Retry(FetchError::Status(429), after)),
            };
        }
        if !status.is_success() {
            let error = FetchError::Status(status.as_u16());
            return Err(if is_final_for_caller(status) { Failure::Final(error) } else { Failure::Retry(error, None) });
        }
        let body = self.read_limited(response).await?;
        serde_json::from_slice(&body).map_err(|e| Failure::Retry(FetchError::Malformed(e.to_string()), None))
    }

    async fn read_limited(&self, mut response: reqwest::Response) -> Result<Vec<u8>, Failure> {
        let limit = self.settings.max_response_bytes;
        if response.content_length().is_some_and(|n| n as usize > limit) {
            return Err(Failure::Final(FetchError::TooLarge(limit)));
        }
        let mut body = Vec::new();
        loop {
            let chunk = tokio::select! {
                _ = self.shutdown.cancelled() => return Err(Failure::Final(FetchError::Cancelled)),
                c = response.chunk() => c.map_err(|e| Failure::Retry(FetchError::Transport(transport_reason(&e)), None))?,
            };
            let Some(chunk) = chunk else { return Ok(body) };
            if body.len() + chunk.len() > limit {
                return Err(Failure::Final(FetchError::TooLarge(limit)));
            }
            body.extend_from_slice(&chunk);
        }
    }
}

/// The longest wait after failed attempt number `attempt` (from 1): `base * 2^(attempt-1)`, at most `max`.
fn backoff_cap(base: Duration, max: Duration, attempt: u32) -> Duration {
    base.saturating_mul(1 << (attempt.clamp(1, 16) - 1)).min(max)
}

/// Full jitter: a wait drawn uniformly from `0..=cap`. Clients that failed together (a TestIO outage hits every
/// tenant at once) then come back spread over the whole window rather than in a burst at its end.
fn full_jitter(cap: Duration) -> Duration {
    let cap = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::rng().random_range(0..=cap))
}

enum Failure {
    Final(FetchError),
    Retry(FetchError, Option<Duration>),
}

/// A reqwest error without its URL (which is harmless, but keeps errors short) and never with headers.
fn transport_reason(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "response body interrupted"
    } else {
        "request failed"
    };
    kind.to_owned()
}

/// `Retry-After` as seconds or as an HTTP date.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.signed_duration_since(chrono::Utc::now()).num_milliseconds().max(0);
    Some(Duration::from_millis(wait as u64))
}

/// The array under `key` of an envelope like `{"exploratory_tests": [...]}`.
pub fn envelope_list(body: Value, key: &str) -> Result<Vec<Value>, FetchError> {
    match body {
        Value::Object(mut map) => match map.remove(key) {
            Some(Value::Array(items)) => Ok(items),
            Some(_) => Err(FetchError::Malformed(format!("\"{key}\" is not a list"))),
            None => Err(FetchError::Malformed(format!("no \"{key}\" in the response"))),
        },
        _ => Err(FetchError::Malformed("the response is not a JSON object".to_owned())),
    }
}

/// The object under `key` of an envelope like `{"exploratory_test": {...}}`.
pub fn envelope_item(body: Value, key: &str) -> Result<Value, FetchError> {
    match body {
        Value::Object(mut map) => map.remove(key).ok_or_else(|| FetchError::Malformed(format!("no \"{key}\""))),
        _ => Err(FetchError::Malformed("the response is not a JSON object".to_owned())),
    }
}

/// A connection base URL as stored: parsed, http(s), ending in `/` so that relative paths join under it.
pub fn normalize_base_url(raw: &str) -> Result<Url, String> {
    let mut raw = raw.trim().to_owned();
    if !raw.ends_with('/') {
        raw.push('/');
    }
    let url = Url::parse(&raw).map_err(|_| "is not a valid URL".to_owned())?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err("must be an http or https URL".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() || url.query().is_some() || url.fragment().is_some() {
        return Err("must not carry credentials, a query or a fragment".to_owned());
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822().replace("+0000", "GMT");
        headers.insert("retry-after", soon.parse().unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(wait > Duration::from_secs(25) && wait <= Duration::from_secs(30), "{wait:?}");
        headers.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn base_urls_are_normalised_and_unsafe_ones_refused() {
        assert_eq!(normalize_base_url("https://api.test.io/customer/v2").unwrap().as_str(), DEFAULT_BASE_URL);
        for bad in ["ftp://x/", "not a url", "https://user:pw@x/", "https://x/?a=1"] {
            assert!(normalize_base_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn backoff_doubles_per_attempt_up_to_the_maximum() {
        let (base, max) = (Duration::from_millis(200), Duration::from_secs(10));
        let caps: Vec<u128> = (1..=8).map(|a| backoff_cap(base, max, a).as_millis()).collect();
        assert_eq!(caps, [200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]);
        assert_eq!(backoff_cap(base, max, u32::MAX), max);
    }

    #[test]
    fn jittered_waits_spread_over_the_whole_window() {
        let cap = Duration::from_millis(1000);
        let waits: Vec<Duration> = (0..1000).map(|_| full_jitter(cap)).collect();
        assert!(waits.iter().all(|w| *w <= cap), "a wait above the cap");
        let below_half = waits.iter().filter(|w| **w < cap / 2).count();
        // Uniform over 0..=cap: about 500 of 1000 below the middle; equal jitter (cap/2..=cap) would give none.
        assert!((350..=650).contains(&below_half), "{below_half} of 1000 below cap/2");
        assert!(waits.iter().any(|w| *w < cap / 10), "nothing near zero");
        assert_eq!(full_jitter(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn envelopes_must_hold_their_key() {
        let body = serde_json::json!({"bugs": [1, 2]});
        assert_eq!(envelope_list(body.clone(), "bugs").unwrap().len(), 2);
        assert!(envelope_list(body, "products").is_err());
        assert!(envelope_list(serde_json::json!([1]), "bugs").is_err());
    }
}
