//! One module per table. Global tables: `users`, `tenants`. Tenant-owned (row-level security): `tenant_users`,
//! `audit_logs`.

pub mod api_keys;
pub mod audit_logs;
pub mod invitations;
pub mod refresh_tokens;
pub mod sessions;
pub mod tenant_users;
pub mod tenants;
pub mod users;
