//! `/v1/tenants/{tenant_id}/members`: list members, change a role, remove a member. A tenant always keeps at least
//! one owner; admins never act on owners; anyone may leave. A removed member's pending invitations and API keys are
//! revoked with them; a demoted member's invitations for roles they can no longer grant are revoked.

use actix_web::{HttpResponse, delete, get, patch, web};
use chrono::{DateTime, Utc};
use entity::tenant_users::{self, Role};
use entity::{TenantId, UserId, api_keys, invitations};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::permissions::{Permission, allows, may_manage_role};
use crate::auth::principal::Principal;
use crate::auth::tenant_access::{TenantAccess, role_name};
use crate::body::JsonBody;
use crate::error::{ApiError, ErrorCode, ProblemDetails};
use crate::request_context::ClientOrigin;
use crate::routes::tenants::TenantPath;
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct MemberView {
    pub user_id: UserId,
    pub email: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

impl From<tenant_users::Model> for MemberView {
    fn from(m: tenant_users::Model) -> Self {
        Self { user_id: m.user_id, email: m.email, role: m.role, created_at: m.created_at }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct MemberPath {
    pub tenant_id: uuid::Uuid,
    pub user_id: uuid::Uuid,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"role": "admin"}))]
pub struct UpdateMemberRequest {
    #[schema(example = "admin")]
    pub role: Role,
}

const ALL_ROLES: [Role; 4] = [Role::Owner, Role::Admin, Role::Member, Role::Viewer];

/// The roles a member with `role` may not invite for.
fn roles_no_longer_grantable(role: Role) -> Vec<Role> {
    ALL_ROLES
        .into_iter()
        .filter(|invited| !allows(role, Permission::ManageMembers) || !may_manage_role(role, *invited))
        .collect()
}

fn forbidden(detail: &str) -> ApiError {
    ApiError::new(ErrorCode::Forbidden, detail)
}

fn last_owner() -> ApiError {
    ApiError::new(ErrorCode::Conflict, "A tenant must keep at least one owner; make someone else owner first.")
}

/// The members of a tenant.
#[utoipa::path(
    tag = "members",
    params(TenantPath),
    responses((status = 200, body = Vec<MemberView>), (status = 404, body = ProblemDetails)),
)]
#[get("/v1/tenants/{tenant_id}/members")]
pub async fn list_members(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<TenantPath>,
) -> Result<HttpResponse, ApiError> {
    let access = TenantAccess::begin(&state, &principal, TenantId(path.tenant_id), Permission::ReadTenant).await?;
    let members: Vec<MemberView> = tenant_users::list(&access.txn).await?.into_iter().map(Into::into).collect();
    access.commit().await?;
    Ok(HttpResponse::Ok().json(members))
}

/// Change a member's role (owner, admin; only owners grant or take away the owner role).
#[utoipa::path(
    tag = "members",
    params(MemberPath),
    request_body = UpdateMemberRequest,
    responses(
        (status = 200, body = MemberView),
        (status = 403, body = ProblemDetails),
        (status = 404, body = ProblemDetails),
        (status = 409, description = "Would leave the tenant without an owner", body = ProblemDetails),
    ),
)]
#[patch("/v1/tenants/{tenant_id}/members/{user_id}")]
pub async fn update_member(
    state: web::Data<AppState>,
    principal: Principal,
    origin: ClientOrigin,
    path: web::Path<MemberPath>,
    body: JsonBody<UpdateMemberRequest>,
) -> Result<HttpResponse, ApiError> {
    let access = TenantAccess::begin(&state, &principal, TenantId(path.tenant_id), Permission::ManageMembers).await?;
    let member = tenant_users::find_for_user(&access.txn, UserId(path.user_id))
        .await?
        .ok_or_else(|| ApiError::not_found("Member"))?;
    let (from, to) = (member.role, body.role);
    if !may_manage_role(access.role, from) || !may_manage_role(access.role, to) {
        return Err(forbidden("Only owners can grant the owner role or change an owner."));
    }
    if from == Role::Owner && to != Role::Owner && tenant_users::lock_and_count_owners(&access.txn).await? < 2 {
        return Err(last_owner());
    }
    let updated = tenant_users::set_role(&access.txn, member, to).await?;
    // Invitations this member sent for roles they can no longer grant die with the demotion. (Their API keys are
    // capped by their current role at every request, so they need nothing here.)
    let invitations_revoked =
        invitations::revoke_pending_sent_by(&access.txn, updated.user_id, &roles_no_longer_grantable(to)).await?;
    access
        .audit(
            "member.role_change",
            "member",
            updated.user_id,
            serde_json::json!({
                "from": role_name(from), "to": role_name(to), "invitations_revoked": invitations_revoked,
            }),
            &origin.0,
        )
        .await?;
    access.commit().await?;
    Ok(HttpResponse::Ok().json(MemberView::from(updated)))
}

/// Remove a member (owner, admin), or leave the tenant (anyone, for themselves).
#[utoipa::path(
    tag = "members",
    params(MemberPath),
    responses(
        (status = 204),
        (status = 403, body = ProblemDetails),
        (status = 404, body = ProblemDetails),
        (status = 409, description = "Would leave the tenant without an owner", body = ProblemDetails),
    ),
)]
#[delete("/v1/tenants/{tenant_id}/members/{user_id}")]
pub async fn remove_member(
    state: web::Data<AppState>,
    principal: Principal,
    origin: ClientOrigin,
    path: web::Path<MemberPath>,
) -> Result<HttpResponse, ApiError> {
    let target = UserId(path.user_id);
    let leaving = matches!(&principal, Principal::User(u) if u.user.id == target);
    let permission = if leaving { Permission::ReadTenant } else { Permission::ManageMembers };
    let access = TenantAccess::begin(&state, &principal, TenantId(path.tenant_id), permission).await?;
    let member =
        tenant_users::find_for_user(&access.txn, target).await?.ok_or_else(|| ApiError::not_found("Member"))?;
    if !leaving && !may_manage_role(access.role, member.role) {
        return Err(forbidden("Only owners can remove an owner."));
    }
    if member.role == Role::Owner && tenant_users::lock_and_count_owners(&access.txn).await? < 2 {
        return Err(last_owner());
    }
    let role = member.role;
    tenant_users::remove(&access.txn, member).await?;
    // Nothing the former member set up keeps acting for them: their pending invitations and API keys are revoked.
    let invitations_revoked = invitations::revoke_pending_sent_by(&access.txn, target, &ALL_ROLES).await?;
    let api_keys_revoked = api_keys::revoke_created_by(&access.txn, target).await?;
    access
        .audit(
            if leaving { "member.leave" } else { "member.remove" },
            "member",
            target,
            serde_json::json!({
                "role": role_name(role), "invitations_revoked": invitations_revoked, "api_keys_revoked": api_keys_revoked,
            }),
            &origin.0,
        )
        .await?;
    access.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}
