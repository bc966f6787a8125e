//! `users`: global (not tenant-owned) accounts. Emails are unique case-insensitively.

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
            CREATE TABLE users (
                id                uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
                email             text        NOT NULL CHECK (length(email) BETWEEN 3 AND 254 AND email = btrim(email)),
                name              text        NOT NULL CHECK (length(name) <= 200),
                avatar_url        text        CHECK (length(avatar_url) <= 2048),
                password_hash     text,
                is_platform_admin boolean     NOT NULL DEFAULT false,
                created_at        timestamptz NOT NULL DEFAULT now(),
                last_login_at     timestamptz,
                disabled_at       timestamptz
            );
            CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
            GRANT SELECT, INSERT, UPDATE ON users TO testio_runtime;
            "#,
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, "DROP TABLE users;").await
    }
}
