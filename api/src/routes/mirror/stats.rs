//! `GET /v1/tenants/{tenant_id}/stats`.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, get, web};
use anyhow::Context;
use entity::TenantId;
use entity::mirror::query::{self, SyncState};
use serde::Serialize;

use super::query_string::QueryString;
use super::read_access;
use super::views::{Freshness, ProductStats, StaleReason, StatsView, Summary};
use crate::auth::principal::Caller;
use crate::error::{ApiError, ProblemDetails};
use crate::routes::params::TenantPath;
use crate::state::AppState;

/// How late a scheduled sync may be before the mirror counts as stale.
const OVERDUE_AFTER: chrono::Duration = chrono::Duration::minutes(15);

/// Tests and bugs counted overall and per product, and how fresh the mirror is (every member).
#[utoipa::path(
    tag = "mirror",
    params(TenantPath),
    responses((status = 200, body = StatsView), (status = 400, body = ProblemDetails), (status = 404, body = ProblemDetails)),
)]
#[get("/stats")]
pub async fn get_stats(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<TenantPath>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    QueryString::parse(req.query_string(), &[])?;
    let access = read_access(&state, &caller, TenantId(path.tenant_id)).await?;
    let (sync, counted) =
        state.stats.read(&access.txn, CountedStats::of).await.context("Failed to read the statistics")?;
    access.commit().await?;
    let body = StatsBody { overall: &counted.overall, products: &counted.products, sync: freshness(&sync) };
    Ok(HttpResponse::Ok().json(body))
}

/// The counted part of [`StatsView`], as the API caches it (see [`query::StatsCache`]).
pub struct CountedStats {
    overall: Summary,
    products: Vec<ProductStats>,
}

impl CountedStats {
    fn of(counted: query::Counted) -> Self {
        let mut by_product: HashMap<i64, Vec<&query::Counter>> = HashMap::new();
        for c in &counted.counters {
            by_product.entry(c.product_id).or_default().push(c);
        }
        let products = counted
            .products
            .into_iter()
            .map(|(id, name)| ProductStats {
                product_id: id,
                name,
                summary: Summary::of(by_product.get(&id).into_iter().flatten().copied()),
            })
            .collect();
        Self { overall: Summary::of(&counted.counters), products }
    }
}

/// [`StatsView`], serialized from the cached parts.
#[derive(Serialize)]
struct StatsBody<'a> {
    overall: &'a Summary,
    products: &'a [ProductStats],
    sync: Freshness,
}

fn freshness(sync: &SyncState) -> Freshness {
    let mut reasons = Vec::new();
    match sync.connection_status.as_deref() {
        None => reasons.push(StaleReason::NoConnection),
        Some("needs_token") => reasons.push(StaleReason::NeedsToken),
        Some(_) => {}
    }
    if sync.last_success_at.is_none() {
        reasons.push(StaleReason::NeverSynced);
    }
    if !sync.running && sync.sync_due_at.is_some_and(|due| due + OVERDUE_AFTER < sync.now) {
        reasons.push(StaleReason::SyncOverdue);
    }
    if matches!(sync.last_run_status.as_deref(), Some("failed" | "interrupted")) {
        reasons.push(StaleReason::LastSyncFailed);
    }
    if sync.open_gaps > 0 {
        reasons.push(StaleReason::OpenGaps);
    }
    Freshness {
        connected: sync.connection_status.is_some(),
        connection_status: sync.connection_status.clone(),
        last_successful_sync_at: sync.last_success_at,
        last_sync_status: sync.last_run_status.clone(),
        last_sync_finished_at: sync.last_run_finished_at,
        verified_through: sync.verified_through,
        next_sync_due_at: sync.sync_due_at,
        open_gaps: u64::try_from(sync.open_gaps).unwrap_or_default(),
        stale: !reasons.is_empty(),
        stale_reasons: reasons,
    }
}
