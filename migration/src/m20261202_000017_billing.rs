//! Billing with Stripe (issue 14):
//!
//! - **The subscription's state on `tenants`**, as last read from Stripe: the price, the current period's end,
//!   whether it cancels at that end, since when it is past due (the grace period counts from there), and when it was
//!   read. `plan` stays the paid plan the subscription is for; the plan in force (limits) is derived from it, the
//!   status and the grace period (`entity::plans`).
//! - **`stripe_events`**: every verified webhook event, stored once by id (in the transaction of the tenant its
//!   customer belongs to: tenant-owned, under row-level security) when it arrives, so that a replay finds it there and
//!   changes nothing; then applied by the worker, which asks `stripe_events_due_tenants` which tenants have events
//!   due, and in each one's transaction takes the oldest with `FOR UPDATE SKIP LOCKED` and applies it together with
//!   its audit row and its `applied` mark; on failure it backs off (`next_attempt_at`). A crash between receipt and
//!   application, or during it, leaves the event `pending`: nothing is lost. Never shown through the API.

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
            ALTER TABLE tenants
                ADD COLUMN subscription_price_id text CHECK (length(subscription_price_id) <= 255),
                ADD COLUMN subscription_current_period_end timestamptz,
                ADD COLUMN subscription_cancel_at_period_end boolean NOT NULL DEFAULT false,
                ADD COLUMN subscription_past_due_since timestamptz,
                ADD COLUMN billing_synced_at timestamptz;
            -- The sync interval a tenant asked for (at least its plan's; NULL: the plan's).
            ALTER TABLE testio_connections
                ADD COLUMN sync_interval_secs bigint CHECK (sync_interval_secs BETWEEN 60 AND 604800);
            -- Products a sync left out because the plan mirrors fewer (kept, not deleted; listed on the run).
            ALTER TABLE sync_runs
                ADD COLUMN products_skipped integer NOT NULL DEFAULT 0 CHECK (products_skipped >= 0),
                ADD COLUMN skipped_product_ids jsonb NOT NULL DEFAULT '[]'::jsonb;

            CREATE TABLE stripe_events (
                tenant_id         uuid        NOT NULL,
                id                text        NOT NULL CHECK (length(id) BETWEEN 1 AND 255),
                event_type        text        NOT NULL CHECK (length(event_type) BETWEEN 1 AND 255),
                stripe_created_at timestamptz NOT NULL,
                payload           jsonb       NOT NULL,
                received_at       timestamptz NOT NULL DEFAULT now(),
                status            text        NOT NULL DEFAULT 'pending'
                                              CHECK (status IN ('pending', 'applied', 'failed')),
                attempts          integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
                next_attempt_at   timestamptz NOT NULL DEFAULT now(),
                last_error        text,
                applied_at        timestamptz,
                outcome           text,
                PRIMARY KEY (tenant_id, id)
            );
            CREATE UNIQUE INDEX stripe_events_id_key ON stripe_events (id);
            CREATE INDEX stripe_events_due_idx ON stripe_events (tenant_id, next_attempt_at) WHERE status = 'pending';
            GRANT SELECT, INSERT, UPDATE ON stripe_events TO testio_runtime;
            {rls}
            -- The worker's question "which tenants have events due?" crosses tenants: answered by a function owned
            -- by `testio_search` (which may read every tenant's events and nothing more), naming tenants only.
            GRANT SELECT ON stripe_events TO testio_search;
            CREATE POLICY stripe_events_due ON stripe_events FOR SELECT TO testio_search USING (true);
            CREATE FUNCTION stripe_events_due_tenants(max_tenants integer) RETURNS SETOF uuid
                LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
                SELECT tenant_id FROM stripe_events
                 WHERE status = 'pending' AND next_attempt_at <= now()
                 GROUP BY tenant_id ORDER BY min(next_attempt_at) LIMIT max_tenants;
            $fn$;
            ALTER FUNCTION stripe_events_due_tenants(integer) OWNER TO testio_search;
            REVOKE ALL ON FUNCTION stripe_events_due_tenants(integer) FROM PUBLIC;
            GRANT EXECUTE ON FUNCTION stripe_events_due_tenants(integer) TO testio_runtime;
            "#,
                rls = tenant_rls("stripe_events")
            ),
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(
            manager,
            r#"
            DROP FUNCTION stripe_events_due_tenants(integer);
            DROP TABLE stripe_events;
            ALTER TABLE sync_runs DROP COLUMN products_skipped, DROP COLUMN skipped_product_ids;
            ALTER TABLE testio_connections DROP COLUMN sync_interval_secs;
            ALTER TABLE tenants
                DROP COLUMN subscription_price_id,
                DROP COLUMN subscription_current_period_end,
                DROP COLUMN subscription_cancel_at_period_end,
                DROP COLUMN subscription_past_due_since,
                DROP COLUMN billing_synced_at;
            "#,
        )
        .await
    }
}
