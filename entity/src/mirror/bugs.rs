//! `testio_bugs`: the bugs of the tenant's tests.

use sea_orm::QueryOrder;
use sea_orm::entity::prelude::*;
use serde::Serialize;
use serde_json::Value as Json;

use super::{Upserted, ids, ids_param, upsert};
use crate::db::stmt;
use crate::{TenantId, TenantTxn};

/// A bug as the sync writes it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BugRow {
    pub testio_id: i64,
    pub test_id: i64,
    pub title: String,
    pub severity: Option<String>,
    pub status: Option<String>,
    pub known: Option<bool>,
    pub auto_accepted: Option<bool>,
    pub reported_at: Option<DateTimeUtc>,
    pub raw: Json,
}

/// A bug as stored.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "testio_bugs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: TenantId,
    #[sea_orm(primary_key, auto_increment = false)]
    pub testio_id: i64,
    pub test_id: i64,
    /// The product of its test.
    pub product_id: i64,
    pub title: String,
    pub severity: Option<String>,
    pub status: Option<String>,
    pub known: Option<bool>,
    pub auto_accepted: Option<bool>,
    pub reported_at: Option<DateTimeUtc>,
    pub raw: Json,
    pub first_synced_at: DateTimeUtc,
    pub changed_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id(), rows = rows.len()))]
pub async fn upsert_bugs(txn: &TenantTxn, rows: &[BugRow]) -> Result<Upserted, DbErr> {
    // The product is the test's (a missing test leaves it NULL, which the NOT NULL constraint refuses, as the
    // foreign key did before the column existed).
    let sql = "INSERT INTO testio_bugs (tenant_id, testio_id, test_id, product_id, title, severity, status, known,
                                        auto_accepted, reported_at, raw)
               SELECT $1, r.testio_id, r.test_id, t.product_id, r.title, r.severity, r.status, r.known,
                      r.auto_accepted, r.reported_at, r.raw
                 FROM jsonb_to_recordset($2::jsonb) AS r(testio_id bigint, test_id bigint, title text, severity text,
                      status text, known boolean, auto_accepted boolean, reported_at timestamptz, raw jsonb)
                 LEFT JOIN testio_tests t ON t.testio_id = r.test_id
               ON CONFLICT (tenant_id, testio_id) DO UPDATE
                  SET test_id = EXCLUDED.test_id, product_id = EXCLUDED.product_id, title = EXCLUDED.title,
                      severity = EXCLUDED.severity, status = EXCLUDED.status, known = EXCLUDED.known,
                      auto_accepted = EXCLUDED.auto_accepted, reported_at = EXCLUDED.reported_at, raw = EXCLUDED.raw,
                      changed_at = now()
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

/// Records that the bugs of `test_ids` were read completely now (on their tests: the bugs a test had may all be
/// gone).
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

/// Every bug, by id.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn all(txn: &TenantTxn) -> Result<Vec<Model>, DbErr> {
    Entity::find().order_by_asc(Column::TestioId).all(txn.conn()).await
}
