//! Audit retention (issue 13): the worker purges a tenant's events older than its plan keeps them, oldest first and
//! only sealed ones, without breaking the hash chain.
//!
//! - `audit_retention_due(free, pro, enterprise, other)` (SECURITY DEFINER, owned by `testio_search`, which may read
//!   the chain for it) names the tenants whose oldest kept event is older than their plan's days allow (`other`:
//!   the platform's own log and deleted tenants'), with the cutoff.
//! - `audit_purge(tenant, cutoff, max)` (SECURITY DEFINER, owned by the owner: the runtime role may not DELETE from
//!   the log) deletes, in chain order, the sealed events older than the cutoff and their chain entries, and moves the
//!   chain's start: `first_seq` is the first position kept and `anchor` the hash of the last one purged, so the
//!   verifier starts there. It runs only in a transaction bound to that very tenant, never purges what is younger
//!   than a day whatever it is asked, and stops at an event the chain names but the log lacks (that is tampering for
//!   the verifier to report, not something to tidy away).

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
            GRANT SELECT ON audit_chain, audit_chain_heads TO testio_search;
            CREATE POLICY audit_chain_retention ON audit_chain FOR SELECT TO testio_search USING (true);
            CREATE POLICY audit_chain_heads_retention ON audit_chain_heads FOR SELECT TO testio_search USING (true);
            GRANT SELECT ON tenants TO testio_search;

            CREATE FUNCTION audit_retention_due(free_days integer, pro_days integer, enterprise_days integer,
                                                other_days integer)
                RETURNS TABLE (tenant_id uuid, cutoff timestamptz)
                LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
                SELECT h.tenant_id, due.cutoff
                  FROM audit_chain_heads h
                  LEFT JOIN tenants t ON t.id = h.tenant_id
                  JOIN audit_chain c ON c.tenant_id = h.tenant_id AND c.seq = h.first_seq
                  JOIN audit_logs a ON a.tenant_id = c.tenant_id AND a.id = c.event_id
                 CROSS JOIN LATERAL (
                     SELECT now() - make_interval(days => CASE
                         WHEN h.tenant_id = '00000000-0000-0000-0000-000000000000' OR t.id IS NULL THEN other_days
                         WHEN t.plan = 'enterprise' THEN enterprise_days
                         WHEN t.plan = 'pro' THEN pro_days
                         ELSE free_days END) AS cutoff
                 ) due
                 WHERE a.created_at < due.cutoff;
            $fn$;
            ALTER FUNCTION audit_retention_due(integer, integer, integer, integer) OWNER TO testio_search;
            REVOKE ALL ON FUNCTION audit_retention_due(integer, integer, integer, integer) FROM PUBLIC;
            GRANT EXECUTE ON FUNCTION audit_retention_due(integer, integer, integer, integer) TO testio_runtime;

            CREATE FUNCTION audit_purge(p_tenant uuid, cutoff timestamptz, max_rows integer)
                RETURNS TABLE (purged integer, first_seq bigint)
                LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
            DECLARE
                head audit_chain_heads;
                link record;
                n integer := 0;
                bound uuid := nullif(current_setting('app.tenant_id', true), '')::uuid;
            BEGIN
                IF bound IS DISTINCT FROM p_tenant THEN
                    RAISE EXCEPTION 'audit_purge runs in a transaction bound to the tenant it purges'
                        USING ERRCODE = 'insufficient_privilege';
                END IF;
                -- Never what is younger than a day, whatever the caller asks.
                cutoff := least(cutoff, now() - interval '1 day');
                SELECT * INTO head FROM audit_chain_heads h WHERE h.tenant_id = p_tenant FOR UPDATE;
                IF NOT FOUND THEN
                    RETURN QUERY SELECT 0, 1::bigint;
                    RETURN;
                END IF;
                FOR link IN
                    SELECT c.seq, c.hash, c.event_id, a.id AS present, a.created_at
                      FROM audit_chain c LEFT JOIN audit_logs a ON a.tenant_id = c.tenant_id AND a.id = c.event_id
                     WHERE c.tenant_id = p_tenant AND c.seq >= head.first_seq
                     ORDER BY c.seq
                     LIMIT max_rows
                LOOP
                    EXIT WHEN link.present IS NULL OR link.created_at >= cutoff;
                    DELETE FROM audit_logs a WHERE a.tenant_id = p_tenant AND a.id = link.event_id;
                    DELETE FROM audit_chain c WHERE c.tenant_id = p_tenant AND c.seq = link.seq;
                    head.first_seq := link.seq + 1;
                    head.anchor := link.hash;
                    n := n + 1;
                END LOOP;
                IF n > 0 THEN
                    UPDATE audit_chain_heads h SET first_seq = head.first_seq, anchor = head.anchor
                     WHERE h.tenant_id = p_tenant;
                END IF;
                RETURN QUERY SELECT n, head.first_seq;
            END
            $fn$;
            REVOKE ALL ON FUNCTION audit_purge(uuid, timestamptz, integer) FROM PUBLIC;
            GRANT EXECUTE ON FUNCTION audit_purge(uuid, timestamptz, integer) TO testio_runtime;
            "#,
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(
            manager,
            r#"
            DROP FUNCTION audit_purge(uuid, timestamptz, integer);
            DROP FUNCTION audit_retention_due(integer, integer, integer, integer);
            REVOKE SELECT ON tenants FROM testio_search;
            DROP POLICY audit_chain_heads_retention ON audit_chain_heads;
            DROP POLICY audit_chain_retention ON audit_chain;
            REVOKE SELECT ON audit_chain, audit_chain_heads FROM testio_search;
            "#,
        )
        .await
    }
}
