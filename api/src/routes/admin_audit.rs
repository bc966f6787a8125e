//! The platform admins' audit review: `GET /v1/admin/audit-logs` (every tenant's events, the platform's own and
//! deleted tenants' included, with the tenants' filters plus `tenant_id`) and `GET /v1/admin/audit-logs/{id}`.
//!
//! Reading across tenants is granted by the database, not by leaving out a filter: the transaction switches to the
//! reader role (`entity::PlatformAuditTxn`), which may read `audit_logs` and nothing else, in the statement that also
//! checks that the caller is still an enabled platform admin. Anyone else gets 403; API keys, which belong to a
//! tenant, too.

use actix_web::{HttpRequest, HttpResponse, get, web};
use anyhow::Context;
use entity::audit::query::{self, AuditPosition};
use entity::audit::{self, Actor, AuditAction, Event};
use entity::{PLATFORM_TENANT, PlatformAuditTxn, TenantTxn};
use serde::Deserialize;

use super::audit_logs::export::{self, ExportFormat};
use super::audit_logs::list::{AuditLogFilters, AuditPaging, PARAMS, bad, filter, limit, page_response};
use super::audit_logs::{AuditEventView, AuditPageView, ChainVerificationView};
use crate::auth::principal::Principal;
use crate::error::{ApiError, ErrorCode, ProblemDetails};
use crate::pagination::CursorScope;
use crate::request_context::ClientOrigin;
use crate::routes::mirror::query_string::QueryString;
use crate::state::AppState;

/// Registers the handlers under `/v1/admin` (see `routes::configure`).
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    // `/verify` and `/export` before `/{audit_log_id}`.
    cfg.service(list_platform_audit_logs)
        .service(verify_platform_audit_chain)
        .service(export_platform_audit_logs)
        .service(get_platform_audit_log);
}

/// The platform review's extra filter (documentation; the handler reads it strictly).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PlatformFilter {
    /// Only these tenants' events (the platform's own: the nil UUID).
    #[param(explode = true, style = Form)]
    pub tenant_id: Option<Vec<uuid::Uuid>>,
}

fn not_a_platform_admin() -> ApiError {
    ApiError::new(ErrorCode::Forbidden, "Only platform admins may review the whole platform's audit log.")
}

/// Opens the reader's transaction for `principal`, if they are a platform admin.
pub(crate) async fn reader(state: &AppState, principal: &Principal) -> Result<PlatformAuditTxn, ApiError> {
    let user = principal.user()?;
    if !user.user.is_platform_admin {
        return Err(not_a_platform_admin());
    }
    PlatformAuditTxn::begin(&state.db, user.user.id)
        .await
        .context("Failed to begin the review transaction")?
        .ok_or_else(not_a_platform_admin)
}

/// Every tenant's audit log, filtered, newest first, in pages (platform admins).
#[utoipa::path(
    tag = "audit",
    params(AuditLogFilters, AuditPaging, PlatformFilter),
    responses(
        (status = 200, body = AuditPageView),
        (status = 400, description = "A parameter is unknown, malformed or out of range; the detail names it", body = ProblemDetails),
        (status = 403, description = "Not a platform admin (or an API key)", body = ProblemDetails),
    ),
)]
#[get("/audit-logs")]
pub async fn list_platform_audit_logs(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let mut known = PARAMS.to_vec();
    known.push("tenant_id");
    let params = QueryString::parse(req.query_string(), &known)?;
    let mut filter = filter(&params)?;
    filter.tenants = params.uuids("tenant_id")?;
    let limit = limit(&params)?;
    let scope = CursorScope::new(entity::PLATFORM_TENANT, "platform-audit-logs", "-created_at", &filter)?;
    let after: Option<AuditPosition> = params.one("cursor")?.map(|c| state.cursors.open(c, &scope)).transpose()?;
    let txn = reader(&state, &principal).await?;
    let page = query::list_platform(&txn, &filter, after, limit).await.context("Failed to read the audit log")?;
    txn.commit().await.context("Failed to end the review transaction")?;
    page_response(&state, page, scope)
}

