//! The TestIO mirror: each tenant's connection to the TestIO Customer API (token encrypted by the application), the
//! mirrored products, tests and bugs keyed by `(tenant_id, testio_id)`, the per-product scan cursors, the gaps a sync
//! could not read, and the record of every sync run. All tenant-owned, under row-level security.
//!
//! Scheduling lives on `tenants` (a global table): the worker must find due tenants across the platform before it
//! knows which tenant to bind its transaction to. `sync_due_at` is NULL while a tenant has no usable connection.

use sea_orm_migration::prelude::*;

use crate::sql::{run, tenant_rls};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TENANT_TABLES: [&str; 7] = [
    "testio_connections",
    "testio_products",
    "testio_tests",
    "testio_bugs",
    "testio_scan_cursors",
    "sync_gaps",
    "sync_runs",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(
            manager,
            r#"
            ALTER TABLE tenants
                ADD COLUMN sync_due_at           timestamptz,
                ADD COLUMN sync_lease_owner      text,
                ADD COLUMN sync_lease_expires_at timestamptz;
            CREATE INDEX tenants_sync_due_at_idx ON tenants (sync_due_at) WHERE sync_due_at IS NOT NULL;
            -- Leases are renewed on every page; they must not count as edits of the tenant.
            DROP TRIGGER tenants_set_updated_at ON tenants;
            CREATE TRIGGER tenants_set_updated_at
                BEFORE UPDATE OF name, slug, plan, stripe_customer_id, stripe_subscription_id, subscription_status,
                                 active ON tenants
                FOR EACH ROW EXECUTE FUNCTION set_updated_at();

            -- One connection per tenant. The token is AES-256-GCM encrypted by the application with the key named by
            -- token_key_id (so keys can rotate) and the tenant id as associated data (a ciphertext copied to another
            -- tenant's row does not decrypt).
            CREATE TABLE testio_connections (
                tenant_id         uuid        PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
                base_url          text        NOT NULL CHECK (length(base_url) BETWEEN 1 AND 500),
                token_ciphertext  bytea       NOT NULL,
                token_nonce       bytea       NOT NULL CHECK (length(token_nonce) = 12),
                token_key_id      text        NOT NULL,
                token_last4       text        NOT NULL CHECK (length(token_last4) <= 4),
                status            text        NOT NULL CHECK (status IN ('active', 'needs_token')),
                status_reason     text        CHECK (length(status_reason) <= 500),
                created_by        uuid        REFERENCES users (id) ON DELETE SET NULL,
                created_at        timestamptz NOT NULL DEFAULT now(),
                updated_at        timestamptz NOT NULL DEFAULT now(),
                verified_at       timestamptz NOT NULL,
                last_reconcile_at timestamptz
            );

            CREATE TABLE testio_products (
                tenant_id       uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
                testio_id       bigint      NOT NULL,
                name            text        NOT NULL,
                product_type    text,
                raw             jsonb       NOT NULL,
                first_synced_at timestamptz NOT NULL DEFAULT now(),
                changed_at      timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (tenant_id, testio_id)
            );

            CREATE TABLE testio_tests (
                tenant_id       uuid        NOT NULL,
                testio_id       bigint      NOT NULL,
                product_id      bigint      NOT NULL,
                title           text        NOT NULL,
                status          text        NOT NULL,
                testing_type    text,
                review_status   text,
                start_at        timestamptz,
                end_at          timestamptz,
                raw             jsonb       NOT NULL,
                first_synced_at timestamptz NOT NULL DEFAULT now(),
                changed_at      timestamptz NOT NULL DEFAULT now(),
                -- When this test's bugs were last read completely; NULL: never.
                bugs_synced_at  timestamptz,
                PRIMARY KEY (tenant_id, testio_id),
                FOREIGN KEY (tenant_id, product_id) REFERENCES testio_products (tenant_id, testio_id) ON DELETE CASCADE
            );
            CREATE INDEX testio_tests_product_end_at_idx ON testio_tests (tenant_id, product_id, end_at DESC);
            CREATE INDEX testio_tests_status_idx ON testio_tests (tenant_id, status);

            CREATE TABLE testio_bugs (
                tenant_id       uuid        NOT NULL,
                testio_id       bigint      NOT NULL,
                test_id         bigint      NOT NULL,
                title           text        NOT NULL,
                severity        text,
                status          text,
                known           boolean,
                auto_accepted   boolean,
                reported_at     timestamptz,
                raw             jsonb       NOT NULL,
                first_synced_at timestamptz NOT NULL DEFAULT now(),
                changed_at      timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (tenant_id, testio_id),
                FOREIGN KEY (tenant_id, test_id) REFERENCES testio_tests (tenant_id, testio_id) ON DELETE CASCADE
            );
            CREATE INDEX testio_bugs_test_id_idx ON testio_bugs (tenant_id, test_id);
            CREATE INDEX testio_bugs_status_idx ON testio_bugs (tenant_id, status);

            -- Where the backfill of a product's test list (newest first) stopped; NULL offset: the whole history has
            -- been read.
            CREATE TABLE testio_scan_cursors (
                tenant_id             uuid        NOT NULL,
                product_id            bigint      NOT NULL,
                backfill_offset       bigint      CHECK (backfill_offset >= 0),
                backfill_completed_at timestamptz,
                updated_at            timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (tenant_id, product_id),
                FOREIGN KEY (tenant_id, product_id) REFERENCES testio_products (tenant_id, testio_id) ON DELETE CASCADE
            );

            -- What a sync could not read (a failing page, an unreadable item, a bug batch that kept timing out), kept
            -- open until a later run reads it.
            CREATE TABLE sync_gaps (
                tenant_id     uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
                id            uuid        NOT NULL,
                key           text        NOT NULL CHECK (length(key) <= 200),
                kind          text        NOT NULL CHECK (kind IN ('test_page', 'test', 'bugs', 'bug', 'product')),
                product_id    bigint,
                page_offset   bigint,
                item_id       bigint,
                reason        text        NOT NULL CHECK (length(reason) <= 1000),
                attempts      integer     NOT NULL DEFAULT 1,
                first_seen_at timestamptz NOT NULL DEFAULT now(),
                last_seen_at  timestamptz NOT NULL DEFAULT now(),
                resolved_at   timestamptz,
                PRIMARY KEY (tenant_id, id)
            );
            CREATE UNIQUE INDEX sync_gaps_open_key ON sync_gaps (tenant_id, key) WHERE resolved_at IS NULL;

            CREATE TABLE sync_runs (
                tenant_id     uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
                id            uuid        NOT NULL,
                trigger       text        NOT NULL CHECK (trigger IN ('schedule', 'api', 'cli', 'connection')),
                full_sync     boolean     NOT NULL DEFAULT false,
                status        text        NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'partial',
                                                                     'failed', 'interrupted')),
                requested_by  uuid        REFERENCES users (id) ON DELETE SET NULL,
                worker        text        CHECK (length(worker) <= 200),
                created_at    timestamptz NOT NULL DEFAULT now(),
                started_at    timestamptz,
                finished_at   timestamptz,
                requests      integer     NOT NULL DEFAULT 0,
                pages         integer     NOT NULL DEFAULT 0,
                products      integer     NOT NULL DEFAULT 0,
                tests_new     integer     NOT NULL DEFAULT 0,
                tests_updated integer     NOT NULL DEFAULT 0,
                tests_deleted integer     NOT NULL DEFAULT 0,
                bugs_new      integer     NOT NULL DEFAULT 0,
                bugs_updated  integer     NOT NULL DEFAULT 0,
                bugs_deleted  integer     NOT NULL DEFAULT 0,
                gaps_opened   integer     NOT NULL DEFAULT 0,
                gaps_resolved integer     NOT NULL DEFAULT 0,
                error         text        CHECK (length(error) <= 2000),
                PRIMARY KEY (tenant_id, id)
            );
            -- At most one queued or running sync per tenant: a second trigger finds the first instead.
            CREATE UNIQUE INDEX sync_runs_one_active ON sync_runs (tenant_id) WHERE status IN ('queued', 'running');
            CREATE INDEX sync_runs_created_at_idx ON sync_runs (tenant_id, created_at DESC);

            GRANT SELECT, INSERT, UPDATE, DELETE ON testio_connections, testio_products, testio_tests, testio_bugs,
                                                    testio_scan_cursors, sync_gaps TO testio_runtime;
            GRANT SELECT, INSERT, UPDATE ON sync_runs TO testio_runtime;
            "#,
        )
        .await?;
        for table in TENANT_TABLES {
            run(manager, &tenant_rls(table)).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(
            manager,
            r#"
            DROP TABLE sync_runs;
            DROP TABLE sync_gaps;
            DROP TABLE testio_scan_cursors;
            DROP TABLE testio_bugs;
            DROP TABLE testio_tests;
            DROP TABLE testio_products;
            DROP TABLE testio_connections;
            DROP TRIGGER tenants_set_updated_at ON tenants;
            CREATE TRIGGER tenants_set_updated_at BEFORE UPDATE ON tenants
                FOR EACH ROW EXECUTE FUNCTION set_updated_at();
            DROP INDEX tenants_sync_due_at_idx;
            ALTER TABLE tenants DROP COLUMN sync_due_at, DROP COLUMN sync_lease_owner,
                                DROP COLUMN sync_lease_expires_at;
            "#,
        )
        .await
    }
}
