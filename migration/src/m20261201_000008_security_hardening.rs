//! Security hardening after the December review:
//!
//! - **`tenants` is guarded**: the runtime role may change or delete a tenant row only inside that tenant's own
//!   transaction (`app.tenant_id`). The one cross-tenant path left open is explicit: the sync scheduler may move a
//!   tenant's due time and lease (`sync_due_at`, `sync_lease_owner`, `sync_lease_expires_at`) from anywhere. A
//!   `DELETE FROM tenants` for another tenant fails instead of cascading through RLS-blind foreign keys. Superusers and
//!   the owner role (operators, migrations) are not subject to the guard, as they are not to RLS.
//! - **The database's PUBLIC privileges** (CONNECT, TEMP) are revoked; the runtime group gets CONNECT. Without TEMP a
//!   session cannot create a temporary table that shadows a real one.
//! - **Email verification**: `users.email_verified_at` and single-use, expiring, hashed `email_verifications` tokens.
//! - **Attempt throttling**: `auth_throttle_admit`, which counts an attempt under several keys at once, atomically, or
//!   refuses it without counting anything (see `entity::auth_throttle`).
//! - **Connections outside the allowlist**: the status `base_url_not_allowed`.

use sea_orm_migration::prelude::*;

use crate::sql::{CURRENT_TENANT, run};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Revokes what PUBLIC gets on every new database and grants CONNECT to the runtime group, on the current database.
/// A database's privileges are not copied by `CREATE DATABASE .. TEMPLATE`, so whoever clones one runs
/// [`crate::bootstrap::database_privileges_sql`] again.
pub const DATABASE_PRIVILEGES: &str = r#"
DO $$
BEGIN
    EXECUTE format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO testio_runtime', current_database());
