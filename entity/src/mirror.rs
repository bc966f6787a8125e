//! The TestIO mirror: bulk writes and the reads the sync needs on `testio_products`, `testio_tests`, `testio_bugs`,
//! `testio_scan_cursors` and `sync_gaps`. Every function takes a [`TenantTxn`], so row-level security confines it to
//! one tenant.
//!
//! A page of rows is sent as one `jsonb` parameter and expanded by `jsonb_to_recordset`: one statement and one round
//! trip per page whatever its size, with no array types to bind. Upserts only rewrite a row whose content changed
//! (`WHERE ... IS DISTINCT FROM`), so an unchanged re-read costs no dead tuple, and `RETURNING (xmax = 0)` tells new
//! rows from updated ones.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, QueryResult, Value};
use serde::Serialize;
use serde_json::Value as Json;

use crate::TenantTxn;
use crate::db::stmt;

/// Statuses after which a test no longer changes.
pub const FINAL_TEST_STATUSES: [&str; 2] = ["archived", "cancelled"];

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProductRow {
    pub testio_id: i64,
    pub name: String,
    pub product_type: Option<String>,
    pub raw: Json,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TestRow {
    pub testio_id: i64,
    pub product_id: i64,
    pub title: String,
    pub status: String,
    pub testing_type: Option<String>,
    pub review_status: Option<String>,
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
    pub raw: Json,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BugRow {
    pub testio_id: i64,
    pub test_id: i64,
    pub title: String,
    pub severity: Option<String>,
    pub status: Option<String>,
    pub known: Option<bool>,
    pub auto_accepted: Option<bool>,
    pub reported_at: Option<DateTime<Utc>>,
    pub raw: Json,
}

/// Which rows of an upsert were new and which changed; rows that were already identical are in neither.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Upserted {
    pub new: Vec<i64>,
    pub updated: Vec<i64>,
}

fn json_param<T: Serialize>(rows: &T) -> Result<Value, DbErr> {
    serde_json::to_value(rows).map(Value::from).map_err(|e| DbErr::Custom(format!("Failed to encode rows: {e}")))
}

fn ids_param(ids: &[i64]) -> Value {
    Value::from(Json::from(ids.to_vec()))
}

/// Keeps the last row of each id: one statement may not update a row twice.
fn dedup<T>(rows: &[T], id: impl Fn(&T) -> i64) -> Vec<&T> {
    let mut seen = HashSet::new();
    let mut out: Vec<&T> = rows.iter().rev().filter(|r| seen.insert(id(r))).collect();
    out.reverse();
    out
}

fn upserted(rows: Vec<QueryResult>) -> Result<Upserted, DbErr> {
    let mut out = Upserted::default();
    for row in rows {
        let id: i64 = row.try_get("", "testio_id")?;
        if row.try_get::<bool>("", "inserted")? { out.new.push(id) } else { out.updated.push(id) }
    }
    Ok(out)
}

fn ids(rows: Vec<QueryResult>, column: &str) -> Result<Vec<i64>, DbErr> {
    rows.iter().map(|r| r.try_get("", column)).collect()
}

/// Runs an upsert `sql` (`$1` the tenant, `$2` the rows as a jsonb array) over `rows`, the last of each id winning.
async fn upsert<T: Serialize>(
    txn: &TenantTxn,
    sql: &str,
    rows: &[T],
    id: impl Fn(&T) -> i64,
) -> Result<Upserted, DbErr> {
    if rows.is_empty() {
        return Ok(Upserted::default());
    }
    let rows = dedup(rows, id);
    let result = txn.conn().query_all_raw(stmt(sql, [txn.tenant_id().0.into(), json_param(&rows)?])).await?;
    upserted(result)
}

#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id(), rows = rows.len()))]
pub async fn upsert_products(txn: &TenantTxn, rows: &[ProductRow]) -> Result<Upserted, DbErr> {
    let sql = "INSERT INTO testio_products (tenant_id, testio_id, name, product_type, raw)
               SELECT $1, r.testio_id, r.name, r.product_type, r.raw
                 FROM jsonb_to_recordset($2::jsonb) AS r(testio_id bigint, name text, product_type text, raw jsonb)
               ON CONFLICT (tenant_id, testio_id) DO UPDATE
                  SET name = EXCLUDED.name, product_type = EXCLUDED.product_type, raw = EXCLUDED.raw,
                      changed_at = now()
                WHERE testio_products.raw IS DISTINCT FROM EXCLUDED.raw
            RETURNING testio_id, (xmax = 0) AS inserted";
    upsert(txn, sql, rows, |r| r.testio_id).await
}

#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id(), rows = rows.len()))]
pub async fn upsert_tests(txn: &TenantTxn, rows: &[TestRow]) -> Result<Upserted, DbErr> {
    let sql = "INSERT INTO testio_tests (tenant_id, testio_id, product_id, title, status, testing_type, review_status,
                                         start_at, end_at, raw)
               SELECT $1, r.testio_id, r.product_id, r.title, r.status, r.testing_type, r.review_status, r.start_at,
                      r.end_at, r.raw
                 FROM jsonb_to_recordset($2::jsonb) AS r(testio_id bigint, product_id bigint, title text, status text,
                      testing_type text, review_status text, start_at timestamptz, end_at timestamptz, raw jsonb)
               ON CONFLICT (tenant_id, testio_id) DO UPDATE
                  SET product_id = EXCLUDED.product_id, title = EXCLUDED.title, status = EXCLUDED.status,
                      testing_type = EXCLUDED.testing_type, review_status = EXCLUDED.review_status,
                      start_at = EXCLUDED.start_at, end_at = EXCLUDED.end_at, raw = EXCLUDED.raw, changed_at = now()
                WHERE testio_tests.raw IS DISTINCT FROM EXCLUDED.raw
                   OR testio_tests.product_id IS DISTINCT FROM EXCLUDED.product_id
            RETURNING testio_id, (xmax = 0) AS inserted";
    upsert(txn, sql, rows, |r| r.testio_id).await
}

