//! `GET /v1/tenants/{tenant_id}/audit-logs` and `GET .../audit-logs/{audit_log_id}`.

use actix_web::{HttpRequest, HttpResponse, get, web};
use anyhow::Context;
use entity::TenantId;
use entity::audit::AuditAction;
use entity::audit::query::{self, AuditFilter, AuditPage, AuditPosition};
use entity::audit_logs::{ActorType, Outcome};
use sea_orm::{ActiveEnum, Iterable};
use serde::Deserialize;

use super::view::{AuditEventView, AuditPageView, target_type_schema};
use crate::auth::permissions::Permission;
use crate::auth::principal::Caller;
use crate::auth::tenant_access::TenantAccess;
use crate::error::{ApiError, ErrorCode, ProblemDetails};
use crate::pagination::{Cursor, CursorScope, DEFAULT_LIMIT, MAX_LIMIT};
use crate::routes::mirror::query_string::QueryString;
use crate::state::AppState;

/// The filters of the audit log (documentation; the handler reads them strictly with [`QueryString`]). Multi-valued
/// filters take repeated keys or comma-separated values; different filters combine with AND, the values of one
/// filter with OR.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct AuditLogFilters {
    /// Actions, by name (`member.role_change`) or by prefix (`member.*`).
    #[param(explode = true, style = Form, schema_with = action_filter_schema)]
    pub action: Option<Vec<String>>,
    /// Kinds of actor.
    #[param(explode = true, style = Form, inline)]
    pub actor_type: Option<Vec<ActorType>>,
    /// The user or API key that acted.
    pub actor_id: Option<uuid::Uuid>,
    /// The kind of target.
    #[param(schema_with = target_type_schema)]
    pub target_type: Option<String>,
    /// The target's id (needs `target_type`).
    #[param(min_length = 1, max_length = 200)]
    pub target_id: Option<String>,
    /// Outcomes.
    #[param(explode = true, style = Form, inline)]
    pub outcome: Option<Vec<Outcome>>,
    /// Events at or after this instant (RFC 3339).
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Events at or before this instant.
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// Text the actor's or target's name, the target id or the metadata contain (case-insensitive; `%`, `_` and `\`
    /// are literal). At least three letters or digits in a row, so that the text index applies.
    #[param(min_length = 3, max_length = 200)]
    pub q: Option<String>,
}

/// The lists' paging (documentation, like [`AuditLogFilters`]): not parameters of the exports, which read everything.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct AuditPaging {
    /// Events per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page (same filters).
    pub cursor: Option<String>,
}

/// The `action` filter's values: every action name, and `prefix.*` for every prefix.
fn action_filter_values() -> Vec<String> {
    let mut values: Vec<String> = AuditAction::names().into_iter().map(str::to_owned).collect();
    values.extend(AuditAction::prefixes().into_iter().map(|p| format!("{p}.*")));
    values
}

fn action_filter_schema() -> utoipa::openapi::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
    let values: Vec<serde_json::Value> = action_filter_values().into_iter().map(Into::into).collect();
    ArrayBuilder::new()
        .items(ObjectBuilder::new().schema_type(SchemaType::Type(Type::String)).enum_values(Some(values)))
        .build()
}

pub(crate) const PARAMS: &[&str] = &[
    "action",
    "actor_type",
    "actor_id",
    "target_type",
    "target_id",
    "outcome",
    "since",
    "until",
    "q",
    "limit",
    "cursor",
];

pub(crate) fn bad(detail: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidQueryParameter, detail)
}

