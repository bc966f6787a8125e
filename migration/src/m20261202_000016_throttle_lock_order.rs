//! Throttle bookkeeping without deadlocks: a successful sign-in's settling (clearing the caller's own keys, taking one
//! attempt back on shared ones) locked its rows in whatever order its statement met them, while a concurrent
//! attempt's `auth_throttle_admit` locks the same keys in key order; two sign-ins of one account from one address at
//! once could then wait on each other (a 500, found by the sign-in benchmark with 16 clients). `auth_throttle_settle`
//! locks every key it touches in key order first, like the admission, and then changes them, in one statement.

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
            CREATE FUNCTION auth_throttle_settle(clear jsonb, forgive jsonb) RETURNS void
                LANGUAGE plpgsql SET search_path = public, pg_temp AS $fn$
            BEGIN
                PERFORM 1 FROM auth_throttle t
                  WHERE t.key IN (SELECT jsonb_array_elements_text(clear)
                                  UNION SELECT l.key FROM jsonb_to_recordset(forgive) AS l(key text))
                  ORDER BY t.key FOR UPDATE;
                DELETE FROM auth_throttle WHERE key IN (SELECT jsonb_array_elements_text(clear));
                UPDATE auth_throttle t
                   SET failures = greatest(t.failures - 1, 0),
                       locked_until = CASE WHEN t.failures - 1 < l.threshold THEN NULL ELSE t.locked_until END
                  FROM jsonb_to_recordset(forgive) AS l(key text, threshold integer)
                 WHERE t.key = l.key;
            END
            $fn$;
            REVOKE ALL ON FUNCTION auth_throttle_settle(jsonb, jsonb) FROM PUBLIC;
            GRANT EXECUTE ON FUNCTION auth_throttle_settle(jsonb, jsonb) TO testio_runtime;
            "#,
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, "DROP FUNCTION auth_throttle_settle(jsonb, jsonb);").await
    }
}
