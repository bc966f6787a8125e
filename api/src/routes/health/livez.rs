//! `GET /livez`: answers as long as the process can serve HTTP. Touches nothing else, so a database outage never makes
//! an orchestrator restart a healthy API.

use actix_web::{HttpResponse, get};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct Liveness {
    /// Always `ok`.
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness probe.
#[utoipa::path(
    tag = "health",
    responses((status = 200, description = "The process is alive", body = Liveness)),
)]
#[get("/livez")]
pub async fn livez() -> HttpResponse {
    HttpResponse::Ok().json(Liveness { status: "ok" })
}
