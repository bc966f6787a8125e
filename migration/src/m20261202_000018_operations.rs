//! Production hardening: what the metrics read across tenants, and idempotency keys.
//!
//! - `ops_sync_freshness()` (SECURITY DEFINER, owned by `testio_search`): for every active TestIO connection, when
//!   its tenant last synced successfully, how far its mirror is verified and since when it is due. The worker turns
//!   it into the per-tenant lag gauges of `/metrics`. Tenant ids and times only, no data.
//! - `ops_audit_chain_lag()` (the same): how many audit events are not sealed into their tenant's hash chain yet, and
//!   when the oldest of them was written.
//! - Ready for Citus: `stripe_events`' unique index on the event id alone goes (a unique constraint of a table
//!   distributed by `tenant_id` must include it); its primary key `(tenant_id, id)` keeps one row per event, since an
//!   event names one customer and so one tenant. The schema test `citus.rs` keeps every tenant table that way.
//! - `rate_limits` (UNLOGGED: a crash forgets the buckets, which only lifts the limits for a moment) and
//!   `rate_limit_take(key, per_minute, burst)`: one generic cell rate algorithm bucket per key (`ip:<address>`,
//!   `tenant:<id>`), taken in one statement shared by every API replica, so a limit holds however many there are.
//! - `idempotency_keys`: tenant-owned, under row-level security. A POST that creates something and carries an
//!   `Idempotency-Key` inserts its key in the transaction that does the work, and stores its answer there before
//!   committing, so the key and the thing it created commit together or not at all. A concurrent duplicate's insert
//!   waits on the first's (the primary key), then finds the answer. `scope` is the tenant or, for a tenant's own
//!   creation, the new tenant (whose id is derived from the caller and the key). Kept 24 hours: the API ignores an
//!   older row and replaces it; the worker purges them.

use sea_orm_migration::prelude::*;

