//! Identity: login sessions and rotating refresh tokens, the login throttle, invitations and API keys, the policy that
//! lets a user read their own memberships across tenants, and the platform tenant that holds the audit trail of
//! events belonging to no organisation (logins, session revocations, platform-admin changes).

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
            INSERT INTO tenants (id, name, slug, plan, active)
                VALUES ('00000000-0000-0000-0000-000000000000', 'Platform', 'platform', 'enterprise', false);

            -- A login session; refresh tokens rotate within it. Revoking it ends the session at once: access tokens
            -- carry its id and every request checks it.
            CREATE TABLE sessions (
                id             uuid        PRIMARY KEY,
                user_id        uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
                created_at     timestamptz NOT NULL DEFAULT now(),
                expires_at     timestamptz NOT NULL,
                revoked_at     timestamptz,
                revoked_reason text        CHECK (revoked_reason IN ('logout', 'refresh_token_reuse', 'password_change',
                                                                     'admin')),
                user_agent     text        CHECK (length(user_agent) <= 1024),
                ip_address     inet
            );
            CREATE INDEX sessions_user_id_idx ON sessions (user_id);

            -- Single-use refresh tokens, stored as SHA-256 of a 256-bit random secret.
            CREATE TABLE refresh_tokens (
                id         uuid        PRIMARY KEY,
                session_id uuid        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
                token_hash bytea       NOT NULL CONSTRAINT refresh_tokens_token_hash_key UNIQUE,
                created_at timestamptz NOT NULL DEFAULT now(),
                expires_at timestamptz NOT NULL,
                used_at    timestamptz
            );
            CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);

            -- Failed-login counters per account and per client address.
            CREATE TABLE auth_throttle (
                key               text        PRIMARY KEY CHECK (length(key) <= 300),
                failures          integer     NOT NULL,
                window_started_at timestamptz NOT NULL,
                locked_until      timestamptz
            );

            CREATE TABLE invitations (
                tenant_id   uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
                id          uuid        NOT NULL,
                email       text        NOT NULL,
                role        text        NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
                token_hash  bytea       NOT NULL,
                invited_by  uuid        REFERENCES users (id) ON DELETE SET NULL,
                created_at  timestamptz NOT NULL DEFAULT now(),
                expires_at  timestamptz NOT NULL,
                accepted_at timestamptz,
                accepted_by uuid        REFERENCES users (id) ON DELETE SET NULL,
                revoked_at  timestamptz,
                PRIMARY KEY (tenant_id, id),
                CONSTRAINT invitations_tenant_id_token_hash_key UNIQUE (tenant_id, token_hash)
            );

            CREATE TABLE api_keys (
                tenant_id    uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
                id           uuid        NOT NULL,
                name         text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
                prefix       text        NOT NULL,
                secret_hash  bytea       NOT NULL,
                role         text        NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
                created_by   uuid        REFERENCES users (id) ON DELETE SET NULL,
                created_at   timestamptz NOT NULL DEFAULT now(),
                last_used_at timestamptz,
                revoked_at   timestamptz,
                PRIMARY KEY (tenant_id, id)
            );

            -- A user may read their own memberships in every tenant (for /v1/me and the tenant list), and nothing
            -- else of those tenants. Permissive policies combine with OR, for SELECT only.
            CREATE POLICY tenant_users_own_memberships ON tenant_users FOR SELECT
                USING (user_id = (select nullif(current_setting('app.user_id', true), '')::uuid));

            GRANT SELECT, INSERT, UPDATE ON sessions TO testio_runtime;
            GRANT SELECT, INSERT, UPDATE ON refresh_tokens TO testio_runtime;
            GRANT SELECT, INSERT, UPDATE, DELETE ON auth_throttle TO testio_runtime;
            GRANT SELECT, INSERT, UPDATE ON invitations TO testio_runtime;
            GRANT SELECT, INSERT, UPDATE ON api_keys TO testio_runtime;
            "#,
        )
        .await?;
        run(manager, &tenant_rls("invitations")).await?;
        run(manager, &tenant_rls("api_keys")).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(
            manager,
            r#"
            DROP POLICY tenant_users_own_memberships ON tenant_users;
            DROP TABLE api_keys;
            DROP TABLE invitations;
            DROP TABLE auth_throttle;
            DROP TABLE refresh_tokens;
            DROP TABLE sessions;
            DELETE FROM tenants WHERE id = '00000000-0000-0000-0000-000000000000';
            "#,
        )
        .await
    }
}