END
$$;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, DATABASE_PRIVILEGES).await?;
        run(
            manager,
            &format!(
                r#"
            CREATE FUNCTION tenants_guard() RETURNS trigger LANGUAGE plpgsql AS $fn$
            DECLARE
                scheduling constant text[] := ARRAY['sync_due_at', 'sync_lease_owner', 'sync_lease_expires_at'];
            BEGIN
                IF OLD.id IS NOT DISTINCT FROM {CURRENT_TENANT}
                   OR NOT pg_has_role(current_user, 'testio_runtime', 'MEMBER')
                   OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
                    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
                END IF;
                IF TG_OP = 'UPDATE' AND (to_jsonb(NEW) - scheduling) = (to_jsonb(OLD) - scheduling) THEN
                    RETURN NEW;
                END IF;
                RAISE EXCEPTION 'tenant % can only be % inside its own transaction (app.tenant_id)',
                    OLD.id, CASE WHEN TG_OP = 'DELETE' THEN 'deleted' ELSE 'changed' END
                    USING ERRCODE = 'insufficient_privilege';
            END
            $fn$;
            CREATE TRIGGER tenants_guard BEFORE UPDATE OR DELETE ON tenants
                FOR EACH ROW EXECUTE FUNCTION tenants_guard();

            ALTER TABLE users ADD COLUMN email_verified_at timestamptz;

            -- A proof that whoever holds the mailbox of `email` asked to verify it: SHA-256 of a 256-bit random token.
            CREATE TABLE email_verifications (
                id         uuid        PRIMARY KEY,
                user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
                email      text        NOT NULL,
                token_hash bytea       NOT NULL CONSTRAINT email_verifications_token_hash_key UNIQUE,
                created_at timestamptz NOT NULL DEFAULT now(),
                expires_at timestamptz NOT NULL,
                used_at    timestamptz
            );
            CREATE INDEX email_verifications_user_id_idx ON email_verifications (user_id, created_at DESC);
            GRANT SELECT, INSERT, UPDATE ON email_verifications TO testio_runtime;

            ALTER TABLE testio_connections DROP CONSTRAINT testio_connections_status_check;
            ALTER TABLE testio_connections ADD CONSTRAINT testio_connections_status_check
                CHECK (status IN ('active', 'needs_token', 'base_url_not_allowed'));

            -- Keys name an account and an address together (`login:<email>|<address>`), which can exceed 200 chars.
            ALTER TABLE auth_throttle DROP CONSTRAINT auth_throttle_key_check;
            ALTER TABLE auth_throttle ADD CONSTRAINT auth_throttle_key_check CHECK (length(key) <= 400);

            -- Counts one attempt under every limit, or under none: if any key is locked, nothing changes and the
            -- seconds left on the longest lock are returned. Otherwise each key's count goes up (a new window starts
            -- once the old one has passed) and a key whose count reaches its threshold is locked at once, for
            -- base * 2^(count - threshold) seconds (at most max): the attempt that reaches the limit is the last one
            -- let through until the lock ends, however many arrive at the same moment. Rows are locked in key order,
            -- so concurrent callers never deadlock. Returns NULL when the attempt may proceed.
            -- `limits`: a JSON array of objects with key, threshold, window_secs, base_secs and max_secs.
            CREATE FUNCTION auth_throttle_admit(limits jsonb) RETURNS float8
                LANGUAGE plpgsql SET search_path = public, pg_temp AS $fn$
            DECLARE
                keys text[] := ARRAY(SELECT l.key FROM jsonb_to_recordset(limits) AS l(key text) ORDER BY 1);
                wait float8;
            BEGIN
                INSERT INTO auth_throttle (key, failures, window_started_at)
                    SELECT k, 0, now() FROM unnest(keys) AS k ORDER BY k
                    ON CONFLICT (key) DO NOTHING;
                -- Lock every row first, with no other condition: a condition outside a locking sub-select is pushed
                -- into it, and rows it filters out are never locked.
                PERFORM 1 FROM auth_throttle t WHERE t.key = ANY (keys) ORDER BY t.key FOR UPDATE;
                SELECT extract(epoch FROM max(t.locked_until) - now()) INTO wait
                  FROM auth_throttle t WHERE t.key = ANY (keys) AND t.locked_until > now();
                IF wait IS NOT NULL THEN
                    RETURN wait;
                END IF;
                UPDATE auth_throttle t
                   SET failures = c.count,
                       window_started_at = CASE WHEN c.fresh THEN now() ELSE t.window_started_at END,
                       locked_until = CASE WHEN c.count >= c.threshold
                                           THEN now() + make_interval(secs => least(c.max_secs,
                                                    c.base_secs * power(2, c.count - c.threshold)))
                                           END
                  FROM (SELECT i.key, i.threshold, i.base_secs, i.max_secs, x.fresh,
                               CASE WHEN x.fresh THEN 1 ELSE x.failures + 1 END AS count
                          FROM jsonb_to_recordset(limits)
                                   AS i(key text, threshold integer, window_secs float8, base_secs float8,
                                        max_secs float8)
                          JOIN LATERAL (SELECT t2.failures,
                                               t2.window_started_at <= now() - make_interval(secs => i.window_secs)
                                                   AS fresh
                                          FROM auth_throttle t2 WHERE t2.key = i.key) x ON true) c
                 WHERE t.key = c.key;
                RETURN NULL;
            END
            $fn$;
            GRANT EXECUTE ON FUNCTION auth_throttle_admit(jsonb) TO testio_runtime;
            "#
            ),
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(
            manager,
            r#"
            DROP FUNCTION auth_throttle_admit(jsonb);
            DELETE FROM auth_throttle WHERE length(key) > 300;
            ALTER TABLE auth_throttle DROP CONSTRAINT auth_throttle_key_check;
            ALTER TABLE auth_throttle ADD CONSTRAINT auth_throttle_key_check CHECK (length(key) <= 300);
            ALTER TABLE testio_connections NO FORCE ROW LEVEL SECURITY;
            UPDATE testio_connections SET status = 'needs_token' WHERE status = 'base_url_not_allowed';
            ALTER TABLE testio_connections FORCE ROW LEVEL SECURITY;
            ALTER TABLE testio_connections DROP CONSTRAINT testio_connections_status_check;
            ALTER TABLE testio_connections ADD CONSTRAINT testio_connections_status_check
                CHECK (status IN ('active', 'needs_token'));
            DROP TABLE email_verifications;
            ALTER TABLE users DROP COLUMN email_verified_at;
            DROP TRIGGER tenants_guard ON tenants;
            DROP FUNCTION tenants_guard();
            DO $$
            BEGIN
                EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO PUBLIC', current_database());
                EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM testio_runtime', current_database());
            END
            $$;
            "#,
        )
        .await
    }
}
