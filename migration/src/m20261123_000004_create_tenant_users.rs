//! `tenant_users`: memberships with roles. Tenant-owned: keys lead with `tenant_id`, RLS forced.

use sea_orm_migration::prelude::*;

use crate::sql::{run, tenant_rls};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(
            manager,
            r#"
            CREATE TABLE tenant_users (
                tenant_id  uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
                id         uuid        NOT NULL DEFAULT gen_random_uuid(),
                user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
                email      text        NOT NULL,
                role       text        NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
                created_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (tenant_id, id),
                CONSTRAINT tenant_users_tenant_id_user_id_key UNIQUE (tenant_id, user_id)
            );
            -- Serves the ON DELETE CASCADE from users and "my memberships" lookups.
            CREATE INDEX tenant_users_user_id_idx ON tenant_users (user_id);
            GRANT SELECT, INSERT, UPDATE, DELETE ON tenant_users TO testio_runtime;
            "#,
        )
        .await?;
        run(manager, &tenant_rls("tenant_users")).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, "DROP TABLE tenant_users;").await
    }
}
