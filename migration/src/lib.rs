//! The database schema, as an ordered list of sea-orm migrations, plus the one-time role and database bootstrap.
//!
//! Migrations run as the *owner* role (`MIGRATION_DATABASE_URL`). The API and the worker connect as a login role that
//! is a member of [`RUNTIME_GROUP_ROLE`], owns nothing, and is subject to row-level security: every tenant-owned table
//! is `ENABLE` + `FORCE ROW LEVEL SECURITY` with a policy on `app.tenant_id`, so a query that forgets its tenant filter
//! sees nothing rather than everything.

pub use sea_orm_migration::prelude::*;

pub mod bootstrap;
mod m20261123_000001_runtime_role;
mod m20261123_000002_create_users;
mod m20261123_000003_create_tenants;
mod m20261123_000004_create_tenant_users;
mod m20261123_000005_create_audit_logs;
mod m20261123_000006_identity;
mod m20261123_000007_testio_sync;
pub mod m20261201_000008_security_hardening;
mod m20261201_000009_sync_verification;
pub mod m20261201_000010_mirror_queries;
mod m20261201_000011_request_auth;
mod m20261201_000012_search_text;
mod m20261202_000013_audit_review;
mod m20261202_000014_audit_chain;
mod m20261202_000015_audit_retention;
mod m20261202_000016_throttle_lock_order;
mod m20261202_000017_billing;
mod m20261202_000018_operations;
mod sql;

/// The NOLOGIN group role that holds every privilege the API and the worker need. Login roles are granted membership
/// in it; the migrations grant to it and nothing else.
pub const RUNTIME_GROUP_ROLE: &str = "testio_runtime";

/// The NOLOGIN role that owns the text-search functions of the mirror (see `m20261201_000010_mirror_queries`): the
/// only role for which the mirror's tables are readable across tenants, and only through those two functions.
pub const SEARCH_ROLE: &str = "testio_search";

/// The NOLOGIN role that may read every tenant's audit log (a SELECT-only policy of `true` on `audit_logs`, and
/// nothing else): the platform admins' review switches to it with `SET LOCAL ROLE` for one transaction. Never
/// inherited: see [`AUDIT_GATE_ROLE`].
pub const AUDIT_READER_ROLE: &str = "testio_audit_reader";

/// A NOLOGIN, NOINHERIT role between the runtime group and [`AUDIT_READER_ROLE`]: the group is a member of the gate,
/// the gate of the reader. Membership lets the runtime role `SET ROLE` to the reader; the gate not inheriting, the
/// runtime role never holds the reader's rights (nor its policy) otherwise.
pub const AUDIT_GATE_ROLE: &str = "testio_audit_gate";

/// A fingerprint of the migration sources, computed at build time. Test harnesses key their template database on it,
/// so editing a migration rebuilds the template instead of silently reusing a stale one.
pub const SCHEMA_FINGERPRINT: &str = env!("MIGRATION_SOURCE_FINGERPRINT");

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_runtime_role::Migration),
            Box::new(m20261123_000002_create_users::Migration),
            Box::new(m20261123_000003_create_tenants::Migration),
            Box::new(m20261123_000004_create_tenant_users::Migration),
            Box::new(m20261123_000005_create_audit_logs::Migration),
            Box::new(m20261123_000006_identity::Migration),
            Box::new(m20261123_000007_testio_sync::Migration),
            Box::new(m20261201_000008_security_hardening::Migration),
            Box::new(m20261201_000009_sync_verification::Migration),
            Box::new(m20261201_000010_mirror_queries::Migration),
            Box::new(m20261201_000011_request_auth::Migration),
            Box::new(m20261201_000012_search_text::Migration),
            Box::new(m20261202_000013_audit_review::Migration),
            Box::new(m20261202_000014_audit_chain::Migration),
            Box::new(m20261202_000015_audit_retention::Migration),
            Box::new(m20261202_000016_throttle_lock_order::Migration),
            Box::new(m20261202_000017_billing::Migration),
            Box::new(m20261202_000018_operations::Migration),
        ]
    }
}

/// Names of every migration this build knows, oldest first: what "at head" means for `/readyz`.
pub fn expected_versions() -> Vec<String> {
    Migrator::migrations().iter().map(|m| m.name().to_owned()).collect()
}
