//! `GET /v1/tenants/{tenant_id}/audit-logs/export?format=csv|ndjson`: every event the filters select, newest first,
//! streamed.
//!
//! The events are read in keyset batches of [`BATCH`], each in a short transaction of its own that authorizes the
//! caller again, and written to the response as they come: the API's memory stays flat for a log of any size, no
//! pooled connection is held while a slow client reads, and a caller who signs out or loses the role mid-export stops
//! receiving events at the next batch (the download then ends early, unterminated, so it cannot pass for a whole
//! file). The first batch is read before the answer starts, in the transaction that records the export in the audit
//! log (`audit_log.export`, with the format and the filters): a refused or malformed request is an ordinary
//! problem+json answer and exports nothing. Events written after the export began are newer than its start and are
//! not part of it.

use actix_web::http::header::{ContentDisposition, DispositionParam, DispositionType};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, get, web};
use anyhow::Context;
use entity::TenantId;
use entity::audit::AuditAction;
use entity::audit::query::{self, AuditFilter, AuditPage, AuditPosition};
use entity::audit_logs::Model;
use futures_util::stream;
use sea_orm::ActiveEnum;

use super::list::{AuditLogFilters, filter};
use super::view::AuditEventView;
use crate::auth::permissions::Permission;
use crate::auth::principal::{Caller, Principal};
use crate::auth::tenant_access::TenantAccess;
use crate::error::{ApiError, ErrorCode, ProblemDetails};
use crate::request_context::ClientOrigin;
use crate::routes::mirror::query_string::QueryString;
use crate::routes::params::TenantPath;
use crate::state::AppState;

/// Events read (and written out) at a time.
pub const BATCH: usize = 1_000;

pub(crate) const PARAMS: &[&str] =
    &["action", "actor_type", "actor_id", "target_type", "target_id", "outcome", "since", "until", "q", "format"];

/// The export's format (documentation; the handler reads it strictly).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ExportFormat {
    /// `csv` (the default: a header row, then one row per event; the metadata as JSON in one column; a cell that a
    /// spreadsheet would take for a formula starts with `'`) or `ndjson` (one event per line, as the list shows it).
    #[param(pattern = "^(csv|ndjson)$")]
    pub format: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Format {
    Csv,
    Ndjson,
}

const CSV_HEADER: [&str; 15] = [
    "created_at",
    "id",
    "action",
    "outcome",
    "actor_type",
    "actor_id",
    "actor_display",
    "target_type",
    "target_id",
    "target_display",
    "ip_address",
    "user_agent",
    "request_id",
    "metadata",
    "schema_version",
];

/// A cell as written to CSV: text a spreadsheet would evaluate (`=`, `+`, `-`, `@`, a tab or a carriage return
/// first) is prefixed with `'`.
fn cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}") } else { text.to_owned() }
}

/// `events` in `format`, with the CSV header first when `header`.
fn encode(events: Vec<Model>, format: Format, header: bool) -> Result<Bytes, std::io::Error> {
    match format {
        Format::Csv => {
            let mut writer = csv::Writer::from_writer(Vec::with_capacity(events.len() * 256));
            if header {
                writer.write_record(CSV_HEADER)?;
            }
            for e in events {
                let opt = |v: Option<String>| v.map(|v| cell(&v)).unwrap_or_default();
                writer.write_record([
                    e.created_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                    e.id.to_string(),
                    e.action,
                    e.outcome.to_value(),
                    e.actor_type.to_value(),
                    e.actor_id.map(|id| id.to_string()).unwrap_or_default(),
                    opt(e.actor_display),
                    e.target_type,
                    opt(e.target_id),
                    opt(e.target_display),
                    e.ip_address.map(|ip| ip.ip().to_string()).unwrap_or_default(),
                    opt(e.user_agent),
                    opt(e.request_id),
                    e.metadata.to_string(),
                    e.schema_version.to_string(),
                ])?;
            }
            writer.into_inner().map(Bytes::from).map_err(|e| std::io::Error::other(e.to_string()))
        }
        Format::Ndjson => {
            let mut out = Vec::with_capacity(events.len() * 512);
            for e in events {
                serde_json::to_writer(&mut out, &AuditEventView::from(e))?;
                out.push(b'\n');
            }
            Ok(Bytes::from(out))
        }
    }
}

/// Whose events an export reads, and as whom: every batch is authorized again.
pub(crate) enum Source {
    /// One tenant's log, for an owner or admin of it.
    Tenant { caller: Caller, tenant: TenantId },
    /// Every tenant's log (or the filter's tenants), for a platform admin.
    Platform { principal: Principal },
}

