//! The start-up check of the runtime role. The API and the worker rely on Postgres row-level security for tenant
//! isolation, which a superuser, a role with BYPASSRLS, or the owner of a table silently escape. So both refuse to
//! start when connected as such a role, and `/readyz` reports the same check. A role that may create temporary
//! tables is refused too: an injected statement could create one and move `pg_temp` ahead in the search path, and the
//! temporary table would then hide the real one for the rest of the session, which on a pooled connection outlives
//! the request.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

/// Why the connected role is unfit to serve tenants.
#[derive(Debug, thiserror::Error)]
pub enum RoleCheckError {
    #[error(
        "refusing to start: database role {role:?} {reason}. Connect the API and the worker as the runtime role \
         (a login role that is a member of testio_runtime, owns nothing, is not a superuser and has NOBYPASSRLS); \
         see `migration bootstrap`"
    )]
    Unsafe { role: String, reason: String },
    #[error("Failed to check the database role")]
    Database(#[from] DbErr),
}

const CHECK: &str = r#"
SELECT r.rolname::text AS role,
       r.rolsuper AS superuser,
       r.rolbypassrls AS bypass_rls,
       (SELECT string_agg(o.rolname::text, ', ' ORDER BY o.rolname) FROM pg_roles o
         WHERE (o.rolsuper OR o.rolbypassrls) AND o.oid <> r.oid AND pg_has_role(r.oid, o.oid, 'MEMBER'))
           AS privileged_memberships,
       (SELECT string_agg(c.relname::text, ', ' ORDER BY c.relname) FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
           AND pg_has_role(r.oid, c.relowner, 'MEMBER')) AS owned_tables,
       (SELECT string_agg(c.relname::text, ', ' ORDER BY c.relname) FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
          JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
           AND NOT (c.relrowsecurity AND c.relforcerowsecurity)) AS unprotected_tables,
       quote_ident(current_database()) AS database,
       has_database_privilege(r.oid, current_database(), 'TEMPORARY') AS temporary_tables
  FROM pg_roles r
 WHERE r.rolname = current_user
"#;

/// Checks the role of `db`'s connections. Ok only when it is not a superuser, lacks BYPASSRLS, cannot become a role
/// that has either, owns (directly or through membership) no table of the schema, and every table with a `tenant_id`
/// column has row-level security enabled and forced, and it may not create temporary tables in the database.
#[tracing::instrument(skip_all)]
pub async fn verify_runtime_role(db: &impl ConnectionTrait) -> Result<(), RoleCheckError> {
    let row = db
        .query_one_raw(Statement::from_string(DbBackend::Postgres, CHECK))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("current_user in pg_roles".into()))?;
    let role: String = row.try_get("", "role")?;
    let unsafe_because = |reason: String| Err(RoleCheckError::Unsafe { role: role.clone(), reason });
    if row.try_get::<bool>("", "superuser")? {
        return unsafe_because("is a superuser".into());
    }
    if row.try_get::<bool>("", "bypass_rls")? {
        return unsafe_because("has BYPASSRLS".into());
    }
    if let Some(roles) = row.try_get::<Option<String>>("", "privileged_memberships")? {
        return unsafe_because(format!("is a member of superuser or BYPASSRLS roles ({roles})"));
    }
    if let Some(tables) = row.try_get::<Option<String>>("", "owned_tables")? {
        return unsafe_because(format!("owns tables ({tables})"));
    }
    if let Some(tables) = row.try_get::<Option<String>>("", "unprotected_tables")? {
        return unsafe_because(format!("would read tenant tables without forced row-level security ({tables})"));
    }
    if row.try_get::<bool>("", "temporary_tables")? {
        let database: String = row.try_get("", "database")?;
        return unsafe_because(format!(
            "may create temporary tables in database {database} (REVOKE TEMPORARY ON DATABASE {database} FROM \
             PUBLIC, and from any role that granted it to this one; see migration 8)"
        ));
    }
    Ok(())
}

/// The start-up form of [`verify_runtime_role`]: waits (up to `timeout`) for the database to become reachable, then
/// fails at once if the role is unsafe. Used by both binaries so that they refuse to start in the same way.
pub async fn verify_at_startup(db: &impl ConnectionTrait, timeout: std::time::Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match verify_runtime_role(db).await {
            Ok(()) => return Ok(()),
            Err(RoleCheckError::Database(e))
                if entity::db::is_unavailable(&e) && tokio::time::Instant::now() < deadline =>
            {
                tracing::warn!(error = %e, "database not reachable yet; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