#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id(), rows = rows.len()))]
pub async fn upsert_bugs(txn: &TenantTxn, rows: &[BugRow]) -> Result<Upserted, DbErr> {
    let sql = "INSERT INTO testio_bugs (tenant_id, testio_id, test_id, title, severity, status, known, auto_accepted,
                                        reported_at, raw)
               SELECT $1, r.testio_id, r.test_id, r.title, r.severity, r.status, r.known, r.auto_accepted,
                      r.reported_at, r.raw
                 FROM jsonb_to_recordset($2::jsonb) AS r(testio_id bigint, test_id bigint, title text, severity text,
                      status text, known boolean, auto_accepted boolean, reported_at timestamptz, raw jsonb)
               ON CONFLICT (tenant_id, testio_id) DO UPDATE
                  SET test_id = EXCLUDED.test_id, title = EXCLUDED.title, severity = EXCLUDED.severity,
                      status = EXCLUDED.status, known = EXCLUDED.known, auto_accepted = EXCLUDED.auto_accepted,
                      reported_at = EXCLUDED.reported_at, raw = EXCLUDED.raw, changed_at = now()
                WHERE testio_bugs.raw IS DISTINCT FROM EXCLUDED.raw
                   OR testio_bugs.test_id IS DISTINCT FROM EXCLUDED.test_id
            RETURNING testio_id, (xmax = 0) AS inserted";
    upsert(txn, sql, rows, |r| r.testio_id).await
}

/// Deletes the bugs of `test_ids` that are not in `keep`: the bug list of those tests was read completely and these
/// are gone. Returns the deleted ids.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn delete_bugs_except(txn: &TenantTxn, test_ids: &[i64], keep: &[i64]) -> Result<Vec<i64>, DbErr> {
    if test_ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = txn
        .conn()
        .query_all_raw(stmt(
            "DELETE FROM testio_bugs
              WHERE test_id IN (SELECT jsonb_array_elements_text($1::jsonb)::bigint)
                AND testio_id NOT IN (SELECT jsonb_array_elements_text($2::jsonb)::bigint)
          RETURNING testio_id",
            [ids_param(test_ids), ids_param(keep)],
        ))
        .await?;
    ids(rows, "testio_id")
}

