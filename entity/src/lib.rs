//! The data layer shared by the API and the worker: sea-orm entities, the queries on them, the id newtypes, and
//! [`TenantTxn`], the only handle through which tenant-owned tables are reached.
//!
//! Global tables (`users`, `tenants`) are reached through any [`Db`]: the pool, or a `TenantTxn`. Tenant-owned tables
//! (`tenant_users`, `audit_logs`, and every table the sync adds) are under Postgres row-level security keyed on the
//! transaction-local setting `app.tenant_id`; only [`TenantTxn::begin`] (and, for a request, [`request_auth`]) sets it,
//! so a query run anywhere else sees no tenant rows at all.

pub mod audit;
pub mod auth_throttle;
pub mod billing;
pub mod db;
pub mod entities;
pub mod idempotency;
pub mod ids;
pub mod mirror;
pub mod ops;
pub mod plans;
pub mod rate_limits;
pub mod request_auth;
pub mod sync;
pub mod tenancy;

pub use entities::{
    api_keys, audit_logs, email_verifications, invitations, refresh_tokens, sessions, tenant_users, tenants,
    testio_connections, users,
};
pub use ids::{TenantId, UserId};
/// `sync_runs` is a table like those above, so it is named beside them.
pub use sync::runs as sync_runs;
pub use tenancy::{Db, PLATFORM_TENANT, PlatformAuditTxn, TenantTxn, UserTxn};
