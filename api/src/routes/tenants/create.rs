//! `POST /v1/tenants`.

use actix_web::{HttpResponse, post, web};
use anyhow::Context;
use entity::audit::{self, Actor, AuditAction, Event};
use entity::tenant_users::{self, Role};
use entity::{TenantId, TenantTxn, tenants};
use serde::Deserialize;
use utoipa::ToSchema;

use super::slug_taken;
use crate::auth::principal::Principal;
use crate::body::JsonBody;
use crate::domain::{TenantSlug, parse_name};
use crate::error::{ApiError, ProblemDetails};
use crate::idempotency::{self, Answer, IdempotencyKey};
use crate::request_context::ClientOrigin;
use crate::routes::views::TenantView;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Acme QA", "slug": "acme-qa"}))]
pub struct CreateTenantRequest {
    /// 1 to 200 characters (trimmed), not only spaces, no control or format characters.
    #[schema(min_length = 1, max_length = 200, pattern = "display-name", example = "Acme QA")]
    pub name: String,
    /// Unique, 1-63 characters of `a-z`, `0-9` and inner `-`.
    #[schema(min_length = 1, max_length = 63, pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", example = "acme-qa")]
    pub slug: String,
}

/// Create a tenant; the caller becomes its owner.
#[utoipa::path(
    tag = "tenants",
    request_body = CreateTenantRequest,
    responses(
        (status = 201, body = TenantView),
        (status = 409, description = "Slug taken", body = ProblemDetails),
        (status = 422, body = ProblemDetails),
    ),
)]
#[post("")]
pub async fn create_tenant(
    state: web::Data<AppState>,
    principal: Principal,
    origin: ClientOrigin,
    idempotency_key: IdempotencyKey,
    body: JsonBody<CreateTenantRequest>,
) -> Result<HttpResponse, ApiError> {
    let me = principal.user()?;
    let (name, slug) = match (parse_name("name", &body.name, 200), TenantSlug::parse("slug", &body.slug)) {
        (Ok(n), Ok(s)) => (n, s),
        (n, s) => return Err(ApiError::validation([n.err(), s.err()].into_iter().flatten().collect())),
    };
    let principal = format!("user:{}", me.user.id);
    let idempotent = idempotency_key.bind(principal, "create_tenant", body.json());
    // With a key, the new tenant's id is derived from the caller and the key, so that a retry lands on the tenant
    // (and the key) the first request created.
    let id = TenantId(idempotent.as_ref().map_or_else(uuid::Uuid::now_v7, |i| i.derived_id(me.user.id.0)));
    let txn = TenantTxn::begin(&state.db, id).await.context("Failed to begin the tenant transaction")?;
    if let Some(replay) = idempotency::begin(idempotent.as_ref(), &txn).await? {
        return Ok(replay);
    }
    // The key's tenant exists, but its answer is no longer kept (older than 24 hours): the key is spent.
    if idempotent.is_some() && tenants::find(&txn, id).await.context("Failed to read the tenant")?.is_some() {
        return Err(crate::idempotency::reused());
    }
    let tenant = tenants::create_with_id(&txn, id, &name, slug.as_str())
        .await
        .map_err(|e| slug_taken(e, "Failed to create the tenant"))?;
    tenant_users::add(&txn, me.user.id, &me.user.email, Role::Owner).await.context("Failed to add the owner")?;
    let event = Event::new(AuditAction::TenantCreate, Actor::user(me.user.id))
        .on(id)
        .metadata(serde_json::json!({ "name": name, "slug": slug.as_str() }));
    audit::record(&txn, event, &origin.0).await.context("Failed to write the audit entry")?;
    let answer = Answer::json(actix_web::http::StatusCode::CREATED, &TenantView::from(tenant))?;
    let response = idempotency::finish(idempotent.as_ref(), &txn, answer).await?;
    txn.commit().await.context("Failed to commit")?;
    Ok(response)
}