/// Records that the bugs of `test_ids` were read completely now.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn mark_bugs_synced(txn: &TenantTxn, test_ids: &[i64]) -> Result<(), DbErr> {
    if test_ids.is_empty() {
        return Ok(());
    }
    txn.conn()
        .execute_raw(stmt(
            "UPDATE testio_tests SET bugs_synced_at = now()
              WHERE testio_id IN (SELECT jsonb_array_elements_text($1::jsonb)::bigint)",
            [ids_param(test_ids)],
        ))
        .await
        .map(|_| ())
}

/// Rows by kind (deleted ones, or the mirror's totals).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowCounts {
    pub products: u64,
    pub tests: u64,
    pub bugs: u64,
}

/// Deletes tests (and, by cascade, their bugs).
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn delete_tests(txn: &TenantTxn, test_ids: &[i64]) -> Result<RowCounts, DbErr> {
    if test_ids.is_empty() {
        return Ok(RowCounts::default());
    }
    let bugs = count(
        txn,
        "SELECT count(*) AS n FROM testio_bugs WHERE test_id IN (SELECT jsonb_array_elements_text($1::jsonb)::bigint)",
        ids_param(test_ids),
    )
    .await?;
    let tests = txn
        .conn()
        .execute_raw(stmt(
            "DELETE FROM testio_tests WHERE testio_id IN (SELECT jsonb_array_elements_text($1::jsonb)::bigint)",
            [ids_param(test_ids)],
        ))
        .await?
        .rows_affected();
    Ok(RowCounts { products: 0, tests, bugs })
}

/// Deletes every product not in `keep` (the complete product list), with their tests and bugs.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn delete_products_except(txn: &TenantTxn, keep: &[i64]) -> Result<RowCounts, DbErr> {
    let gone = "(SELECT testio_id FROM testio_products
                  WHERE testio_id NOT IN (SELECT jsonb_array_elements_text($1::jsonb)::bigint))";
    let tests =
        count(txn, &format!("SELECT count(*) AS n FROM testio_tests WHERE product_id IN {gone}"), ids_param(keep))
            .await?;
    let bugs = count(
        txn,
        &format!(
            "SELECT count(*) AS n FROM testio_bugs b JOIN testio_tests t ON t.testio_id = b.test_id
              WHERE t.product_id IN {gone}"
        ),
        ids_param(keep),
    )
    .await?;
    let products = txn
        .conn()
        .execute_raw(stmt(&format!("DELETE FROM testio_products WHERE testio_id IN {gone}"), [ids_param(keep)]))
        .await?
        .rows_affected();
    Ok(RowCounts { products, tests, bugs })
}

async fn count(txn: &TenantTxn, sql: &str, param: Value) -> Result<u64, DbErr> {
    let row = txn.conn().query_one_raw(stmt(sql, [param])).await?;
    let n: i64 = match row {
        Some(row) => row.try_get("", "n")?,
        None => 0,
    };
    Ok(u64::try_from(n).unwrap_or_default())
}

/// The mirrored ids of a product's tests.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn test_ids_of_product(txn: &TenantTxn, product_id: i64) -> Result<Vec<i64>, DbErr> {
    let rows = txn
        .conn()
        .query_all_raw(stmt("SELECT testio_id FROM testio_tests WHERE product_id = $1", [product_id.into()]))
        .await?;
    ids(rows, "testio_id")
}

/// Of `candidates`, the ids already mirrored.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn known_test_ids(txn: &TenantTxn, candidates: &[i64]) -> Result<HashSet<i64>, DbErr> {
    if candidates.is_empty() {
        return Ok(HashSet::new());
    }
    let rows = txn
        .conn()
        .query_all_raw(stmt(
            "SELECT testio_id FROM testio_tests
              WHERE testio_id IN (SELECT jsonb_array_elements_text($1::jsonb)::bigint)",
            [ids_param(candidates)],
        ))
        .await?;
    Ok(ids(rows, "testio_id")?.into_iter().collect())
}

/// Tests that can still change (not archived or cancelled), with their product.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn open_tests(txn: &TenantTxn) -> Result<Vec<i64>, DbErr> {
    let rows = txn
        .conn()
        .query_all_raw(stmt(
            "SELECT testio_id FROM testio_tests WHERE status NOT IN ('archived', 'cancelled') ORDER BY testio_id",
            [],
        ))
        .await?;
    ids(rows, "testio_id")
}

