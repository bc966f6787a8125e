//! The audit log's event shape for review (issue 13), and the indexes its review API reads through.
//!
//! - **Target** instead of resource: `resource_type`/`resource_id` become `target_type`/`target_id`, and each event
//!   keeps the display names of its actor and target *as they were* (`actor_display`, `target_display`: an email, a
//!   key's name, a tenant's name), so the log still reads right after a rename or a deletion.
//! - **Actor types**: `worker` joins `user`, `api_key`, `system` (operator commands, the demo bootstrap) and
//!   `anonymous` (a sign-in with an unknown email).
//! - **`schema_version`**: 1 for the events written before this migration, 2 from now on, so a reader knows which
//!   fields an event can have.
//! - **Search**: `search_text`, a stored generated column holding the actor's and target's names, the target id and
//!   the metadata, lower-cased, with a trigram index. As for the mirror (migration 10), `LIKE` is not leakproof, so
//!   under row-level security no pattern can reach that index: `audit_logs_matching` (SECURITY DEFINER, owned by the
//!   NOLOGIN `testio_search` role, which alone has a SELECT policy of `true`) returns the newest matching events of
//!   the *transaction's* tenant before a position, and the rows are then read under RLS as always.
//! - **Platform review**: the NOLOGIN `testio_audit_reader` (made by the bootstrap) has SELECT on `audit_logs` and a
//!   policy of `true`, nothing else. The runtime role can `SET LOCAL ROLE` to it (it is a member through the
//!   non-inheriting `testio_audit_gate`) but never holds its rights otherwise; the platform admins' routes switch to
//!   it for one read-only transaction. A time index without the tenant serves that cross-tenant list, and
//!   `audit_logs_matching_platform` (executable by the reader alone) its text search.
//! - **One index per filter**, each leading with `tenant_id` and ending with the list's order (`created_at DESC, id
//!   DESC`), so any single filter plus a cursor is one ordered index scan.

use sea_orm_migration::prelude::*;

