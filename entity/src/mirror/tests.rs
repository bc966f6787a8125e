//! `testio_tests`: the tests (TestIO's exploratory tests) of the tenant's products.

use std::collections::{HashMap, HashSet};

use sea_orm::entity::prelude::*;
use sea_orm::{PaginatorTrait, QueryOrder, QuerySelect};
use serde::Serialize;
use serde_json::Value as Json;
use testio::model::{TestStatus, Word};

use super::{RowCounts, Upserted, count, ids, ids_param, json_param, upsert};
use crate::db::stmt;
use crate::{TenantId, TenantTxn};

/// A test as the sync writes it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TestRow {
    pub testio_id: i64,
    pub product_id: i64,
    pub title: String,
    /// Serialized as the word: a status we do not know is stored as TestIO sent it (and is not final).
    pub status: Word<TestStatus>,
    pub testing_type: Option<String>,
    pub review_status: Option<String>,
    pub start_at: Option<DateTimeUtc>,
    pub end_at: Option<DateTimeUtc>,
    pub raw: Json,
}

/// A test as stored.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "testio_tests")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: TenantId,
    #[sea_orm(primary_key, auto_increment = false)]
    pub testio_id: i64,
    pub product_id: i64,
    pub title: String,
    /// A [`TestStatus`] word, or one we do not know as TestIO sent it (read it with [`Word::new`]).
    pub status: String,
    pub testing_type: Option<String>,
    pub review_status: Option<String>,
    pub start_at: Option<DateTimeUtc>,
    pub end_at: Option<DateTimeUtc>,
    pub raw: Json,
    pub first_synced_at: DateTimeUtc,
    pub changed_at: DateTimeUtc,
    /// When this test's bugs were last read completely; `None`: never.
    pub bugs_synced_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// The statuses after which a test no longer changes, as a query parameter: any other word (including one we do not
/// know) is open.
fn final_statuses() -> Result<Value, DbErr> {
    json_param(&TestStatus::FINAL)
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

/// The mirrored ids of a product's tests.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn test_ids_of_product(txn: &TenantTxn, product_id: i64) -> Result<Vec<i64>, DbErr> {
    Entity::find()
        .select_only()
        .column(Column::TestioId)
        .filter(Column::ProductId.eq(product_id))
        .into_tuple()
        .all(txn.conn())
        .await
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

/// Tests that can still change (their status is not final).
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn open_tests(txn: &TenantTxn) -> Result<Vec<i64>, DbErr> {
    let rows = txn
        .conn()
        .query_all_raw(stmt(
            "SELECT testio_id FROM testio_tests
              WHERE status NOT IN (SELECT jsonb_array_elements_text($1::jsonb)) ORDER BY testio_id",
            [final_statuses()?],
        ))
        .await?;
    ids(rows, "testio_id")
}

/// Tests whose bugs must be read every run: never read, the test can still change (a locked test's bugs still move),
/// the test changed since its bugs were last read (it just became final), or it ended after `review_since` (customers
/// accept and reject bugs in the weeks after a test ends). Bugs of the other tests are re-read as their part of the
/// list is verified.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn tests_needing_bugs(txn: &TenantTxn, review_since: DateTimeUtc) -> Result<Vec<i64>, DbErr> {
    let rows = txn
        .conn()
        .query_all_raw(stmt(
            "SELECT testio_id FROM testio_tests
              WHERE bugs_synced_at IS NULL OR bugs_synced_at < changed_at
                 OR status NOT IN (SELECT jsonb_array_elements_text($1::jsonb))
                 OR end_at > $2
              ORDER BY testio_id",
            [final_statuses()?, review_since.into()],
        ))
        .await?;
    ids(rows, "testio_id")
}

/// How many tests each product has in the mirror.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn counts_by_product(txn: &TenantTxn) -> Result<HashMap<i64, i64>, DbErr> {
    let rows: Vec<(i64, i64)> = Entity::find()
        .select_only()
        .column(Column::ProductId)
        .column_as(Column::TestioId.count(), "n")
        .group_by(Column::ProductId)
        .into_tuple()
        .all(txn.conn())
        .await?;
    Ok(rows.into_iter().collect())
}

