//! [`TenantTxn`]: a database transaction bound to one tenant.
//!
//! Its first statement is `SELECT set_config('app.tenant_id', $1, true)`: a bound parameter (`SET LOCAL` cannot take
//! one) and transaction-local (`true`), so the setting can never leak to the next user of the pooled connection.
//! Row-level security policies read it; every query on a tenant-owned table goes through this type.

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, Statement, TransactionTrait,
};

use crate::TenantId;

/// A transaction in which `app.tenant_id` is set. Commit with [`TenantTxn::commit`]; dropping it rolls back.
pub struct TenantTxn {
    txn: DatabaseTransaction,
    tenant_id: TenantId,
}

impl TenantTxn {
    /// Begins a transaction and binds it to `tenant_id`.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant_id))]
    pub async fn begin(db: &DatabaseConnection, tenant_id: TenantId) -> Result<Self, DbErr> {
        let txn = db.begin().await?;
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT set_config('app.tenant_id', $1, true)",
            [tenant_id.0.to_string().into()],
        ))
        .await?;
        Ok(Self { txn, tenant_id })
    }

    /// The tenant this transaction is bound to.
    pub fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }

    /// Commits the work of the transaction.
    pub async fn commit(self) -> Result<(), DbErr> {
        self.txn.commit().await
    }

    /// Rolls back explicitly (dropping does the same, but without waiting for it).
    pub async fn rollback(self) -> Result<(), DbErr> {
        self.txn.rollback().await
    }

    /// The underlying connection, for the query functions of this crate. Not public: code outside `entity` reaches
    /// tenant data only through the functions here, which all take `&TenantTxn`.
    pub(crate) fn conn(&self) -> &DatabaseTransaction {
        &self.txn
    }
}
