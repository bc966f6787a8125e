//! `testio_scan_cursors`: how far the backfill of each product's test list (newest first, towards the oldest) has
//! got, so that a history of any depth is read over several runs and a crash never restarts it from the top.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
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

/// The verification pass of a product whose backfill is done: each run re-lists a slice of its list, from the top
/// down to its end, and a pass that got there without a gap proves that every change TestIO made before the pass
/// started is mirrored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Verification {
    /// Where the next slice starts: the lowest `end_at` the last slice read; `None`: at the top (a new pass).
    pub boundary: Option<DateTime<Utc>>,
    /// When the current pass read its first slice.
    pub pass_started_at: Option<DateTime<Utc>>,
    /// No slice of the current pass left a gap.
    pub clean: bool,
    /// The start of the last complete, clean pass.
    pub verified_through: Option<DateTime<Utc>>,
}

/// The verification state of every product whose backfill is done (the others are not verified yet).
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn verifications(txn: &TenantTxn) -> Result<HashMap<i64, Verification>, DbErr> {
    let rows = txn
        .conn()
        .query_all_raw(stmt(
            "SELECT product_id, verify_boundary_end_at, verify_pass_started_at, verify_pass_clean, verified_through
               FROM testio_scan_cursors WHERE backfill_offset IS NULL",
            [],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            let state = Verification {
                boundary: r.try_get("", "verify_boundary_end_at")?,
                pass_started_at: r.try_get("", "verify_pass_started_at")?,
                clean: r.try_get("", "verify_pass_clean")?,
                verified_through: r.try_get("", "verified_through")?,
            };
            Ok((r.try_get("", "product_id")?, state))
        })
        .collect()
}

/// Saves the verification state of a product whose backfill is done.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn save_verification(txn: &TenantTxn, product_id: i64, state: &Verification) -> Result<(), DbErr> {
    txn.conn()
        .execute_raw(stmt(
            "UPDATE testio_scan_cursors
                SET verify_boundary_end_at = $2, verify_pass_started_at = $3, verify_pass_clean = $4,
                    verified_through = $5, updated_at = now()
              WHERE product_id = $1 AND backfill_offset IS NULL",
            [
                product_id.into(),
                state.boundary.into(),
                state.pass_started_at.into(),
                state.clean.into(),
                state.verified_through.into(),
            ],
        ))
        .await
        .map(|_| ())
}

/// How far the tenant's products are verified: how many products there are, whether each has completed a clean
/// pass, and the oldest of their `verified_through`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantVerification {
    pub products: i64,
    pub all_verified: bool,
    pub oldest: Option<DateTime<Utc>>,
}

#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn tenant_verification(txn: &TenantTxn) -> Result<TenantVerification, DbErr> {
    let row = txn
        .conn()
        .query_one_raw(stmt(
            "SELECT count(*) AS products,
                    coalesce(bool_and(c.verified_through IS NOT NULL), true) AS all_verified,
                    min(c.verified_through) AS oldest
               FROM testio_products p
               LEFT JOIN testio_scan_cursors c ON c.tenant_id = p.tenant_id AND c.product_id = p.testio_id",
            [],
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("aggregate row".to_owned()))?;
    Ok(TenantVerification {
        products: row.try_get("", "products")?,
        all_verified: row.try_get("", "all_verified")?,
        oldest: row.try_get("", "oldest")?,
    })
}
