//! `DELETE /v1/tenants/{tenant_id}`.

use actix_web::{HttpResponse, delete, web};
use anyhow::Context;
use entity::audit::AuditAction;
use entity::{TenantId, tenants};

use crate::auth::permissions::Permission;
use crate::auth::principal::Caller;
use crate::auth::tenant_access::TenantAccess;
use crate::error::{ApiError, ProblemDetails};
use crate::request_context::ClientOrigin;
use crate::routes::billing::{is_live, not_configured, upstream};
use crate::routes::params::TenantPath;
use crate::state::AppState;

/// Delete a tenant with its memberships, invitations and API keys (owner only). The audit log is kept. A live Stripe
/// subscription is cancelled first, at once: if Stripe does not confirm it, nothing is deleted.
#[utoipa::path(
    tag = "tenants",
    params(TenantPath),
    responses(
        (status = 204),
        (status = 403, body = ProblemDetails),
        (status = 404, body = ProblemDetails),
        (status = 502, description = "Stripe did not cancel the tenant's subscription; nothing was deleted", body = ProblemDetails),
    ),
)]
#[delete("")]
pub async fn delete_tenant(
    state: web::Data<AppState>,
    caller: Caller,
    origin: ClientOrigin,
    path: web::Path<TenantPath>,
) -> Result<HttpResponse, ApiError> {
    let access = TenantAccess::begin(&state, &caller, TenantId(path.tenant_id), Permission::DeleteTenant).await?;
    // Locked: a checkout or a billing change of the tenant waits, and then finds it gone.
    let tenant = entity::billing::lock_tenant(&access.txn)
        .await
        .context("Failed to read the tenant")?
        .ok_or_else(|| ApiError::not_found("Tenant"))?;
    // A subscription that still charges is cancelled before anything is deleted (503 without Stripe configured, 502
    // when Stripe fails: the tenant stays).
    let cancelled = match tenant.stripe_subscription_id.as_deref() {
        Some(subscription) if is_live(tenant.subscription_status.as_deref()) => {
            let stripe = state.stripe.clone().ok_or_else(not_configured)?;
            stripe.cancel_subscription(subscription).await.map_err(upstream)?;
            Some(subscription.to_owned())
        }
        _ => None,
    };
    let metadata = serde_json::json!({
        "name": tenant.name,
        "slug": tenant.slug,
        "subscription_cancelled": cancelled,
    });
    access.audit(AuditAction::TenantDelete, tenant.id, metadata, &origin.0).await?;
    tenants::delete(&access.txn, tenant).await.context("Failed to delete the tenant")?;
    access.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}
