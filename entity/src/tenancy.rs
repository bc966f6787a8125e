//! [`TenantTxn`]: a database transaction bound to one tenant.
//!
//! Its first statement is `SELECT set_config('app.tenant_id', $1, true)`: a bound parameter (`SET LOCAL` cannot take
//! one) and transaction-local (`true`), so the setting can never leak to the next user of the pooled connection.
//! Row-level security policies read it; every query on a tenant-owned table goes through this type. A request's
//! transaction is bound instead by the statement that also authenticates its caller ([`crate::request_auth`]).

use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, Statement};

use crate::{TenantId, UserId};

/// The reserved tenant that holds the audit trail of events belonging to no organisation (logins, sessions,
/// platform-admin changes). Created by the migrations; inactive and memberless.
pub const PLATFORM_TENANT: TenantId = TenantId(uuid::Uuid::nil());

/// A transaction in which `app.tenant_id` is set. Commit with [`TenantTxn::commit`]; dropping it rolls back.
pub struct TenantTxn {
    txn: DatabaseTransaction,
    tenant_id: TenantId,
}

impl TenantTxn {
    /// Begins a transaction and binds it to `tenant_id`.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant_id))]
    pub async fn begin(db: &DatabaseConnection, tenant_id: TenantId) -> Result<Self, DbErr> {
        let txn = crate::db::begin(db).await?;
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT set_config('app.tenant_id', $1, true)",
            [tenant_id.0.to_string().into()],
        ))
        .await?;
        Ok(Self { txn, tenant_id })
    }

    /// Wraps `txn`, whose first statement has bound it to `tenant_id` by other means (the functions of
    /// [`crate::request_auth`], which bind and authenticate in one statement).
    pub(crate) fn bound(txn: DatabaseTransaction, tenant_id: TenantId) -> Self {
        Self { txn, tenant_id }
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

/// Where the functions on global tables (`users`, `tenants`, `sessions`...) run: the pool, or a [`TenantTxn`] when the
/// change must commit together with tenant work and its audit row. Sealed: only this crate can reach the connection
/// inside, so code outside `entity` cannot run its own statements in a tenant transaction; within one, tenant data is
/// reached only through the functions here. (Other crates still hold the pool and could bind a transaction to a
/// tenant by hand; `tests/tests/api/layering.rs` fails if any crate but `entity` mentions `app.tenant_id`.)
pub trait Db: Sync {
    #[doc(hidden)]
    type Conn: ConnectionTrait;
    #[doc(hidden)]
    fn connection(&self, _: private::Token) -> &Self::Conn;
}

mod private {
    /// Unnameable outside this crate: it is what keeps [`super::Db::connection`] uncallable elsewhere.
    pub struct Token;
}

/// The connection inside `db`, for this crate's query functions.
pub(crate) fn conn<D: Db>(db: &D) -> &D::Conn {
    db.connection(private::Token)
}

impl Db for DatabaseConnection {
    type Conn = DatabaseConnection;
    fn connection(&self, _: private::Token) -> &DatabaseConnection {
        self
    }
}

impl Db for TenantTxn {
    type Conn = DatabaseTransaction;
    fn connection(&self, _: private::Token) -> &DatabaseTransaction {
        &self.txn
    }
}

/// A transaction in which `app.user_id` is set: row-level security then shows the user's own memberships in every
/// tenant (and nothing else of those tenants). Used for "my tenants" and `/v1/me`.
pub struct UserTxn {
    txn: DatabaseTransaction,
    user_id: UserId,
}

impl UserTxn {
    #[tracing::instrument(skip_all, fields(user_id = %user_id))]
    pub async fn begin(db: &DatabaseConnection, user_id: UserId) -> Result<Self, DbErr> {
        let txn = crate::db::begin(db).await?;
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT set_config('app.user_id', $1, true)",
            [user_id.0.to_string().into()],
        ))
        .await?;
        Ok(Self { txn, user_id })
    }

    pub fn user_id(&self) -> UserId {
        self.user_id
    }

    pub async fn commit(self) -> Result<(), DbErr> {
        self.txn.commit().await
    }

    pub(crate) fn conn(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

/// A transaction of a platform admin's audit review: it runs as the reader role (`SET LOCAL ROLE
/// testio_audit_reader`, see migration `m20261202_000013_audit_review`), which may read every tenant's audit events
/// and nothing else. Only [`crate::audit::query`] reads through it.
pub struct PlatformAuditTxn {
    txn: DatabaseTransaction,
}

impl PlatformAuditTxn {
    /// Begins the transaction and switches to the reader role, in one statement that also checks that `user` is still
    /// an enabled platform admin; `None` (and nothing switched) when they are not.
    #[tracing::instrument(skip_all, fields(user_id = %user))]
    pub async fn begin(db: &DatabaseConnection, user: UserId) -> Result<Option<Self>, DbErr> {
        let txn = crate::db::begin(db).await?;
        let switched = txn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT set_config('role', 'testio_audit_reader', true) FROM users
                  WHERE id = $1 AND is_platform_admin AND disabled_at IS NULL",
                [user.0.into()],
            ))
            .await?;
        Ok(switched.map(|_| Self { txn }))
    }

    /// Ends the (read-only) transaction.
    pub async fn commit(self) -> Result<(), DbErr> {
        self.txn.commit().await
    }

    pub(crate) fn conn(&self) -> &DatabaseTransaction {
        &self.txn
    }
}
