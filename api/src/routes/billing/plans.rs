//! `GET /v1/plans`: the plans on offer and their limits.

use actix_web::{HttpResponse, get, web};
use entity::plans::{Limits, PLANS, Plan};
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

/// A plan and what it allows.
#[derive(Serialize, ToSchema)]
pub struct PlanView {
    pub plan: Plan,
    /// Limits; a `null` count means no limit.
    pub limits: Limits,
    /// Whether it can be bought through Checkout (`POST .../billing/checkout-session`).
    pub purchasable: bool,
}

#[derive(Serialize, ToSchema)]
pub struct PlansView {
    /// Cheapest first.
    pub plans: Vec<PlanView>,
    /// Days a past-due subscription keeps its plan before the free plan's limits apply.
    pub past_due_grace_days: i64,
}

/// The plans on offer, cheapest first (no sign-in needed).
#[utoipa::path(tag = "billing", responses((status = 200, body = PlansView)))]
#[get("")]
pub async fn list_plans(state: web::Data<AppState>) -> HttpResponse {
    let plans = PLANS
        .into_iter()
        .map(|plan| PlanView {
            plan,
            limits: state.plans.limits(plan),
            purchasable: state.stripe.is_some() && state.plans.price(plan).is_some(),
        })
        .collect();
    HttpResponse::Ok().json(PlansView { plans, past_due_grace_days: state.plans.past_due_grace.num_days() })
}
