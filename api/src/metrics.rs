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
    pool_gauges(&state.db);
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(common::metrics::render()))
}

/// `db_pool_connections{state="in_use"|"idle"}` and `db_pool_max_connections`, as the pool is now.
fn pool_gauges(db: &sea_orm::DatabaseConnection) {
    if db.get_database_backend() != sea_orm::DbBackend::Postgres {
        return;
    }
    let pool = db.get_postgres_connection_pool();
    let (size, idle) = (pool.size(), u32::try_from(pool.num_idle()).unwrap_or(u32::MAX));
    metrics::gauge!("db_pool_connections", "state" => "in_use").set(f64::from(size.saturating_sub(idle)));
    metrics::gauge!("db_pool_connections", "state" => "idle").set(f64::from(idle));
    metrics::gauge!("db_pool_max_connections").set(f64::from(pool.options().get_max_connections()));
}
