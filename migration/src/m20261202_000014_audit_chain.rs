//! Tamper evidence for the audit log (issue 13): a per-tenant hash chain, sealed after the fact.
//!
//! Chaining inside the writer would serialise every writer of a tenant, and every sign-in writes to the platform
//! tenant. So writers only stamp each event with the id of the transaction that wrote it (`txid`, a column default),
//! and the worker seals afterwards, in batches:
//!
//! - An event is *settled* once its transaction has ended: `txid` below the oldest transaction still running in this
//!   database (`audit_settled_below`). Settled events of a tenant are sealed in `(txid, id)` order; no event can later appear
//!   before a position the sealer has passed, except by being forged.
//! - `audit_chain` holds, per sealed event, its position (`seq`) and `hash = sha256(previous hash || canonical
//!   content)`, the content being every column of the event (`audit_event_digest`); `audit_chain_heads` the tenant's
//!   last position, hash and sealed `(txid, id)`, plus the anchor the chain starts from (zeros, or after a retention
//!   purge the hash of the last purged event) and the first position kept.
//! - `audit_chain_seal(tenant, max)` (run by the worker in the tenant's transaction, the head locked, so sealers of
//!   one tenant take turns) appends up to `max` settled events; `audit_chain_verify(tenant)` walks the chain and
//!   reports the first event that was altered or deleted, the first sealed-range event the chain does not know
//!   (inserted), and how many events are not sealed yet.
//! - `audit_chain_pending(since)` (SECURITY DEFINER, owned by `testio_search`) names the tenants with settled events
//!   written since a transaction id, so the worker finds work without reading any event; `audit_chain_progress` keeps
//!   that id between runs.
//!
//! The runtime role may INSERT into `audit_chain` but never UPDATE or DELETE it (a trigger refuses both to everyone,
//! as for the log); the heads move forward only. Both tables are tenant-scoped under row-level security; the platform
//! reader may read them.

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
            -- Which transactions are still running is read from pg_stat_activity, which shows other roles' sessions
            -- only to pg_read_all_stats: `migration bootstrap` grants it to the owner.
            DO $$
            BEGIN
                IF NOT pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') THEN
                    RAISE EXCEPTION '% may not read pg_stat_activity in full: run the bootstrap (`migration '
                                    'bootstrap`, as a superuser) before migrating', current_user;
                END IF;
            END
            $$;
            ALTER TABLE audit_logs ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id();
            CREATE INDEX audit_logs_txid_idx ON audit_logs (txid);
            CREATE INDEX audit_logs_chain_order_idx ON audit_logs (tenant_id, txid, id);

            CREATE TABLE audit_chain (
                tenant_id uuid   NOT NULL,
                seq       bigint NOT NULL CHECK (seq >= 1),
                event_id  uuid   NOT NULL,
                hash      bytea  NOT NULL CHECK (length(hash) = 32),
                PRIMARY KEY (tenant_id, seq),
                UNIQUE (tenant_id, event_id)
            );
            CREATE TABLE audit_chain_heads (
                tenant_id    uuid        PRIMARY KEY,
                seq          bigint      NOT NULL CHECK (seq >= 0),
                hash         bytea       NOT NULL CHECK (length(hash) = 32),
                sealed_txid  xid8        NOT NULL,
                sealed_id    uuid        NOT NULL,
                first_seq    bigint      NOT NULL DEFAULT 1 CHECK (first_seq >= 1),
                anchor       bytea       NOT NULL CHECK (length(anchor) = 32),
                sealed_at    timestamptz NOT NULL DEFAULT now()
            );
            CREATE TABLE audit_chain_progress (
                id           boolean PRIMARY KEY DEFAULT true CHECK (id),
                sealed_below xid8    NOT NULL
            );
            INSERT INTO audit_chain_progress (sealed_below) VALUES ('0');

            CREATE FUNCTION audit_chain_append_only() RETURNS trigger LANGUAGE plpgsql AS $fn$
            BEGIN
                RAISE EXCEPTION 'audit_chain is append-only' USING ERRCODE = 'insufficient_privilege';
            END
            $fn$;
            CREATE TRIGGER audit_chain_no_update BEFORE UPDATE ON audit_chain
                FOR EACH ROW EXECUTE FUNCTION audit_chain_append_only();
            CREATE TRIGGER audit_chain_no_truncate BEFORE TRUNCATE ON audit_chain
                FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_append_only();

            GRANT SELECT, INSERT ON audit_chain TO testio_runtime;
            GRANT SELECT, INSERT, UPDATE ON audit_chain_heads TO testio_runtime;
            GRANT SELECT, UPDATE ON audit_chain_progress TO testio_runtime;
            GRANT SELECT ON audit_chain, audit_chain_heads TO testio_audit_reader;

            -- The canonical content of an event, chained after `prev`: every column, each quoted or NULL, so that no
            -- two different events read alike; the time as microseconds since the epoch, whatever the session's
            -- time zone.
            CREATE FUNCTION audit_event_digest(prev bytea, a audit_logs) RETURNS bytea
                LANGUAGE sql IMMUTABLE SET search_path = public, pg_temp AS $fn$
                SELECT sha256(prev || convert_to(concat_ws(',',
                    quote_nullable(a.tenant_id::text), quote_nullable(a.id::text), quote_nullable(a.actor_type),
                    quote_nullable(a.actor_id::text), quote_nullable(a.actor_display), quote_nullable(a.action),
                    quote_nullable(a.target_type), quote_nullable(a.target_id), quote_nullable(a.target_display),
                    quote_nullable(a.metadata::text), quote_nullable(a.ip_address::text),
                    quote_nullable(a.user_agent), quote_nullable(a.request_id), quote_nullable(a.outcome),
                    quote_nullable((extract(epoch FROM a.created_at) * 1000000)::bigint::text),
                    quote_nullable(a.schema_version::text), quote_nullable(a.txid::text)), 'UTF8'))
            $fn$;

            -- Every event with a txid below this is settled: the oldest transaction still running *in this database*
            -- (only its sessions can write the log; another database's long transaction must not hold sealing
            -- back), or the next transaction id when none runs. The next id is read first, so a transaction that
            -- gets its id meanwhile is either seen running or above it. The sealer's own session is left out (it
            -- writes no event).
            CREATE FUNCTION audit_settled_below() RETURNS xid8
                LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
            DECLARE
                next_id xid8;
                n bigint;
                oldest bigint;
            BEGIN
                next_id := pg_snapshot_xmax(pg_current_snapshot());
                n := next_id::text::bigint;
                -- A 32-bit xid widened to the 64-bit id it has now: `d` behind the next id. An xid handed out after
                -- the next id was read is ahead of it (`d` wraps past 2^31): that transaction is above the answer
                -- anyway.
                SELECT min(n - d) INTO oldest
                  FROM (SELECT ((n % 4294967296) - x::text::bigint + 4294967296) % 4294967296 AS d
                          FROM (SELECT backend_xid AS x FROM pg_stat_activity
                                 WHERE datname = current_database() AND backend_xid IS NOT NULL
                                   AND pid <> pg_backend_pid()
                                UNION ALL
                                SELECT transaction FROM pg_prepared_xacts WHERE database = current_database())
                               AS running) AS behind
                 WHERE d < 2147483648;
                IF oldest IS NULL OR oldest >= n THEN
                    RETURN next_id;
                END IF;
                RETURN oldest::text::xid8;
            END
            $fn$;
            REVOKE ALL ON FUNCTION audit_settled_below() FROM PUBLIC;
            GRANT EXECUTE ON FUNCTION audit_settled_below() TO testio_runtime, testio_search;

            -- Returns how many events it sealed, and below which transaction id every event of the tenant is now
            -- sealed (when it sealed fewer than `max_rows`).
            CREATE FUNCTION audit_chain_seal(p_tenant uuid, max_rows integer)
                RETURNS TABLE (sealed integer, settled xid8)
                LANGUAGE plpgsql SET search_path = public, pg_temp AS $fn$
            DECLARE
                head audit_chain_heads;
                below xid8;
                event audit_logs;
                n integer := 0;
            BEGIN
                INSERT INTO audit_chain_heads (tenant_id, seq, hash, sealed_txid, sealed_id, anchor)
                VALUES (p_tenant, 0, '\x0000000000000000000000000000000000000000000000000000000000000000', '0',
                        '00000000-0000-0000-0000-000000000000',
                        '\x0000000000000000000000000000000000000000000000000000000000000000')
                ON CONFLICT (tenant_id) DO NOTHING;
                SELECT * INTO head FROM audit_chain_heads WHERE tenant_id = p_tenant FOR UPDATE;
                -- Taken after the lock: every transaction below it has ended, so its events are all visible now.
                below := audit_settled_below();
                FOR event IN
                    SELECT * FROM audit_logs
                     WHERE tenant_id = p_tenant AND txid < below
                       AND (txid, id) > (head.sealed_txid, head.sealed_id)
                     ORDER BY txid, id
                     LIMIT max_rows
                LOOP
                    head.seq := head.seq + 1;
                    head.hash := audit_event_digest(head.hash, event);
                    INSERT INTO audit_chain (tenant_id, seq, event_id, hash) VALUES (p_tenant, head.seq, event.id, head.hash);
                    head.sealed_txid := event.txid;
                    head.sealed_id := event.id;
                    n := n + 1;
                END LOOP;
                IF n > 0 THEN
                    UPDATE audit_chain_heads
                       SET seq = head.seq, hash = head.hash, sealed_txid = head.sealed_txid,
                           sealed_id = head.sealed_id, sealed_at = now()
                     WHERE tenant_id = p_tenant;
                END IF;
                RETURN QUERY SELECT n, below;
            END
            $fn$;

            CREATE FUNCTION audit_chain_verify(p_tenant uuid)
                RETURNS TABLE (intact boolean, checked bigint, problem text, broken_seq bigint, broken_event uuid,
                               unsealed bigint, head_seq bigint, head_hash bytea, sealed_at timestamptz)
                LANGUAGE plpgsql STABLE SET search_path = public, pg_temp AS $fn$
            DECLARE
                head audit_chain_heads;
                link audit_chain;
                event audit_logs;
                prev bytea;
                expected bigint;
                n bigint := 0;
                stray uuid;
                waiting bigint;
            BEGIN
                SELECT * INTO head FROM audit_chain_heads WHERE tenant_id = p_tenant;
                IF NOT FOUND THEN
                    SELECT count(*) INTO waiting FROM audit_logs WHERE tenant_id = p_tenant;
                    RETURN QUERY SELECT true, 0::bigint, NULL::text, NULL::bigint, NULL::uuid, waiting, 0::bigint,
                                        NULL::bytea, NULL::timestamptz;
                    RETURN;
                END IF;
                SELECT count(*) INTO waiting FROM audit_logs
                 WHERE tenant_id = p_tenant AND (txid, id) > (head.sealed_txid, head.sealed_id);
                prev := head.anchor;
                expected := head.first_seq;
                FOR link IN SELECT * FROM audit_chain WHERE tenant_id = p_tenant ORDER BY seq LOOP
                    IF link.seq <> expected THEN
                        RETURN QUERY SELECT false, n, 'the chain has a gap: an entry of the chain was removed'::text,
                                            expected, NULL::uuid, waiting, head.seq, head.hash, head.sealed_at;
                        RETURN;
                    END IF;
                    SELECT * INTO event FROM audit_logs WHERE tenant_id = p_tenant AND id = link.event_id;
                    IF NOT FOUND THEN
                        RETURN QUERY SELECT false, n, 'a sealed event was deleted'::text, link.seq, link.event_id,
                                            waiting, head.seq, head.hash, head.sealed_at;
                        RETURN;
                    END IF;
                    IF audit_event_digest(prev, event) <> link.hash THEN
                        RETURN QUERY SELECT false, n, 'a sealed event was altered (or the chain was)'::text, link.seq,
                                            link.event_id, waiting, head.seq, head.hash, head.sealed_at;
                        RETURN;
                    END IF;
                    prev := link.hash;
                    expected := expected + 1;
                    n := n + 1;
                END LOOP;
                IF expected - 1 <> head.seq OR prev <> head.hash THEN
                    RETURN QUERY SELECT false, n, 'the chain ends before its head: entries were removed'::text,
                                        expected, NULL::uuid, waiting, head.seq, head.hash, head.sealed_at;
                    RETURN;
                END IF;
                SELECT a.id INTO stray FROM audit_logs a
                 WHERE a.tenant_id = p_tenant AND (a.txid, a.id) <= (head.sealed_txid, head.sealed_id)
                   AND NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.tenant_id = p_tenant AND c.event_id = a.id)
                 ORDER BY a.txid, a.id LIMIT 1;
                IF FOUND THEN
                    RETURN QUERY SELECT false, n, 'an event was inserted into the sealed history'::text, NULL::bigint,
                                        stray, waiting, head.seq, head.hash, head.sealed_at;
                    RETURN;
                END IF;
                RETURN QUERY SELECT true, n, NULL::text, NULL::bigint, NULL::uuid, waiting, head.seq, head.hash,
                                    head.sealed_at;
            END
            $fn$;

            CREATE FUNCTION audit_chain_pending(since xid8) RETURNS TABLE (tenant_id uuid, settled xid8)
                LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
                WITH settled AS (SELECT audit_settled_below() AS below)
                SELECT DISTINCT a.tenant_id, s.below
                  FROM audit_logs a, settled s
                 WHERE a.txid >= since AND a.txid < s.below;
            $fn$;
            ALTER FUNCTION audit_chain_pending(xid8) OWNER TO testio_search;
            REVOKE ALL ON FUNCTION audit_chain_pending(xid8) FROM PUBLIC;
            GRANT EXECUTE ON FUNCTION audit_chain_pending(xid8) TO testio_runtime;
            REVOKE ALL ON FUNCTION audit_chain_seal(uuid, integer), audit_chain_verify(uuid) FROM PUBLIC;
            GRANT EXECUTE ON FUNCTION audit_chain_seal(uuid, integer) TO testio_runtime;
            GRANT EXECUTE ON FUNCTION audit_chain_verify(uuid) TO testio_runtime, testio_audit_reader;
            GRANT EXECUTE ON FUNCTION audit_event_digest(bytea, audit_logs) TO testio_audit_reader;
            "#,
        )
        .await?;
        run(manager, &tenant_rls("audit_chain")).await?;
        run(manager, &tenant_rls("audit_chain_heads")).await?;
        run(
            manager,
            "CREATE POLICY audit_chain_platform_review ON audit_chain FOR SELECT TO testio_audit_reader USING (true);
             CREATE POLICY audit_chain_heads_platform_review ON audit_chain_heads FOR SELECT TO testio_audit_reader
                 USING (true);",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(
            manager,
            r#"
            DROP FUNCTION audit_chain_pending(xid8);
            DROP FUNCTION audit_chain_verify(uuid);
            DROP FUNCTION audit_chain_seal(uuid, integer);
            DROP FUNCTION audit_settled_below();
            DROP FUNCTION audit_event_digest(bytea, audit_logs);
            DROP TABLE audit_chain_progress;
            DROP TABLE audit_chain_heads;
            DROP TABLE audit_chain;
            DROP FUNCTION audit_chain_append_only();
            DROP INDEX audit_logs_chain_order_idx, audit_logs_txid_idx;
            ALTER TABLE audit_logs DROP COLUMN txid;
            "#,
        )
        .await
    }
}
