//! The data layer shared by the API and the worker: sea-orm entities, the queries on them, the id newtypes, and
//! [`TenantTxn`], the only handle through which tenant-owned tables are reached.
//!
//! Global tables (`users`, `tenants`) are reached through any `&impl ConnectionTrait`. Tenant-owned tables
//! (`tenant_users`, `audit_logs`, and every table the sync adds) are under Postgres row-level security keyed on the
//! transaction-local setting `app.tenant_id`; only [`TenantTxn::begin`] sets it, so a query run anywhere else sees no
//! tenant rows at all.

pub mod audit;
pub mod auth_throttle;
pub mod db;
pub mod entities;
pub mod ids;
pub mod mirror;
pub mod role_check;
pub mod sync_schedule;
pub mod telemetry;
pub mod tenancy;
pub mod token_cipher;

pub use entities::{
    api_keys, audit_logs, email_verifications, invitations, refresh_tokens, sessions, sync_runs, tenant_users, tenants,
    testio_connections, users,
};
pub use ids::{TenantId, UserId};
pub use tenancy::{PLATFORM_TENANT, TenantTxn, UserTxn};
