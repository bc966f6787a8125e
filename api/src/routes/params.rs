//! Path extractors shared by the routes: one struct per path shape, named after the resource it selects. Each is
//! also the `params(..)` of the operations that take it, so the spec and the router agree on the names.

use serde::Deserialize;

/// `/v1/tenants/{tenant_id}`.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct TenantPath {
    pub tenant_id: uuid::Uuid,
}

/// `/v1/tenants/{tenant_id}/members/{user_id}`.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct MemberPath {
    pub tenant_id: uuid::Uuid,
    pub user_id: uuid::Uuid,
}

/// `/v1/tenants/{tenant_id}/invitations/{invitation_id}`.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct InvitationPath {
    pub tenant_id: uuid::Uuid,
    pub invitation_id: uuid::Uuid,
}

/// `/v1/tenants/{tenant_id}/api-keys/{api_key_id}`.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct ApiKeyPath {
    pub tenant_id: uuid::Uuid,
    pub api_key_id: uuid::Uuid,
}

/// `/v1/tenants/{tenant_id}/sync-runs/{sync_run_id}`.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct SyncRunPath {
    pub tenant_id: uuid::Uuid,
    pub sync_run_id: uuid::Uuid,
}

/// `/v1/tenants/{tenant_id}/products/{product_id}`.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct ProductPath {
    pub tenant_id: uuid::Uuid,
    /// TestIO's id of the product.
    pub product_id: i64,
}

/// `/v1/tenants/{tenant_id}/tests/{test_id}`.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct TestPath {
    pub tenant_id: uuid::Uuid,
    /// TestIO's id of the test.
    pub test_id: i64,
}

/// `/v1/tenants/{tenant_id}/bugs/{bug_id}`.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct BugPath {
    pub tenant_id: uuid::Uuid,
    /// TestIO's id of the bug.
    pub bug_id: i64,
}