/// Tests whose bugs must be read: never read, the test can still change (a locked test's bugs still move), or the
/// test changed since its bugs were last read (it just became final).
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn tests_needing_bugs(txn: &TenantTxn) -> Result<Vec<i64>, DbErr> {
    let rows = txn
        .conn()
        .query_all_raw(stmt(
            "SELECT testio_id FROM testio_tests
              WHERE bugs_synced_at IS NULL OR bugs_synced_at < changed_at
                 OR status NOT IN ('archived', 'cancelled')
              ORDER BY testio_id",
            [],
        ))
        .await?;
    ids(rows, "testio_id")
}

/// Every mirrored test id.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn all_test_ids(txn: &TenantTxn) -> Result<Vec<i64>, DbErr> {
    let rows = txn.conn().query_all_raw(stmt("SELECT testio_id FROM testio_tests ORDER BY testio_id", [])).await?;
    ids(rows, "testio_id")
}

/// Where the backfill of a product stands: `Some(offset)` to continue from, `None` when the whole history was read,
/// and no row yet for a product never scanned (the caller starts at offset 0).
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn backfill_cursor(txn: &TenantTxn, product_id: i64) -> Result<Option<Option<i64>>, DbErr> {
    let row = txn
        .conn()
        .query_one_raw(stmt(
            "SELECT backfill_offset FROM testio_scan_cursors WHERE product_id = $1",
            [product_id.into()],
        ))
        .await?;
    row.map(|r| r.try_get::<Option<i64>>("", "backfill_offset")).transpose()
}

/// Saves the backfill position of a product (`None`: complete).
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn set_backfill_cursor(txn: &TenantTxn, product_id: i64, offset: Option<i64>) -> Result<(), DbErr> {
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

/// A part of the source a sync could not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// Identifies the gap across runs, e.g. `test_page:42:150`, `test:1234`, `bugs:1234`.
    pub key: String,
    pub kind: &'static str,
    pub product_id: Option<i64>,
    pub page_offset: Option<i64>,
    pub item_id: Option<i64>,
    pub reason: String,
}

impl Gap {
    pub fn test_page(product_id: i64, offset: i64, reason: String) -> Self {
        Self {
            key: format!("test_page:{product_id}:{offset}"),
            kind: "test_page",
            product_id: Some(product_id),
            page_offset: Some(offset),
            item_id: None,
            reason,
        }
    }

    pub fn test(product_id: Option<i64>, test_id: i64, reason: String) -> Self {
        Self {
            key: format!("test:{test_id}"),
            kind: "test",
            product_id,
            page_offset: None,
            item_id: Some(test_id),
            reason,
        }
    }

    pub fn bugs(test_id: i64, reason: String) -> Self {
        Self {
            key: format!("bugs:{test_id}"),
            kind: "bugs",
            product_id: None,
            page_offset: None,
            item_id: Some(test_id),
            reason,
        }
    }

    pub fn bug(test_id: i64, bug_id: Option<i64>, reason: String) -> Self {
        Self {
            key: format!("bug:{test_id}:{}", bug_id.map(|b| b.to_string()).unwrap_or_default()),
            kind: "bug",
            product_id: None,
            page_offset: None,
            item_id: Some(test_id),
            reason,
        }
    }

    pub fn product(product_id: Option<i64>, reason: String) -> Self {
        Self {
            key: format!("product:{}", product_id.map(|p| p.to_string()).unwrap_or_default()),
            kind: "product",
            product_id,
            page_offset: None,
            item_id: product_id,
            reason,
        }
    }
}

/// An open gap as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenGap {
    pub key: String,
    pub kind: String,
    pub product_id: Option<i64>,
    pub page_offset: Option<i64>,
    pub item_id: Option<i64>,
    pub attempts: i32,
}

