//! Helpers shared by the migrations: running a batch of SQL, and the RLS shape every tenant-owned table gets.

use sea_orm_migration::prelude::*;

/// Runs a script of SQL statements (simple-query protocol, so several statements and `DO` blocks are fine).
pub async fn run(manager: &SchemaManager<'_>, sql: &str) -> Result<(), DbErr> {
    manager.get_connection().execute_unprepared(sql).await?;
    Ok(())
}

/// The SQL expression every tenant policy compares `tenant_id` with. `nullif` because the setting reads `''` once the
/// transaction that set it has ended; the sub-select so Postgres evaluates it once per statement, not once per row.
pub const CURRENT_TENANT: &str = "(select nullif(current_setting('app.tenant_id', true), '')::uuid)";

/// `ENABLE` + `FORCE` row-level security on `table` with one policy that both filters (`USING`) and checks writes
/// (`WITH CHECK`) against the transaction's tenant.
pub fn tenant_rls(table: &str) -> String {
    format!(
        "ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
         ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
         CREATE POLICY {table}_tenant_isolation ON {table}
             USING (tenant_id = {CURRENT_TENANT})
             WITH CHECK (tenant_id = {CURRENT_TENANT});"
    )
}
