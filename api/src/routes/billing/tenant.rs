//! A tenant's billing: `GET /v1/tenants/{tenant_id}/billing` (owners and admins), `POST .../checkout-session` and
//! `POST .../portal-session` (owners, signed in: a browser flow, not for API keys).

use actix_web::{HttpResponse, get, post, web};
use anyhow::Context;
use chrono::{DateTime, Utc};
use entity::audit::AuditAction;
use entity::plans::{Limits, Plan};
use entity::{TenantId, users};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{is_live, not_configured, upstream};
use crate::auth::permissions::Permission;
use crate::auth::principal::Caller;
use crate::auth::tenant_access::TenantAccess;
use crate::body::JsonBody;
use crate::error::{ApiError, ErrorCode, FieldError, ProblemDetails};
use crate::idempotency::{self, Answer, IdempotencyKey};
use crate::request_context::ClientOrigin;
use crate::routes::params::TenantPath;
use crate::state::AppState;

/// How much of one limit the tenant uses.
#[derive(Serialize, ToSchema)]
pub struct UsageView {
    pub used: i64,
    /// `null`: no limit.
    pub allowed: Option<u32>,
}

/// The tenant's plan, subscription and use of its limits.
#[derive(Serialize, ToSchema)]
pub struct BillingView {
    /// The plan subscribed to (or assigned).
    pub plan: Plan,
    /// The plan whose limits apply now: `plan`, or `free` once a past-due subscription's grace period is over.
    pub plan_in_force: Plan,
    /// Stripe's status of the subscription (`active`, `trialing`, `past_due`, `canceled`, ...); `null` without one.
    pub subscription_status: Option<String>,
    pub current_period_end: Option<DateTime<Utc>>,
    /// Whether the subscription ends (back to `free`) at `current_period_end`.
    pub cancel_at_period_end: bool,
    /// When a past-due subscription's grace period ends.
    pub grace_period_ends_at: Option<DateTime<Utc>>,
    /// Whether the tenant has a Stripe customer (so the portal can be opened).
    pub has_billing_account: bool,
    pub seats: UsageView,
    pub products: UsageView,
    pub api_keys: UsageView,
    /// Every limit of the plan in force.
    pub limits: Limits,
}

/// The tenant's plan, subscription and usage (owners, admins).
#[utoipa::path(
    tag = "billing",
    params(TenantPath),
    responses(
        (status = 200, body = BillingView),
        (status = 403, description = "Your role may not see billing", body = ProblemDetails),
        (status = 404, body = ProblemDetails),
    ),
)]
#[get("")]
pub async fn get_billing(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<TenantPath>,
) -> Result<HttpResponse, ApiError> {
    let access = TenantAccess::begin(&state, &caller, TenantId(path.tenant_id), Permission::ReadBilling).await?;
    let tenant = entity::tenants::find(&access.txn, access.txn.tenant_id())
        .await
        .context("Failed to read the tenant")?
        .ok_or_else(|| ApiError::not_found("Tenant"))?;
    let usage = entity::billing::usage(&access.txn).await.context("Failed to count the tenant's usage")?;
    access.commit().await?;
    let now = Utc::now();
    let in_force = state.plans.in_force_for(&tenant, now);
    let limits = state.plans.limits(in_force);
    let grace_period_ends_at = match tenant.subscription_status.as_deref() {
        Some("past_due") => tenant.subscription_past_due_since.map(|since| since + state.plans.past_due_grace),
        _ => None,
    };
    Ok(HttpResponse::Ok().json(BillingView {
        plan: tenant.plan,
        plan_in_force: in_force,
        subscription_status: tenant.subscription_status,
        current_period_end: tenant.subscription_current_period_end,
        cancel_at_period_end: tenant.subscription_cancel_at_period_end,
        grace_period_ends_at,
        has_billing_account: tenant.stripe_customer_id.is_some(),
        seats: UsageView { used: usage.seats, allowed: limits.seats },
        products: UsageView { used: usage.products, allowed: limits.products },
        api_keys: UsageView { used: usage.api_keys, allowed: limits.api_keys },
        limits,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"plan": "pro"}))]
pub struct CheckoutRequest {
    /// A paid plan that is for sale (`GET /v1/plans`: `purchasable`).
    #[schema(example = "pro")]
    pub plan: PaidPlan,
}

/// The plans that can be bought.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaidPlan {
    Pro,
    Enterprise,
}

impl From<PaidPlan> for Plan {
    fn from(p: PaidPlan) -> Self {
        match p {
            PaidPlan::Pro => Plan::Pro,
            PaidPlan::Enterprise => Plan::Enterprise,
        }
    }
}

/// Where to send the customer.
#[derive(Serialize, ToSchema)]
pub struct SessionView {
    /// The Stripe page (Checkout or the customer portal).
    pub url: String,
}

