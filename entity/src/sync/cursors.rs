//! `testio_scan_cursors`: how far the backfill of each product's test list (newest first, towards the oldest) has
//! got, so that a history of any depth is read over several runs and a crash never restarts it from the top.

use sea_orm::{ConnectionTrait, DbErr};

use crate::TenantTxn;
use crate::db::stmt;

/// Where the backfill of a product stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackfillCursor {
    /// The product was never scanned (no cursor row): its first scan is its backfill and starts at offset 0.
    NotStarted,
    /// The backfill continues at this offset of the list.
    At(i64),
    /// The whole history has been read.
    Done,
}

/// What a scan saves: how far the backfill got. (A scan never sets a product back to [`BackfillCursor::NotStarted`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackfillProgress {
    /// The backfill continues at this offset.
    At(i64),
    /// The whole history has been read.
    Done,
}

/// Where the backfill of a product stands.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn backfill_cursor(txn: &TenantTxn, product_id: i64) -> Result<BackfillCursor, DbErr> {
    let row = txn
        .conn()
        .query_one_raw(stmt(
            "SELECT backfill_offset FROM testio_scan_cursors WHERE product_id = $1",
            [product_id.into()],
        ))
        .await?;
    // A row with a NULL offset: complete (the column's meaning, see the migration).
    Ok(match row.map(|r| r.try_get::<Option<i64>>("", "backfill_offset")).transpose()? {
        None => BackfillCursor::NotStarted,
        Some(Some(offset)) => BackfillCursor::At(offset),
        Some(None) => BackfillCursor::Done,
    })
}

/// Saves how far the backfill of a product got.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn set_backfill_cursor(txn: &TenantTxn, product_id: i64, progress: BackfillProgress) -> Result<(), DbErr> {
    let offset = match progress {
        BackfillProgress::At(offset) => Some(offset),
        BackfillProgress::Done => None,
    };
    txn.conn()
        .execute_raw(stmt(
            "INSERT INTO testio_scan_cursors (tenant_id, product_id, backfill_offset, backfill_completed_at)
             VALUES ($1, $2, $3, CASE WHEN $3::bigint IS NULL THEN now() END)
             ON CONFLICT (tenant_id, product_id) DO UPDATE
                SET backfill_offset = EXCLUDED.backfill_offset,
                    backfill_completed_at = COALESCE(EXCLUDED.backfill_completed_at,
                                                     testio_scan_cursors.backfill_completed_at),
                    updated_at = now()",
            [txn.tenant_id().0.into(), product_id.into(), offset.into()],
        ))
        .await
        .map(|_| ())
}