/// Opens a gap, or counts one more attempt on the same open gap. Returns whether it is new.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id(), key = %gap.key))]
pub async fn open_gap(txn: &TenantTxn, gap: &Gap) -> Result<bool, DbErr> {
    let row = txn
        .conn()
        .query_one_raw(stmt(
            "INSERT INTO sync_gaps (tenant_id, id, key, kind, product_id, page_offset, item_id, reason)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (tenant_id, key) WHERE resolved_at IS NULL DO UPDATE
                SET attempts = sync_gaps.attempts + 1, last_seen_at = now(), reason = EXCLUDED.reason
          RETURNING (xmax = 0) AS inserted",
            [
                txn.tenant_id().0.into(),
                uuid::Uuid::now_v7().into(),
                gap.key.clone().into(),
                gap.kind.into(),
                gap.product_id.into(),
                gap.page_offset.into(),
                gap.item_id.into(),
                crate::audit::truncate(&gap.reason, 1000).into(),
            ],
        ))
        .await?;
    row.map(|r| r.try_get::<bool>("", "inserted")).transpose().map(|b| b.unwrap_or(false))
}

/// Closes the open gaps with these keys; returns how many were open.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn resolve_gaps(txn: &TenantTxn, keys: &[String]) -> Result<u64, DbErr> {
    if keys.is_empty() {
        return Ok(0);
    }
    let param = Value::from(Json::from(keys.to_vec()));
    Ok(txn
        .conn()
        .execute_raw(stmt(
            "UPDATE sync_gaps SET resolved_at = now()
              WHERE resolved_at IS NULL AND key IN (SELECT jsonb_array_elements_text($1::jsonb))",
            [param],
        ))
        .await?
        .rows_affected())
}

/// Closes open gaps not met again by the run that started at `since` whose subject is gone: bug gaps of tests no
/// longer mirrored, page and product gaps of products no longer listed, product gaps without an id. Returns how many.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn resolve_stale_gaps(txn: &TenantTxn, since: DateTime<Utc>, listed_products: &[i64]) -> Result<u64, DbErr> {
    Ok(txn
        .conn()
        .execute_raw(stmt(
            "UPDATE sync_gaps SET resolved_at = now()
              WHERE resolved_at IS NULL AND last_seen_at < $1
                AND (   (kind IN ('bugs', 'bug')
                         AND NOT EXISTS (SELECT 1 FROM testio_tests t WHERE t.testio_id = sync_gaps.item_id))
                     OR (kind IN ('test_page', 'product')
                         AND (product_id IS NULL
                              OR product_id NOT IN (SELECT jsonb_array_elements_text($2::jsonb)::bigint))))",
            [since.into(), ids_param(listed_products)],
        ))
        .await?
        .rows_affected())
}

/// Open gaps, oldest first.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn open_gaps(txn: &TenantTxn) -> Result<Vec<OpenGap>, DbErr> {
    let rows = txn
        .conn()
        .query_all_raw(stmt(
            "SELECT key, kind, product_id, page_offset, item_id, attempts FROM sync_gaps
              WHERE resolved_at IS NULL ORDER BY first_seen_at",
            [],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok(OpenGap {
                key: r.try_get("", "key")?,
                kind: r.try_get("", "kind")?,
                product_id: r.try_get("", "product_id")?,
                page_offset: r.try_get("", "page_offset")?,
                item_id: r.try_get("", "item_id")?,
                attempts: r.try_get("", "attempts")?,
            })
        })
        .collect()
}

/// Drops the tenant's whole mirror (products, tests, bugs, cursors, gaps); sync runs are kept as history.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn reset(txn: &TenantTxn) -> Result<RowCounts, DbErr> {
    let all = totals(txn).await?;
    for sql in ["DELETE FROM sync_gaps", "DELETE FROM testio_products"] {
        txn.conn().execute_raw(stmt(sql, [])).await?;
    }
    Ok(all)
}

/// Counts of the tenant's mirror.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn totals(txn: &TenantTxn) -> Result<RowCounts, DbErr> {
    let row = txn
        .conn()
        .query_one_raw(stmt(
            "SELECT (SELECT count(*) FROM testio_products) AS products, (SELECT count(*) FROM testio_tests) AS tests,
                    (SELECT count(*) FROM testio_bugs) AS bugs",
            [],
        ))
        .await?;
    let get = |c: &str| -> Result<u64, DbErr> {
        Ok(row.as_ref().map(|r| r.try_get::<i64>("", c)).transpose()?.map(|n| n.max(0) as u64).unwrap_or_default())
    };
    Ok(RowCounts { products: get("products")?, tests: get("tests")?, bugs: get("bugs")? })
}