/// Statuses of a subscription that still pays for (or is about to pay for) a plan.
/// Opens a Stripe Checkout session to subscribe the tenant to a paid plan (owners). The first one creates the
/// tenant's Stripe customer (once, even when asked twice at the same time). The plan changes when Stripe reports the
/// subscription (webhook), not here.
#[utoipa::path(
    tag = "billing",
    params(TenantPath),
    request_body = CheckoutRequest,
    responses(
        (status = 201, body = SessionView),
        (status = 403, description = "Only owners (signed in, not with an API key) manage billing", body = ProblemDetails),
        (status = 404, body = ProblemDetails),
        (status = 409, description = "The tenant already has this plan, or a subscription to change in the portal", body = ProblemDetails),
        (status = 422, description = "Not a plan for sale", body = ProblemDetails),
        (status = 502, description = "Stripe did not answer or refused", body = ProblemDetails),
    ),
)]
#[post("/checkout-session")]
pub async fn create_checkout_session(
    state: web::Data<AppState>,
    caller: Caller,
    origin: ClientOrigin,
    path: web::Path<TenantPath>,
    idempotency_key: IdempotencyKey,
    body: JsonBody<CheckoutRequest>,
) -> Result<HttpResponse, ApiError> {
    let plan = Plan::from(body.plan);
    let access = TenantAccess::begin(&state, &caller, TenantId(path.tenant_id), Permission::ManageBilling).await?;
    let me = access.user()?;
    let idempotent = idempotency_key.bind(access.principal(), "create_checkout_session", body.json());
    if let Some(replay) = idempotency::begin(idempotent.as_ref(), &access.txn).await? {
        return Ok(replay);
    }
    let Some(price) = state.plans.price(plan).map(str::to_owned) else {
        return Err(ApiError::validation(vec![FieldError {
            field: "plan".to_owned(),
            message: format!("{} is not a plan for sale.", sea_orm::ActiveEnum::to_value(&plan)),
        }]));
    };
    let stripe = state.stripe.clone().ok_or_else(not_configured)?;
    // Locked until the end: concurrent checkouts of the tenant take turns, so its customer is created once.
    let tenant = entity::billing::lock_tenant(&access.txn)
        .await
        .context("Failed to read the tenant")?
        .ok_or_else(|| ApiError::not_found("Tenant"))?;
    if tenant.plan == plan && (is_live(tenant.subscription_status.as_deref()) || tenant.subscription_status.is_none()) {
        return Err(ApiError::new(ErrorCode::Conflict, "The tenant is already on this plan."));
    }
    if is_live(tenant.subscription_status.as_deref()) {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "The tenant has a subscription: change or cancel it in the billing portal (POST .../billing/portal-session).",
        ));
    }
    let customer = match tenant.stripe_customer_id.clone() {
        Some(customer) => customer,
        None => {
            let user = users::find(&access.txn, me)
                .await
                .context("Failed to read the user")?
                .ok_or_else(|| ApiError::not_found("User"))?;
            let customer = stripe.create_customer(tenant.id, &tenant.name, &user.email).await.map_err(upstream)?;
            entity::billing::set_customer(&access.txn, &customer).await.context("Failed to record the customer")?;
            customer
        }
    };
    let settings = &state.settings;
    let success = settings.billing_url(&settings.billing_success_url, "/billing/success");
    let cancel = settings.billing_url(&settings.billing_cancel_url, "/billing/cancel");
    let key = format!("testio-hub-checkout-{}", uuid::Uuid::new_v4());
    let session = stripe
        .create_checkout_session(tenant.id, &customer, &price, &success, &cancel, &key)
        .await
        .map_err(upstream)?;
    let metadata = serde_json::json!({
        "plan": sea_orm::ActiveEnum::to_value(&plan),
        "checkout_session_id": session.id,
        "customer_id": customer,
    });
    access.audit(AuditAction::BillingCheckoutStart, tenant.id, metadata, &origin.0).await?;
    let answer = Answer::json(actix_web::http::StatusCode::CREATED, &SessionView { url: session.url })?;
    let response = idempotency::finish(idempotent.as_ref(), &access.txn, answer).await?;
    access.commit().await?;
    Ok(response)
}

/// Opens the Stripe customer portal for the tenant (owners): change the plan, the card, cancel.
#[utoipa::path(
    tag = "billing",
    params(TenantPath),
    responses(
        (status = 201, body = SessionView),
        (status = 403, description = "Only owners (signed in, not with an API key) manage billing", body = ProblemDetails),
        (status = 404, body = ProblemDetails),
        (status = 409, description = "The tenant has no billing account yet (start with a checkout)", body = ProblemDetails),
        (status = 502, description = "Stripe did not answer or refused", body = ProblemDetails),
    ),
)]
#[post("/portal-session")]
pub async fn create_portal_session(
    state: web::Data<AppState>,
    caller: Caller,
    origin: ClientOrigin,
    path: web::Path<TenantPath>,
    idempotency_key: IdempotencyKey,
) -> Result<HttpResponse, ApiError> {
    let access = TenantAccess::begin(&state, &caller, TenantId(path.tenant_id), Permission::ManageBilling).await?;
    access.user()?;
    let idempotent = idempotency_key.bind(access.principal(), "create_portal_session", &serde_json::Value::Null);
    if let Some(replay) = idempotency::begin(idempotent.as_ref(), &access.txn).await? {
        return Ok(replay);
    }
    let stripe = state.stripe.clone().ok_or_else(not_configured)?;
    let tenant = entity::tenants::find(&access.txn, access.txn.tenant_id())
        .await
        .context("Failed to read the tenant")?
        .ok_or_else(|| ApiError::not_found("Tenant"))?;
    let Some(customer) = tenant.stripe_customer_id else {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "The tenant has no billing account yet: subscribe first (POST .../billing/checkout-session).",
        ));
    };
    let settings = &state.settings;
    let return_url = settings.billing_url(&settings.billing_return_url, "/billing");
    let url = stripe.create_portal_session(&customer, &return_url).await.map_err(upstream)?;
    access.audit(AuditAction::BillingPortalOpen, tenant.id, serde_json::json!({}), &origin.0).await?;
    let answer = Answer::json(actix_web::http::StatusCode::CREATED, &SessionView { url })?;
    let response = idempotency::finish(idempotent.as_ref(), &access.txn, answer).await?;
    access.commit().await?;
    Ok(response)
}
