//! `GET /metrics`: the Prometheus text of this process (see [`common::metrics`]): requests by route and status, their
//! latency, the database pool, Stripe webhooks, idempotent replays. Not part of the OpenAPI document: it is for the
//! operators' scraper, not for clients. With `METRICS_TOKEN` set, the scraper must send it as a bearer token.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// `GET /metrics`.
pub async fn scrape(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    if let Some(token) = &state.settings.metrics_token {
        let sent = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !bool::from(sent.as_bytes().ct_eq(token.expose_secret().as_bytes())) {
            return Err(ApiError::new(ErrorCode::Unauthenticated, "The metrics token is missing or wrong.")
                .with_header(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer realm=\"metrics\"")));
        }
    }
    common::metrics::pool_gauges(&state.db);
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(common::metrics::render()))
}
