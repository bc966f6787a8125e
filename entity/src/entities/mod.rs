//! One module per table. Global tables: `users`, `tenants`. Tenant-owned (row-level security): `tenant_users`,
//! `audit_logs`, `invitations`, `api_keys`, `testio_connections` (the sync's tables are in `crate::mirror` and
//! `crate::sync`).

pub mod api_keys;
pub mod audit_logs;
pub mod email_verifications;
pub mod invitations;
pub mod refresh_tokens;
pub mod sessions;
pub mod tenant_users;
pub mod tenants;
pub mod testio_connections;
pub mod users;
