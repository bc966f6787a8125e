//! The runtime group role and the schema-level privileges. Roles are cluster-wide and shared by every database of the
//! cluster (test databases included), so `down` revokes what this migration granted but never drops the role.

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
            DO $$
            BEGIN
                IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'testio_runtime') THEN
                    CREATE ROLE testio_runtime NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
                END IF;
            END
            $$;
            -- Nobody but the owner creates objects, and only granted roles may use the schema at all.
            REVOKE ALL ON SCHEMA public FROM PUBLIC;
            GRANT USAGE ON SCHEMA public TO testio_runtime;
            -- /readyz compares the applied migrations with the ones the binary knows.
            GRANT SELECT ON seaql_migrations TO testio_runtime;

            -- Keeps updated_at honest whatever the writer forgets.
            CREATE FUNCTION set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $fn$
            BEGIN
                NEW.updated_at := now();
                RETURN NEW;
            END
            $fn$;
            "#,
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(
            manager,
            r#"
            DROP FUNCTION set_updated_at();
            REVOKE SELECT ON seaql_migrations FROM testio_runtime;
            REVOKE USAGE ON SCHEMA public FROM testio_runtime;
            GRANT USAGE ON SCHEMA public TO PUBLIC;
            "#,
        )
        .await
    }
}
