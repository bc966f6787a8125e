//! `testio_products`: the products of the tenant's TestIO account.

use sea_orm::QueryOrder;
use sea_orm::entity::prelude::*;
use serde::Serialize;
use serde_json::Value as Json;

use super::{RowCounts, Upserted, count, ids_param, upsert};
use crate::db::stmt;
use crate::{TenantId, TenantTxn};

/// A product as the sync writes it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProductRow {
    pub testio_id: i64,
    pub name: String,
    pub product_type: Option<String>,
    pub raw: Json,
}

/// A product as stored.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "testio_products")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: TenantId,
    #[sea_orm(primary_key, auto_increment = false)]
    pub testio_id: i64,
    pub name: String,
    pub product_type: Option<String>,
    pub raw: Json,
    pub first_synced_at: DateTimeUtc,
    pub changed_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

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

/// Every product, by id.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn all(txn: &TenantTxn) -> Result<Vec<Model>, DbErr> {
    Entity::find().order_by_asc(Column::TestioId).all(txn.conn()).await
}