/// Every tenant's audit log (or the chosen tenants') as a file, streamed like a tenant's export (platform admins).
/// The export is recorded in the platform's own log.
#[utoipa::path(
    tag = "audit",
    params(AuditLogFilters, PlatformFilter, ExportFormat),
    responses(
        (status = 200, description = "The events, streamed", content(
            (String = "text/csv; charset=utf-8"),
            (String = "application/x-ndjson"),
        )),
        (status = 400, description = "A parameter is unknown, malformed or out of range; the detail names it", body = ProblemDetails),
        (status = 403, description = "Not a platform admin (or an API key)", body = ProblemDetails),
    ),
)]
#[get("/audit-logs/export")]
pub async fn export_platform_audit_logs(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    origin: ClientOrigin,
) -> Result<HttpResponse, ApiError> {
    let mut known = export::PARAMS.to_vec();
    known.push("tenant_id");
    let params = QueryString::parse(req.query_string(), &known)?;
    let format = export::format(&params)?;
    let mut filter = filter(&params)?;
    filter.tenants = params.uuids("tenant_id")?;
    let txn = reader(&state, &principal).await?;
    let first =
        query::list_platform(&txn, &filter, None, export::BATCH).await.context("Failed to read the audit log")?;
    txn.commit().await.context("Failed to end the review transaction")?;
    let admin = principal.user()?.user.id;
    let record = TenantTxn::begin(&state.db, PLATFORM_TENANT).await.context("Failed to begin the transaction")?;
    let event = Event::new(AuditAction::AuditLogExport, Actor::user(admin))
        .on(PLATFORM_TENANT)
        .metadata(export::export_metadata(format, &filter));
    audit::record(&record, event, &origin.0).await.context("Failed to write the audit entry")?;
    record.commit().await.context("Failed to commit")?;
    Ok(export::streamed(state, export::Source::Platform { principal }, filter, format, first, "platform"))
}

/// `/v1/admin/audit-logs/{audit_log_id}`.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct PlatformAuditLogPath {
    pub audit_log_id: uuid::Uuid,
}

/// One event of any tenant's audit log (platform admins).
#[utoipa::path(
    tag = "audit",
    params(PlatformAuditLogPath),
    responses(
        (status = 200, body = AuditEventView),
        (status = 403, description = "Not a platform admin (or an API key)", body = ProblemDetails),
        (status = 404, body = ProblemDetails),
    ),
)]
#[get("/audit-logs/{audit_log_id}")]
pub async fn get_platform_audit_log(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<PlatformAuditLogPath>,
) -> Result<HttpResponse, ApiError> {
    let txn = reader(&state, &principal).await?;
    let event = query::get_platform(&txn, path.audit_log_id)
        .await
        .context("Failed to read the audit event")?
        .ok_or_else(|| ApiError::not_found("Audit event"))?;
    txn.commit().await.context("Failed to end the review transaction")?;
    Ok(HttpResponse::Ok().json(AuditEventView::from(event)))
}

/// The tenant whose chain to verify.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VerifyTenant {
    /// Any tenant, deleted ones and the platform's own (the nil UUID) included.
    pub tenant_id: uuid::Uuid,
}

/// Verifies any tenant's audit chain (platform admins).
#[utoipa::path(
    tag = "audit",
    params(VerifyTenant),
    responses(
        (status = 200, body = ChainVerificationView),
        (status = 400, description = "tenant_id is missing or not a UUID", body = ProblemDetails),
        (status = 403, description = "Not a platform admin (or an API key)", body = ProblemDetails),
    ),
)]
#[get("/audit-logs/verify")]
pub async fn verify_platform_audit_chain(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let params = QueryString::parse(req.query_string(), &["tenant_id"])?;
    let tenant = params
        .one("tenant_id")?
        .ok_or_else(|| bad("tenant_id is required.".to_owned()))
        .and_then(|v| uuid::Uuid::parse_str(v).map_err(|_| bad("tenant_id must be a UUID.".to_owned())))?;
    let txn = reader(&state, &principal).await?;
    let verdict = entity::audit::chain::verify_platform(&txn, entity::TenantId(tenant))
        .await
        .context("Failed to verify the audit chain")?;
    txn.commit().await.context("Failed to end the review transaction")?;
    Ok(HttpResponse::Ok().json(ChainVerificationView::from(verdict)))
}
