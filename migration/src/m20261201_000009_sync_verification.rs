//! Rolling verification of the mirror (issue 11): each run re-lists a slice of every product's history, so that the
//! whole mirror is compared with TestIO once per verify cycle, and the mirror says how fresh it is.
//!
//! - `testio_scan_cursors` gains the verification pass of its product: `verify_boundary_end_at` (where the next slice
//!   starts: the lowest `end_at` the last slice read; `NULL` = the pass starts at the top), `verify_pass_started_at`
//!   (when the current pass read its first slice), `verify_pass_clean` (no slice of the pass left a gap) and
//!   `verified_through` (the start of the last complete, clean pass: every change TestIO made before it is mirrored).
//! - `testio_connections.verified_through`: the same for the whole tenant (the oldest of its products').
//! - `sync_runs` records what a run verified: list pages read, list pages in all lists, the products whose slice (or
//!   whole list) it read without a gap, and the tenant's `verified_through` when it ended.

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
            ALTER TABLE testio_scan_cursors
                ADD COLUMN verify_boundary_end_at timestamptz,
                ADD COLUMN verify_pass_started_at timestamptz,
                ADD COLUMN verify_pass_clean      boolean     NOT NULL DEFAULT true,
                ADD COLUMN verified_through       timestamptz;
            ALTER TABLE testio_connections ADD COLUMN verified_through timestamptz;
            ALTER TABLE sync_runs
                ADD COLUMN list_pages_read  integer NOT NULL DEFAULT 0,
                ADD COLUMN list_pages_total integer NOT NULL DEFAULT 0,
                ADD COLUMN products_verified integer NOT NULL DEFAULT 0,
                ADD COLUMN verified_through timestamptz;
            "#,
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(
            manager,
            r#"
            ALTER TABLE sync_runs DROP COLUMN list_pages_read, DROP COLUMN list_pages_total,
                                  DROP COLUMN products_verified, DROP COLUMN verified_through;
            ALTER TABLE testio_connections DROP COLUMN verified_through;
            ALTER TABLE testio_scan_cursors DROP COLUMN verify_boundary_end_at, DROP COLUMN verify_pass_started_at,
                                            DROP COLUMN verify_pass_clean, DROP COLUMN verified_through;
            "#,
        )
        .await
    }
}
