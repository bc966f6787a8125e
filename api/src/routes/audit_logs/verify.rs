//! `GET /v1/tenants/{tenant_id}/audit-logs/verify`: checks the tenant's hash chain (see migration
//! `m20261202_000014_audit_chain`) and reports whether the sealed history is intact or its first broken event, and
//! how many events wait to be sealed.

use actix_web::{HttpResponse, get, web};
use anyhow::Context;
use chrono::{DateTime, Utc};
use entity::TenantId;
use entity::audit::chain::{self, Verification};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::permissions::Permission;
use crate::auth::principal::Caller;
use crate::auth::tenant_access::TenantAccess;
use crate::error::{ApiError, ProblemDetails};
use crate::routes::params::TenantPath;
use crate::state::AppState;

/// The chain's newest sealed position.
#[derive(Serialize, ToSchema)]
pub struct ChainHeadView {
    /// Events sealed so far (positions are numbered from 1).
    pub seq: i64,
    /// The hash of the newest sealed event, hex: kept elsewhere, it proves later that nothing before it changed.
    pub hash: Option<String>,
    /// When the worker last sealed.
    pub sealed_at: Option<DateTime<Utc>>,
}

/// The verdict on an audit log's hash chain.
#[derive(Serialize, ToSchema)]
pub struct ChainVerificationView {
    /// `true` when every sealed event is there, unaltered and in its place, and none was slipped into the sealed
    /// history.
    pub intact: bool,
    /// Sealed events checked.
    pub checked: i64,
    /// What is wrong, when something is.
    pub problem: Option<String>,
    /// The position of the first broken link.
    pub broken_seq: Option<i64>,
    /// The first event found altered, deleted or inserted.
    pub broken_event: Option<uuid::Uuid>,
    /// Events written but not sealed yet: the worker seals them within seconds. They are not covered by `intact`.
    pub unsealed: i64,
    pub head: ChainHeadView,
}

impl From<Verification> for ChainVerificationView {
    fn from(v: Verification) -> Self {
        Self {
            intact: v.intact,
            checked: v.checked,
            problem: v.problem,
            broken_seq: v.broken_seq,
            broken_event: v.broken_event,
            unsealed: v.unsealed,
            head: ChainHeadView {
                seq: v.head_seq,
                hash: v.head_hash.map(|h| h.iter().map(|b| format!("{b:02x}")).collect()),
                sealed_at: v.sealed_at,
            },
        }
    }
}

/// Verifies the tenant's audit chain (owners and admins).
#[utoipa::path(
    tag = "audit",
    params(TenantPath),
    responses(
        (status = 200, body = ChainVerificationView),
        (status = 403, description = "Your role may not read the audit log", body = ProblemDetails),
        (status = 404, body = ProblemDetails),
    ),
)]
#[get("/verify")]
pub async fn verify_audit_chain(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<TenantPath>,
) -> Result<HttpResponse, ApiError> {
    let access = TenantAccess::begin(&state, &caller, TenantId(path.tenant_id), Permission::ReadAuditLogs).await?;
    let verdict = chain::verify(&access.txn).await.context("Failed to verify the audit chain")?;
    access.commit().await?;
    Ok(HttpResponse::Ok().json(ChainVerificationView::from(verdict)))
}
