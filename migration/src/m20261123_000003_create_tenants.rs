//! `tenants`: the organisations. A global table (it *is* the tenant, and billing webhooks and the sync scheduler look
//! tenants up across the platform); access to a tenant is granted by `tenant_users`, which is tenant-owned.

use sea_orm_migration::prelude::*;

use crate::sql::run;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(
            manager,
            r#"
            CREATE TABLE tenants (
                id                     uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
                name                   text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
                slug                   text        NOT NULL CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
                plan                   text        NOT NULL DEFAULT 'free' CHECK (plan IN ('free', 'pro', 'enterprise')),
                stripe_customer_id     text,
                stripe_subscription_id text,
                subscription_status    text        CHECK (subscription_status IN ('incomplete', 'incomplete_expired',
                                                   'trialing', 'active', 'past_due', 'canceled', 'unpaid', 'paused')),
                created_at             timestamptz NOT NULL DEFAULT now(),
                updated_at             timestamptz NOT NULL DEFAULT now(),
                active                 boolean     NOT NULL DEFAULT true,
                CONSTRAINT tenants_slug_key UNIQUE (slug),
                CONSTRAINT tenants_stripe_customer_id_key UNIQUE (stripe_customer_id),
                CONSTRAINT tenants_stripe_subscription_id_key UNIQUE (stripe_subscription_id)
            );
            CREATE TRIGGER tenants_set_updated_at BEFORE UPDATE ON tenants
                FOR EACH ROW EXECUTE FUNCTION set_updated_at();
            GRANT SELECT, INSERT, UPDATE, DELETE ON tenants TO testio_runtime;
            "#,
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, "DROP TABLE tenants;").await
    }
}