/// The filter a query string asks for, checked.
pub(crate) fn filter(params: &QueryString) -> Result<AuditFilter, ApiError> {
    let mut actions: Vec<String> = params
        .words("action", &action_filter_values())?
        .iter()
        .flat_map(|v| AuditAction::selected_by(v).unwrap_or_default())
        .map(|a| a.as_str().to_owned())
        .collect();
    actions.sort_unstable();
    actions.dedup();
    let actor_types = params
        .words("actor_type", &ActorType::iter().map(|t| t.to_value()).collect::<Vec<_>>())?
        .iter()
        .filter_map(|w| ActorType::iter().find(|t| t.to_value() == *w))
        .collect();
    let outcomes = params
        .words("outcome", &Outcome::iter().map(|o| o.to_value()).collect::<Vec<_>>())?
        .iter()
        .filter_map(|w| Outcome::iter().find(|o| o.to_value() == *w))
        .collect();
    let actor_id = params
        .one("actor_id")?
        .map(|v| uuid::Uuid::parse_str(v).map_err(|_| bad("actor_id must be a UUID.".to_owned())))
        .transpose()?;
    let target_type = params.words("target_type", &AuditAction::target_types())?;
    if target_type.len() > 1 {
        return Err(bad("target_type takes one value.".to_owned()));
    }
    let target_id = params.one("target_id")?.map(str::to_owned);
    if let Some(id) = &target_id {
        if id.is_empty() || id.chars().count() > 200 {
            return Err(bad("target_id must be 1 to 200 characters.".to_owned()));
        }
        if target_type.is_empty() {
            return Err(bad("target_id needs target_type (ids of different kinds may look alike).".to_owned()));
        }
    }
    let range = params.range("since", "until")?;
    let q = params.q()?;
    if let Some(q) = &q {
        let mut run = 0;
        let searchable = q.chars().any(|c| {
            run = if c.is_alphanumeric() { run + 1 } else { 0 };
            run >= 3
        });
        if !searchable {
            return Err(bad("q must contain at least three letters or digits in a row.".to_owned()));
        }
    }
    Ok(AuditFilter {
        actions,
        actor_types,
        actor_id,
        target_type: target_type.into_iter().next(),
        target_id,
        outcomes,
        since: range.from,
        until: range.to,
        q,
        tenants: Vec::new(),
    })
}

/// The tenant's audit log, filtered, newest first, in pages (owners and admins).
#[utoipa::path(
    tag = "audit",
    params(crate::routes::params::TenantPath, AuditLogFilters, AuditPaging),
    responses(
        (status = 200, body = AuditPageView),
        (status = 400, description = "A parameter is unknown, malformed or out of range; the detail names it", body = ProblemDetails),
        (status = 403, description = "Your role may not read the audit log", body = ProblemDetails),
        (status = 404, body = ProblemDetails),
    ),
)]
#[get("")]
pub async fn list_audit_logs(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<crate::routes::params::TenantPath>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let tenant = TenantId(path.tenant_id);
    let params = QueryString::parse(req.query_string(), PARAMS)?;
    let filter = filter(&params)?;
    let limit = limit(&params)?;
    let scope = CursorScope::new(tenant, "audit-logs", "-created_at", &filter)?;
    let after: Option<AuditPosition> = params.one("cursor")?.map(|c| state.cursors.open(c, &scope)).transpose()?;
    let access = TenantAccess::begin(&state, &caller, tenant, Permission::ReadAuditLogs).await?;
    let page = query::list(&access.txn, &filter, after, limit).await.context("Failed to read the audit log")?;
    access.commit().await?;
    page_response(&state, page, scope)
}

/// `limit`: 1 to [`MAX_LIMIT`], [`DEFAULT_LIMIT`] when absent.
pub(crate) fn limit(params: &QueryString) -> Result<usize, ApiError> {
    let limit = params.u64("limit")?.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(bad(format!("limit must be between 1 and {MAX_LIMIT}.")));
    }
    Ok(usize::try_from(limit).unwrap_or(usize::MAX))
}

/// A page of events as the lists answer it, its next position sealed into `next_cursor` under `scope`.
pub(crate) fn page_response(state: &AppState, page: AuditPage, scope: CursorScope) -> Result<HttpResponse, ApiError> {
    let next_cursor = page.next.map(|after| state.cursors.seal(&Cursor { scope, after })).transpose()?;
    Ok(HttpResponse::Ok()
        .json(AuditPageView { items: page.items.into_iter().map(AuditEventView::from).collect(), next_cursor }))
}

/// `/v1/tenants/{tenant_id}/audit-logs/{audit_log_id}`.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct AuditLogPath {
    pub tenant_id: uuid::Uuid,
    pub audit_log_id: uuid::Uuid,
}

/// One event of the tenant's audit log (owners and admins).
#[utoipa::path(
    tag = "audit",
    params(AuditLogPath),
    responses(
        (status = 200, body = AuditEventView),
        (status = 403, description = "Your role may not read the audit log", body = ProblemDetails),
        (status = 404, body = ProblemDetails),
    ),
)]
#[get("/{audit_log_id}")]
pub async fn get_audit_log(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<AuditLogPath>,
) -> Result<HttpResponse, ApiError> {
    let access = TenantAccess::begin(&state, &caller, TenantId(path.tenant_id), Permission::ReadAuditLogs).await?;
    let event = query::get(&access.txn, path.audit_log_id)
        .await
        .context("Failed to read the audit event")?
        .ok_or_else(|| ApiError::not_found("Audit event"))?;
    access.commit().await?;
    Ok(HttpResponse::Ok().json(AuditEventView::from(event)))
}