impl Source {
    /// The batch after `after` (or the first), as the caller may read it now.
    async fn read(
        &self,
        state: &AppState,
        filter: &AuditFilter,
        after: Option<AuditPosition>,
    ) -> Result<AuditPage, ApiError> {
        match self {
            Source::Tenant { caller, tenant } => {
                let access = TenantAccess::begin(state, caller, *tenant, Permission::ReadAuditLogs).await?;
                let page =
                    query::list(&access.txn, filter, after, BATCH).await.context("Failed to read the audit log")?;
                access.commit().await?;
                Ok(page)
            }
            Source::Platform { principal } => {
                let txn = crate::routes::admin_audit::reader(state, principal).await?;
                let page =
                    query::list_platform(&txn, filter, after, BATCH).await.context("Failed to read the audit log")?;
                txn.commit().await.context("Failed to end the review transaction")?;
                Ok(page)
            }
        }
    }
}

/// What the stream still has to send.
struct Pending {
    state: web::Data<AppState>,
    source: Source,
    filter: AuditFilter,
    format: Format,
    /// A batch read but not yet sent, and whether it is the first.
    ready: Option<(Vec<Model>, bool)>,
    next: Option<AuditPosition>,
}

impl Pending {
    /// The next chunk of the body, and what remains after it; `None` at the end.
    async fn step(mut self) -> Option<(Result<Bytes, std::io::Error>, Option<Self>)> {
        if let Some((events, first)) = self.ready.take() {
            let chunk = encode(events, self.format, first);
            let rest = if chunk.is_ok() && self.next.is_some() { Some(self) } else { None };
            return Some((chunk, rest));
        }
        let after = self.next?;
        match self.source.read(&self.state, &self.filter, Some(after)).await {
            Ok(page) => {
                self.next = page.next;
                let chunk = encode(page.items, self.format, false);
                let rest = if chunk.is_ok() && self.next.is_some() { Some(self) } else { None };
                Some((chunk, rest))
            }
            Err(e) => {
                tracing::warn!(error = %e, "the audit export stopped early");
                Some((Err(std::io::Error::other(e.to_string())), None))
            }
        }
    }
}

/// The export's format, from the query string.
pub(crate) fn format(params: &QueryString) -> Result<Format, ApiError> {
    match params.one("format")? {
        None | Some("csv") => Ok(Format::Csv),
        Some("ndjson") => Ok(Format::Ndjson),
        Some(other) => {
            let other: String = other.chars().take(40).collect();
            Err(ApiError::new(
                ErrorCode::InvalidQueryParameter,
                format!("format must be csv or ndjson, not {other:?}."),
            ))
        }
    }
}

/// The metadata of the `audit_log.export` event.
pub(crate) fn export_metadata(format: Format, filter: &AuditFilter) -> serde_json::Value {
    serde_json::json!({ "format": format, "filters": filter })
}

/// The answer of an export whose `first` batch was read (and the export recorded): the file, streamed, named after
/// `name`.
pub(crate) fn streamed(
    state: web::Data<AppState>,
    source: Source,
    filter: AuditFilter,
    format: Format,
    first: AuditPage,
    name: &str,
) -> HttpResponse {
    let (content_type, extension) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Ndjson => ("application/x-ndjson", "ndjson"),
    };
    let filename = format!("audit-log-{name}-{}.{extension}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"));
    let pending = Pending { state, source, filter, format, ready: Some((first.items, true)), next: first.next };
    let body = stream::unfold(Some(pending), |pending| async move { pending?.step().await });
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(ContentDisposition {
            disposition: DispositionType::Attachment,
            parameters: vec![DispositionParam::Filename(filename)],
        })
        .streaming(body)
}

/// The tenant's audit log as a file: every event the filters select, newest first, streamed (owners and admins).
/// The export is itself recorded in the log.
#[utoipa::path(
    tag = "audit",
    params(TenantPath, AuditLogFilters, ExportFormat),
    responses(
        (status = 200, description = "The events, streamed", content(
            (String = "text/csv; charset=utf-8"),
            (String = "application/x-ndjson"),
        )),
        (status = 400, description = "A parameter is unknown, malformed or out of range; the detail names it", body = ProblemDetails),
        (status = 403, description = "Your role may not read the audit log", body = ProblemDetails),
        (status = 404, body = ProblemDetails),
    ),
)]
#[get("/export")]
pub async fn export_audit_logs(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<TenantPath>,
    req: HttpRequest,
    origin: ClientOrigin,
) -> Result<HttpResponse, ApiError> {
    let tenant = TenantId(path.tenant_id);
    let params = QueryString::parse(req.query_string(), PARAMS)?;
    let format = format(&params)?;
    let filter = filter(&params)?;
    let access = TenantAccess::begin(&state, &caller, tenant, Permission::ReadAuditLogs).await?;
    let first = query::list(&access.txn, &filter, None, BATCH).await.context("Failed to read the audit log")?;
    access.audit(AuditAction::AuditLogExport, tenant, export_metadata(format, &filter), &origin.0).await?;
    access.commit().await?;
    Ok(streamed(state, Source::Tenant { caller, tenant }, filter, format, first, &tenant.0.to_string()))
}