use crate::sql::{run, tenant_rls};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(
            manager,
            &format!(
                r#"
            DROP INDEX stripe_events_id_key;

            GRANT SELECT (tenant_id, status, verified_through) ON testio_connections TO testio_search;
            CREATE POLICY testio_connections_freshness ON testio_connections FOR SELECT TO testio_search USING (true);
            GRANT SELECT (tenant_id, status, created_at, finished_at) ON sync_runs TO testio_search;
            CREATE POLICY sync_runs_freshness ON sync_runs FOR SELECT TO testio_search USING (true);

            CREATE FUNCTION ops_sync_freshness()
                RETURNS TABLE (tenant_id uuid, last_success_at timestamptz, verified_through timestamptz,
                               due_at timestamptz)
                LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
                SELECT c.tenant_id,
                       (SELECT r.finished_at FROM sync_runs r
                         WHERE r.tenant_id = c.tenant_id AND r.status = 'succeeded'
                         ORDER BY r.created_at DESC LIMIT 1),
                       c.verified_through,
                       t.sync_due_at
                  FROM testio_connections c
                  JOIN tenants t ON t.id = c.tenant_id
                 WHERE c.status = 'active';
            $fn$;
            ALTER FUNCTION ops_sync_freshness() OWNER TO testio_search;
            REVOKE ALL ON FUNCTION ops_sync_freshness() FROM PUBLIC;
            GRANT EXECUTE ON FUNCTION ops_sync_freshness() TO testio_runtime;

            GRANT SELECT ON audit_chain_progress TO testio_search;
            CREATE FUNCTION ops_audit_chain_lag() RETURNS TABLE (unsealed bigint, oldest timestamptz)
                LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
                SELECT count(*), min(a.created_at)
                  FROM audit_logs a
                  LEFT JOIN audit_chain_heads h ON h.tenant_id = a.tenant_id
                 WHERE a.txid >= (SELECT sealed_below FROM audit_chain_progress)
                   AND (h.tenant_id IS NULL OR (a.txid, a.id) > (h.sealed_txid, h.sealed_id));
            $fn$;
            ALTER FUNCTION ops_audit_chain_lag() OWNER TO testio_search;
            REVOKE ALL ON FUNCTION ops_audit_chain_lag() FROM PUBLIC;
            GRANT EXECUTE ON FUNCTION ops_audit_chain_lag() TO testio_runtime;

            CREATE UNLOGGED TABLE rate_limits (
                key text        PRIMARY KEY CHECK (length(key) <= 200),
                tat timestamptz NOT NULL
            );
            GRANT SELECT, INSERT, UPDATE, DELETE ON rate_limits TO testio_runtime;
            -- The generic cell rate algorithm: the bucket's "theoretical arrival time" (tat) moves one emission
            -- interval (a minute / per_minute) per request; a request is admitted while tat stays within `burst`
            -- intervals of now. One upsert decides and counts; only a refusal reads the row again.
            CREATE FUNCTION rate_limit_take(k text, per_minute integer, burst integer,
                                            OUT allowed boolean, OUT remaining integer, OUT reset_ms bigint,
                                            OUT retry_after_ms bigint)
                LANGUAGE plpgsql VOLATILE SET search_path = public, pg_temp AS $fn$
            DECLARE
                t        timestamptz := clock_timestamp();
                emission interval    := interval '60 seconds' / greatest(per_minute, 1);
                window_  interval    := emission * greatest(burst, 1);
                new_tat  timestamptz;
                old_tat  timestamptz;
            BEGIN
                INSERT INTO rate_limits AS r (key, tat) VALUES (k, t + emission)
                ON CONFLICT (key) DO UPDATE SET tat = greatest(r.tat, t) + emission
                    WHERE greatest(r.tat, t) + emission - t <= window_
                RETURNING r.tat INTO new_tat;
                IF new_tat IS NOT NULL THEN
                    allowed := true;
                    remaining := floor(extract(epoch FROM window_ - (new_tat - t)) / extract(epoch FROM emission));
                    reset_ms := ceil(extract(epoch FROM new_tat - t) * 1000);
                    retry_after_ms := 0;
                ELSE
                    SELECT r.tat INTO old_tat FROM rate_limits r WHERE r.key = k;
                    allowed := false;
                    remaining := 0;
                    reset_ms := ceil(extract(epoch FROM greatest(old_tat, t) - t) * 1000);
                    retry_after_ms := greatest(ceil(extract(epoch FROM greatest(old_tat, t) + emission - window_ - t)
                                                    * 1000), 1);
                END IF;
            END
            $fn$;
            REVOKE ALL ON FUNCTION rate_limit_take(text, integer, integer) FROM PUBLIC;
            GRANT EXECUTE ON FUNCTION rate_limit_take(text, integer, integer) TO testio_runtime;

            CREATE TABLE idempotency_keys (
                tenant_id     uuid        NOT NULL,
                principal     text        NOT NULL CHECK (length(principal) BETWEEN 1 AND 100),
                key           text        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
                operation     text        NOT NULL CHECK (length(operation) BETWEEN 1 AND 100),
                request_hash  bytea       NOT NULL CHECK (length(request_hash) = 32),
                status        smallint    CHECK (status BETWEEN 100 AND 599),
                headers       jsonb       NOT NULL DEFAULT '[]'::jsonb,
                body          bytea,
                created_at    timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (tenant_id, principal, key)
            );
            CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);
            GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO testio_runtime;
            {rls}
            -- Expired keys of every tenant are purged by the worker through this function (tenant ids never leave it).
            CREATE FUNCTION idempotency_keys_purge(older_than interval, max_rows integer) RETURNS bigint
                LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
                WITH doomed AS (
                    SELECT tenant_id, principal, key FROM idempotency_keys
                     WHERE created_at < now() - older_than ORDER BY created_at LIMIT max_rows
                ), gone AS (
                    DELETE FROM idempotency_keys k USING doomed d
                     WHERE (k.tenant_id, k.principal, k.key) = (d.tenant_id, d.principal, d.key)
                    RETURNING 1
                )
                SELECT count(*) FROM gone;
            $fn$;
            GRANT SELECT, DELETE ON idempotency_keys TO testio_search;
            CREATE POLICY idempotency_keys_purge ON idempotency_keys FOR ALL TO testio_search USING (true);
            ALTER FUNCTION idempotency_keys_purge(interval, integer) OWNER TO testio_search;
            REVOKE ALL ON FUNCTION idempotency_keys_purge(interval, integer) FROM PUBLIC;
            GRANT EXECUTE ON FUNCTION idempotency_keys_purge(interval, integer) TO testio_runtime;
            "#,
                rls = tenant_rls("idempotency_keys")
            ),
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(
            manager,
            r#"
            DROP FUNCTION idempotency_keys_purge(interval, integer);
            DROP FUNCTION rate_limit_take(text, integer, integer);
            DROP TABLE rate_limits;
            DROP TABLE idempotency_keys;
            DROP FUNCTION ops_audit_chain_lag();
            REVOKE SELECT ON audit_chain_progress FROM testio_search;
            DROP FUNCTION ops_sync_freshness();
            DROP POLICY sync_runs_freshness ON sync_runs;
            REVOKE SELECT (tenant_id, status, created_at, finished_at) ON sync_runs FROM testio_search;
            DROP POLICY testio_connections_freshness ON testio_connections;
            REVOKE SELECT (tenant_id, status, verified_through) ON testio_connections FROM testio_search;
            CREATE UNIQUE INDEX stripe_events_id_key ON stripe_events (id);
            "#,
        )
        .await
    }
}
