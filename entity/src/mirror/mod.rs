//! The TestIO mirror: each tenant's copy of its products, tests and bugs (`testio_products`, `testio_tests`,
//! `testio_bugs`), one module per table with its row, its bulk writes, the reads the sync needs, and a sea-orm entity
//! for everything else that reads the mirror. Every function takes a [`TenantTxn`], so row-level security confines it
//! to one tenant. The sync's own bookkeeping (runs, schedule, gaps, backfill cursors) is in [`crate::sync`].
//!
//! Writes are SQL rather than sea-orm: a page of rows is sent as one `jsonb` parameter and expanded by
//! `jsonb_to_recordset`: one statement and one round trip per page whatever its size, with no array types to bind.
//! Upserts only rewrite a row whose content changed (`WHERE ... IS DISTINCT FROM`), so an unchanged re-read costs no
//! dead tuple, and `RETURNING (xmax = 0)` tells new rows from updated ones.

pub mod bugs;
pub mod products;
pub mod query;
pub mod tests;

use std::collections::HashSet;

use sea_orm::{ConnectionTrait, DbErr, QueryResult, Value};
use serde::Serialize;
use serde_json::Value as Json;

pub use bugs::{BugRow, delete_bugs_except, mark_bugs_synced, upsert_bugs};
pub use products::{ProductRow, delete_products_except, upsert_products};
pub use tests::{
    OpenTest, TestRow, all_test_ids, count_ending_after, counts_by_product, delete_tests, ids_ending_between,
    ids_without_end_at, known_test_ids, latest_end_before, open_tests, open_tests_placed, test_ids_of_product,
    tests_needing_bugs, upsert_tests,
};

use crate::TenantTxn;
use crate::db::stmt;

/// Which rows of an upsert were new and which changed; rows that were already identical are in neither.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Upserted {
    pub new: Vec<i64>,
    pub updated: Vec<i64>,
}

pub(crate) fn json_param<T: Serialize>(rows: &T) -> Result<Value, DbErr> {
    serde_json::to_value(rows).map(Value::from).map_err(|e| DbErr::Custom(format!("Failed to encode rows: {e}")))
}

pub(crate) fn ids_param(ids: &[i64]) -> Value {
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

pub(crate) fn ids(rows: Vec<QueryResult>, column: &str) -> Result<Vec<i64>, DbErr> {
    rows.iter().map(|r| r.try_get("", column)).collect()
}

/// Runs an upsert `sql` (`$1` the tenant, `$2` the rows as a jsonb array) over `rows`, the last of each id winning.
pub(crate) async fn upsert<T: Serialize>(
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

/// Rows by kind (deleted ones, or the mirror's totals).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowCounts {
    pub products: u64,
    pub tests: u64,
    pub bugs: u64,
}

pub(crate) async fn count(txn: &TenantTxn, sql: &str, param: Value) -> Result<u64, DbErr> {
    let row = txn.conn().query_one_raw(stmt(sql, [param])).await?;
    let n: i64 = match row {
        Some(row) => row.try_get("", "n")?,
        None => 0,
    };
    Ok(u64::try_from(n).unwrap_or_default())
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
