//! `audit_logs`: the append-only record of privileged and security-relevant actions. Tenant-owned under RLS; the
//! runtime role may only INSERT and SELECT, and a trigger refuses UPDATE and TRUNCATE to everyone, owner included.
//! There is deliberately no foreign key to `tenants`: the record must outlive what it describes.

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
            CREATE TABLE audit_logs (
                tenant_id     uuid        NOT NULL,
                id            uuid        NOT NULL,
                actor_type    text        NOT NULL CHECK (actor_type IN ('user', 'api_key', 'system', 'anonymous')),
                actor_id      uuid,
                action        text        NOT NULL CHECK (action ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$'),
                resource_type text        NOT NULL CHECK (length(resource_type) BETWEEN 1 AND 64),
                resource_id   text        CHECK (length(resource_id) <= 200),
                metadata      jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
                ip_address    inet,
                user_agent    text        CHECK (length(user_agent) <= 1024),
                request_id    text        CHECK (length(request_id) <= 128),
                outcome       text        NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
                created_at    timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (tenant_id, id)
            );
            CREATE INDEX audit_logs_tenant_id_created_at_idx ON audit_logs (tenant_id, created_at DESC, id DESC);

            CREATE FUNCTION audit_logs_append_only() RETURNS trigger LANGUAGE plpgsql AS $fn$
            BEGIN
                RAISE EXCEPTION 'audit_logs is append-only' USING ERRCODE = 'insufficient_privilege';
            END
            $fn$;
            CREATE TRIGGER audit_logs_no_update BEFORE UPDATE ON audit_logs
                FOR EACH ROW EXECUTE FUNCTION audit_logs_append_only();
            CREATE TRIGGER audit_logs_no_truncate BEFORE TRUNCATE ON audit_logs
                FOR EACH STATEMENT EXECUTE FUNCTION audit_logs_append_only();

            GRANT SELECT, INSERT ON audit_logs TO testio_runtime;
            "#,
        )
        .await?;
        run(manager, &tenant_rls("audit_logs")).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, "DROP TABLE audit_logs; DROP FUNCTION audit_logs_append_only();").await
    }
}