use crate::sql::run;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// What `q` matches, lower-cased: the actor's and target's display names, the target id and the metadata.
pub const AUDIT_SEARCH: &str = "lower(coalesce(actor_display, '') || ' ' || coalesce(target_display, '') || ' ' || \
                                coalesce(target_id, '') || ' ' || metadata::text)";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(
            manager,
            &format!(
                r#"
            ALTER TABLE audit_logs RENAME COLUMN resource_type TO target_type;
            ALTER TABLE audit_logs RENAME COLUMN resource_id TO target_id;
            ALTER TABLE audit_logs RENAME CONSTRAINT audit_logs_resource_type_check TO audit_logs_target_type_check;
            ALTER TABLE audit_logs RENAME CONSTRAINT audit_logs_resource_id_check TO audit_logs_target_id_check;
            ALTER TABLE audit_logs DROP CONSTRAINT audit_logs_actor_type_check;
            ALTER TABLE audit_logs ADD CONSTRAINT audit_logs_actor_type_check
                CHECK (actor_type IN ('user', 'api_key', 'system', 'worker', 'anonymous'));
            ALTER TABLE audit_logs
                ADD COLUMN actor_display  text CHECK (length(actor_display) <= 320),
                ADD COLUMN target_display text CHECK (length(target_display) <= 320),
                ADD COLUMN schema_version smallint NOT NULL DEFAULT 1 CHECK (schema_version >= 1);
            ALTER TABLE audit_logs ALTER COLUMN schema_version SET DEFAULT 2;
            ALTER TABLE audit_logs ADD COLUMN search_text text NOT NULL GENERATED ALWAYS AS ({AUDIT_SEARCH}) STORED;

            CREATE INDEX audit_logs_action_idx ON audit_logs (tenant_id, action, created_at DESC, id DESC);
            CREATE INDEX audit_logs_actor_idx ON audit_logs (tenant_id, actor_id, created_at DESC, id DESC);
            CREATE INDEX audit_logs_actor_type_idx ON audit_logs (tenant_id, actor_type, created_at DESC, id DESC);
            CREATE INDEX audit_logs_target_idx
                ON audit_logs (tenant_id, target_type, target_id, created_at DESC, id DESC);
            CREATE INDEX audit_logs_outcome_idx ON audit_logs (tenant_id, outcome, created_at DESC, id DESC);
            CREATE INDEX audit_logs_search ON audit_logs USING gin (search_text gin_trgm_ops);

            -- The platform review's roles are cluster-wide: `migration bootstrap` creates them.
            DO $$
            BEGIN
                IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'testio_audit_reader')
                   OR NOT pg_has_role('testio_runtime', 'testio_audit_reader', 'MEMBER')
                   OR pg_has_role('testio_runtime', 'testio_audit_reader', 'USAGE') THEN
                    RAISE EXCEPTION 'the role testio_audit_reader is missing, or testio_runtime cannot SET ROLE to '
                                    'it, or holds its rights without it: run the bootstrap (`migration bootstrap`, '
                                    'as a superuser) before migrating';
                END IF;
            END
            $$;
            -- Platform-wide review: the reader sees every tenant's events (and may only read them), newest first.
            GRANT USAGE ON SCHEMA public TO testio_audit_reader;
            GRANT SELECT ON audit_logs TO testio_audit_reader;
            CREATE POLICY audit_logs_platform_review ON audit_logs FOR SELECT TO testio_audit_reader USING (true);
            CREATE INDEX audit_logs_platform_time_idx ON audit_logs (created_at DESC, id DESC);

            GRANT SELECT ON audit_logs TO testio_search;
            CREATE POLICY audit_logs_search ON audit_logs FOR SELECT TO testio_search USING (true);
            -- The newest `max_rows` events of `tenants` (NULL: every tenant) whose text matches `pattern` (a LIKE
            -- pattern, lower-cased by the caller), strictly before (`before_at`, `before_id`) in the list's order
            -- (NULL: from the newest). A common pattern is found by testing the newest 2,000 events in order (a
            -- probe); when they hold fewer than `max_rows` matches and there are more events, the pattern is rare,
            -- and the trigram index finds it (`audit_logs_search_rare`, where only bitmap scans are allowed: its
            -- estimate of a LIKE pattern's selectivity would otherwise lead Postgres down the time index over every
            -- event). Internal: called by the two functions below, executable by nobody else.
            CREATE FUNCTION audit_logs_search_rare(tenants uuid[], pattern text, before_at timestamptz,
                                                   before_id uuid, max_rows integer)
                RETURNS TABLE (id uuid, created_at timestamptz)
                LANGUAGE sql STABLE SECURITY DEFINER
                SET search_path = public, pg_temp SET enable_indexscan = off SET enable_seqscan = off AS $fn$
                SELECT a.id, a.created_at FROM audit_logs a
                 WHERE (tenants IS NULL OR a.tenant_id = ANY(tenants))
                   AND a.search_text LIKE pattern
                   AND (before_at IS NULL OR (a.created_at, a.id) < (before_at, before_id))
                 ORDER BY a.created_at DESC, a.id DESC
                 LIMIT max_rows;
            $fn$;
            CREATE FUNCTION audit_logs_search(tenants uuid[], pattern text, before_at timestamptz, before_id uuid,
                                              max_rows integer)
                RETURNS TABLE (id uuid, created_at timestamptz)
                LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
            DECLARE
                scope text := CASE WHEN tenants IS NULL THEN 'true'
                                   WHEN cardinality(tenants) = 1 THEN 'a.tenant_id = $1[1]'
                                   ELSE 'a.tenant_id = ANY($1)' END;
                recent text;
                hits integer;
                seen integer;
            BEGIN
                recent := format(
                    'SELECT a.id, a.created_at, a.search_text FROM audit_logs a
                      WHERE %s AND ($3 IS NULL OR (a.created_at, a.id) < ($3, $4))
                      ORDER BY a.created_at DESC, a.id DESC LIMIT 2000', scope);
                EXECUTE format('SELECT count(*) FILTER (WHERE w.search_text LIKE $2), count(*) FROM (%s) w', recent)
                   INTO hits, seen USING tenants, pattern, before_at, before_id;
                IF hits >= max_rows OR seen < 2000 THEN
                    RETURN QUERY EXECUTE format(
                        'SELECT w.id, w.created_at FROM (%s) w WHERE w.search_text LIKE $2
                          ORDER BY w.created_at DESC, w.id DESC LIMIT $5', recent)
                        USING tenants, pattern, before_at, before_id, max_rows;
                    RETURN;
                END IF;
                RETURN QUERY SELECT * FROM audit_logs_search_rare(tenants, pattern, before_at, before_id, max_rows);
            END
            $fn$;
            -- A tenant's search: the transaction's tenant (`app.tenant_id`, the setting RLS reads), nothing else.
            CREATE FUNCTION audit_logs_matching(pattern text, before_at timestamptz, before_id uuid, max_rows integer)
                RETURNS TABLE (id uuid, created_at timestamptz)
                LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
                SELECT s.id, s.created_at
                  FROM (SELECT nullif(current_setting('app.tenant_id', true), '')::uuid AS tenant) t,
                       LATERAL audit_logs_search(ARRAY[t.tenant], pattern, before_at, before_id, max_rows) s
                 WHERE t.tenant IS NOT NULL;
            $fn$;
            -- The platform review's search: every tenant (`tenants` NULL) or some; executable by the reader only.
            CREATE FUNCTION audit_logs_matching_platform(pattern text, tenants uuid[], before_at timestamptz,
                                                         before_id uuid, max_rows integer)
                RETURNS TABLE (id uuid, created_at timestamptz)
                LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
                SELECT * FROM audit_logs_search(tenants, pattern, before_at, before_id, max_rows);
            $fn$;
            ALTER FUNCTION audit_logs_search_rare(uuid[], text, timestamptz, uuid, integer) OWNER TO testio_search;
            ALTER FUNCTION audit_logs_search(uuid[], text, timestamptz, uuid, integer) OWNER TO testio_search;
            ALTER FUNCTION audit_logs_matching(text, timestamptz, uuid, integer) OWNER TO testio_search;
            ALTER FUNCTION audit_logs_matching_platform(text, uuid[], timestamptz, uuid, integer) OWNER TO testio_search;
            REVOKE ALL ON FUNCTION audit_logs_search_rare(uuid[], text, timestamptz, uuid, integer),
                                   audit_logs_search(uuid[], text, timestamptz, uuid, integer),
                                   audit_logs_matching(text, timestamptz, uuid, integer),
                                   audit_logs_matching_platform(text, uuid[], timestamptz, uuid, integer) FROM PUBLIC;
            GRANT EXECUTE ON FUNCTION audit_logs_matching(text, timestamptz, uuid, integer) TO testio_runtime;
            GRANT EXECUTE ON FUNCTION audit_logs_matching_platform(text, uuid[], timestamptz, uuid, integer)
                TO testio_audit_reader;
            "#
            ),
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(
            manager,
            r#"
            DROP FUNCTION audit_logs_matching_platform(text, uuid[], timestamptz, uuid, integer);
            DROP FUNCTION audit_logs_matching(text, timestamptz, uuid, integer);
            DROP FUNCTION audit_logs_search(uuid[], text, timestamptz, uuid, integer);
            DROP FUNCTION audit_logs_search_rare(uuid[], text, timestamptz, uuid, integer);
            DROP INDEX audit_logs_platform_time_idx;
            DROP POLICY audit_logs_platform_review ON audit_logs;
            REVOKE SELECT ON audit_logs FROM testio_audit_reader;
            REVOKE USAGE ON SCHEMA public FROM testio_audit_reader;
            DROP POLICY audit_logs_search ON audit_logs;
            REVOKE SELECT ON audit_logs FROM testio_search;
            DROP INDEX audit_logs_search, audit_logs_outcome_idx, audit_logs_target_idx, audit_logs_actor_type_idx,
                       audit_logs_actor_idx, audit_logs_action_idx;
            ALTER TABLE audit_logs DROP COLUMN search_text, DROP COLUMN schema_version, DROP COLUMN target_display,
                                   DROP COLUMN actor_display;
            ALTER TABLE audit_logs DROP CONSTRAINT audit_logs_actor_type_check;
            -- NOT VALID: `worker` events written meanwhile stay (the log cannot be rewritten).
            ALTER TABLE audit_logs ADD CONSTRAINT audit_logs_actor_type_check
                CHECK (actor_type IN ('user', 'api_key', 'system', 'anonymous')) NOT VALID;
            ALTER TABLE audit_logs RENAME CONSTRAINT audit_logs_target_id_check TO audit_logs_resource_id_check;
            ALTER TABLE audit_logs RENAME CONSTRAINT audit_logs_target_type_check TO audit_logs_resource_type_check;
            ALTER TABLE audit_logs RENAME COLUMN target_id TO resource_id;
            ALTER TABLE audit_logs RENAME COLUMN target_type TO resource_type;
            "#,
        )
        .await
    }
}
