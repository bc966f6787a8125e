//! Authenticating a request in the statement that binds its transaction to the tenant (issue 12, per-request cost).
//!
//! A tenant request used to read the session, then the user, then open its transaction, bind it to the tenant, read
//! the membership and only then do its work. Two functions fold the binding and every check into the first statement
//! after `BEGIN`:
//!
//! - `app_authorize_user(tenant, user, session)` sets `app.tenant_id` for the rest of the transaction and returns one
//!   row when the session exists and belongs to the user: whether the session is still open (not revoked, not
//!   expired), whether the user's account is enabled, and the user's role in the tenant (`NULL`: not a member).
//! - `app_authorize_api_key(tenant, key)` sets `app.tenant_id` likewise and returns the key's row with its creator's
//!   current role in the tenant and whether the creator's account is enabled (`entity::api_keys::KeyWithCreator`).
//!
//! Both only read and decide nothing: the caller compares the key's secret and applies the rules. They are `SECURITY
//! INVOKER`, so they run with the runtime role's rights under row-level security (the membership and the key are
//! read *after* the setting, through the tenant policies), and give that role nothing it could not do itself. The
//! setting is made with `is_local = true`: a function's `SET search_path` clause restores only `search_path` on exit,
//! so `app.tenant_id` lasts until the transaction ends, exactly as `SELECT set_config(..., true)` does.

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
            CREATE FUNCTION app_authorize_user(p_tenant uuid, p_user uuid, p_session uuid)
                RETURNS TABLE (session_active boolean, user_active boolean, role text)
                LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = public, pg_temp AS $fn$
            BEGIN
                PERFORM set_config('app.tenant_id', p_tenant::text, true);
                RETURN QUERY
                    SELECT s.revoked_at IS NULL AND s.expires_at > now(), u.disabled_at IS NULL, m.role
                      FROM sessions s
                      JOIN users u ON u.id = s.user_id
                      LEFT JOIN tenant_users m ON m.tenant_id = p_tenant AND m.user_id = s.user_id
                     WHERE s.id = p_session AND s.user_id = p_user;
            END
            $fn$;

            CREATE FUNCTION app_authorize_api_key(p_tenant uuid, p_key uuid)
                RETURNS TABLE (tenant_id uuid, id uuid, name text, prefix text, secret_hash bytea, role text,
                               created_by uuid, created_at timestamptz, last_used_at timestamptz,
                               revoked_at timestamptz, creator_role text, creator_active boolean)
                LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = public, pg_temp AS $fn$
            BEGIN
                PERFORM set_config('app.tenant_id', p_tenant::text, true);
                RETURN QUERY
                    SELECT k.tenant_id, k.id, k.name, k.prefix, k.secret_hash, k.role, k.created_by, k.created_at,
                           k.last_used_at, k.revoked_at, m.role, coalesce(u.disabled_at IS NULL, false)
                      FROM api_keys k
                      LEFT JOIN tenant_users m ON m.tenant_id = k.tenant_id AND m.user_id = k.created_by
                      LEFT JOIN users u ON u.id = k.created_by
                     WHERE k.tenant_id = p_tenant AND k.id = p_key;
            END
            $fn$;

            REVOKE ALL ON FUNCTION app_authorize_user(uuid, uuid, uuid), app_authorize_api_key(uuid, uuid)
                FROM PUBLIC;
            GRANT EXECUTE ON FUNCTION app_authorize_user(uuid, uuid, uuid), app_authorize_api_key(uuid, uuid)
                TO testio_runtime;
            "#,
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(
            manager,
            "DROP FUNCTION app_authorize_api_key(uuid, uuid); DROP FUNCTION app_authorize_user(uuid, uuid, uuid);",
        )
        .await
    }
}
