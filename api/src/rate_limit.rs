//! Request rate limits, per client address and per tenant, shared by every API replica: each request takes one token
//! from its buckets in Postgres ([`entity::rate_limits`], a generic cell rate algorithm), in one statement before it
//! is served, and is answered 429 with `Retry-After` when a bucket is empty. Every limited answer carries the
//! `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` and `RateLimit-Policy` headers (IETF httpapi draft) of
//! its tightest bucket.
//!
//! - `ip:<address>` (the client address as the trusted proxies tell it): every request but the probes, `/metrics`,
//!   the docs, the viewer's files and the Stripe webhook.
//! - `tenant:<id>`: requests with a credential on a tenant's routes (`/v1/tenants/{id}/...`), all callers of the
//!   tenant together. Taken before the credential is checked (so that the check itself is protected): a caller who
//!   knows a tenant's id can spend some of its budget, never more than their own address's.
//!
//! Costs one round trip per request (none with both limits off). When the database cannot be reached the request is
//! let through (it then meets the outage itself and is answered 503).

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, ResponseError, web};
use entity::rate_limits::{Bucket, Decision};

use crate::error::{ApiError, ErrorCode};
use crate::request_context::ClientOrigin;
use crate::state::AppState;

/// The limits, from the settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct RateLimits {
    pub per_ip: Option<Rate>,
    pub per_tenant: Option<Rate>,
}

/// A refill rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_minute: u32,
    pub burst: u32,
}

impl Rate {
    /// `None` when `per_minute` is 0 (off); the burst is at least 1.
    pub fn new(per_minute: u32, burst: u32) -> Option<Self> {
        (per_minute > 0).then_some(Self { per_minute, burst: burst.max(1) })
    }

    fn bucket(self, key: String) -> Bucket {
        Bucket { key, per_minute: self.per_minute, burst: self.burst }
    }

    /// The window in which the whole burst refills, in seconds.
    fn window_secs(self) -> u64 {
        (u64::from(self.burst) * 60).div_ceil(u64::from(self.per_minute))
    }
}

const EXEMPT: [&str; 7] = ["/livez", "/readyz", "/metrics", "/docs", "/openapi.json", "/admin/audit", "/v1/webhooks/"];

/// The tenant of a tenant route, if the path is one.
fn tenant_of(path: &str) -> Option<uuid::Uuid> {
    let rest = path.strip_prefix("/v1/tenants/")?;
    rest.split('/').next()?.parse().ok()
}

/// See the module documentation.
pub async fn rate_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody + 'static, BoxBody>>, Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next.call(req).await.map(ServiceResponse::map_into_left_body);
    };
    let limits = state.rate_limits;
    let path = req.path();
    if EXEMPT.iter().any(|p| path.starts_with(p)) || (limits.per_ip.is_none() && limits.per_tenant.is_none()) {
        return next.call(req).await.map(ServiceResponse::map_into_left_body);
    }
    let mut buckets: Vec<(Rate, Bucket)> = Vec::with_capacity(2);
    if let Some(rate) = limits.per_ip {
        let address = ClientOrigin::of(req.request()).0.ip_address.map(|ip| ip.to_string()).unwrap_or_default();
        buckets.push((rate, rate.bucket(format!("ip:{address}"))));
    }
    if let (Some(rate), Some(tenant)) = (limits.per_tenant, tenant_of(path))
        && req.headers().contains_key(header::AUTHORIZATION)
    {
        buckets.push((rate, rate.bucket(format!("tenant:{tenant}"))));
    }
    if buckets.is_empty() {
        return next.call(req).await.map(ServiceResponse::map_into_left_body);
    }
    let taken: Vec<Bucket> = buckets.iter().map(|(_, b)| b.clone()).collect();
    let decisions = match entity::rate_limits::take_all(&state.db, &taken).await {
        Ok(decisions) => decisions,
        Err(e) => {
            tracing::warn!(error = %e, "the rate limits could not be read; letting the request through");
            return next.call(req).await.map(ServiceResponse::map_into_left_body);
        }
    };
    // The tightest bucket speaks for the request: a refused one, else the one with the fewest requests left.
    let Some((rate, decision)) =
        buckets.iter().map(|(rate, _)| *rate).zip(decisions).min_by_key(|(_, d)| (d.allowed, d.remaining))
    else {
        return next.call(req).await.map(ServiceResponse::map_into_left_body);
    };
    if !decision.allowed {
        let secs = u64::try_from(decision.retry_after_ms).unwrap_or(1).div_ceil(1000).max(1);
        let error = ApiError::new(ErrorCode::RateLimited, format!("Too many requests; retry in {secs} seconds."))
            .with_header(header::RETRY_AFTER, HeaderValue::from(secs));
        let mut response = error.error_response();
        describe(response.headers_mut(), rate, decision);
        return Ok(req.into_response(response).map_into_right_body());
    }
    let mut response = next.call(req).await?;
    describe(response.headers_mut(), rate, decision);
    Ok(response.map_into_left_body())
}

/// The `RateLimit-*` headers of `decision` on a bucket of `rate`.
fn describe(headers: &mut HeaderMap, rate: Rate, decision: Decision) {
    let reset = u64::try_from(decision.reset_ms).unwrap_or(0).div_ceil(1000);
    let remaining = u64::try_from(decision.remaining).unwrap_or(0);
    headers.insert(HeaderName::from_static("ratelimit-limit"), HeaderValue::from(rate.burst));
    headers.insert(HeaderName::from_static("ratelimit-remaining"), HeaderValue::from(remaining));
    headers.insert(HeaderName::from_static("ratelimit-reset"), HeaderValue::from(reset));
    if let Ok(policy) = HeaderValue::from_str(&format!("{};w={}", rate.burst, rate.window_secs())) {
        headers.insert(HeaderName::from_static("ratelimit-policy"), policy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_routes_are_told_by_their_path() {
        let id = uuid::Uuid::now_v7();
        assert_eq!(tenant_of(&format!("/v1/tenants/{id}/api-keys")), Some(id));
        assert_eq!(tenant_of(&format!("/v1/tenants/{id}")), Some(id));
        assert_eq!(tenant_of("/v1/tenants"), None);
        assert_eq!(tenant_of("/v1/tenants/not-a-uuid/x"), None);
        assert_eq!(Rate::new(0, 10), None);
        assert_eq!(Rate::new(60, 0).map(Rate::window_secs), Some(1));
        assert_eq!(Rate::new(600, 100).map(Rate::window_secs), Some(10));
    }
}