/// How many of a product's mirrored tests end after `end_at`: where a test ending then stands in the product's list
/// (which TestIO orders by `end_at`, newest first), as far as the mirror knows.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn count_ending_after(txn: &TenantTxn, product_id: i64, end_at: DateTimeUtc) -> Result<i64, DbErr> {
    let n = Entity::find()
        .filter(Column::ProductId.eq(product_id))
        .filter(Column::EndAt.gt(end_at))
        .count(txn.conn())
        .await?;
    Ok(i64::try_from(n).unwrap_or(i64::MAX))
}

/// The latest `end_at` of a product's mirrored tests that end before `end_at`: the test the list shows next after it.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn latest_end_before(
    txn: &TenantTxn,
    product_id: i64,
    end_at: DateTimeUtc,
) -> Result<Option<DateTimeUtc>, DbErr> {
    Entity::find()
        .select_only()
        .column_as(Column::EndAt.max(), "latest")
        .filter(Column::ProductId.eq(product_id))
        .filter(Column::EndAt.lt(end_at))
        .into_tuple::<Option<DateTimeUtc>>()
        .one(txn.conn())
        .await
        .map(Option::flatten)
}

/// A product's mirrored tests that end strictly between `after` and `before` (`None`: unbounded on that side); tests
/// without an `end_at` are not placed anywhere in the list, so they are never among them.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn ids_ending_between(
    txn: &TenantTxn,
    product_id: i64,
    after: Option<DateTimeUtc>,
    before: Option<DateTimeUtc>,
) -> Result<Vec<i64>, DbErr> {
    let mut query = Entity::find()
        .select_only()
        .column(Column::TestioId)
        .filter(Column::ProductId.eq(product_id))
        .filter(Column::EndAt.is_not_null());
    if let Some(after) = after {
        query = query.filter(Column::EndAt.gt(after));
    }
    if let Some(before) = before {
        query = query.filter(Column::EndAt.lt(before));
    }
    query.order_by_asc(Column::TestioId).into_tuple().all(txn.conn()).await
}

/// A product's mirrored tests without an `end_at`.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn ids_without_end_at(txn: &TenantTxn, product_id: i64) -> Result<Vec<i64>, DbErr> {
    Entity::find()
        .select_only()
        .column(Column::TestioId)
        .filter(Column::ProductId.eq(product_id))
        .filter(Column::EndAt.is_null())
        .order_by_asc(Column::TestioId)
        .into_tuple()
        .all(txn.conn())
        .await
}

/// An open test and where the mirror places it in its product's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenTest {
    pub testio_id: i64,
    pub product_id: i64,
    /// Mirrored tests of the product that end after it.
    pub ending_after: i64,
}

/// Tests that can still change (their status is not final), with their place in their product's list.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn open_tests_placed(txn: &TenantTxn) -> Result<Vec<OpenTest>, DbErr> {
    let rows = txn
        .conn()
        .query_all_raw(stmt(
            "SELECT testio_id, product_id, ending_after FROM (
                 SELECT testio_id, product_id, status,
                        CASE WHEN end_at IS NULL THEN 0
                             ELSE rank() OVER (PARTITION BY product_id ORDER BY end_at DESC NULLS LAST) - 1
                        END AS ending_after
                   FROM testio_tests) placed
              WHERE status NOT IN (SELECT jsonb_array_elements_text($1::jsonb))
              ORDER BY product_id, testio_id",
            [final_statuses()?],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok(OpenTest {
                testio_id: r.try_get("", "testio_id")?,
                product_id: r.try_get("", "product_id")?,
                ending_after: r.try_get("", "ending_after")?,
            })
        })
        .collect()
}

/// Every mirrored test id.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn all_test_ids(txn: &TenantTxn) -> Result<Vec<i64>, DbErr> {
    Entity::find()
        .select_only()
        .column(Column::TestioId)
        .order_by_asc(Column::TestioId)
        .into_tuple()
        .all(txn.conn())
        .await
}

/// Every test, by id.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn all(txn: &TenantTxn) -> Result<Vec<Model>, DbErr> {
    Entity::find().order_by_asc(Column::TestioId).all(txn.conn()).await
}
