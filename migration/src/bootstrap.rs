//! One-time, idempotent preparation of a Postgres cluster for TestIO Hub, run with superuser rights: the owner role
//! (runs migrations, owns every object), the runtime group role, the runtime login role (what the API and the worker
//! connect as) and the database. Role names, passwords and the database name are read from the two connection URLs,
//! so the bootstrap and the services can never disagree about them.

use anyhow::{Context, bail};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use secrecy::{ExposeSecret, SecretString};

use crate::RUNTIME_GROUP_ROLE;

/// What a connection URL says about the role and database it expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub user: String,
    pub database: String,
    password: Option<String>,
}

impl Target {
    /// Reads user, password and database from a `postgres://user:password@host:port/database` URL.
    pub fn from_url(url: &SecretString) -> anyhow::Result<Self> {
        let parsed = url::Url::parse(url.expose_secret()).context("Failed to parse a database URL")?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            bail!("a database URL must start with postgres://");
        }
        let decode = |s: &str| -> anyhow::Result<String> {
            Ok(url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default())
        };
        let user = decode(parsed.username())?;
        let database = decode(parsed.path().trim_start_matches('/'))?;
        if user.is_empty() || database.is_empty() {
            bail!("a database URL must name both a user and a database");
        }
        let password = parsed.password().map(decode).transpose()?;
        Ok(Self { user, database, password })
    }
}

/// Creates whatever of the roles and the database is missing; never changes or drops what exists.
pub async fn bootstrap(admin_url: &SecretString, owner: &Target, runtime: &Target) -> anyhow::Result<()> {
    if owner.database != runtime.database {
        bail!(
            "MIGRATION_DATABASE_URL names database {:?} but DATABASE_URL names {:?}",
            owner.database,
            runtime.database
        );
    }
    let admin =
        Database::connect(admin_url.expose_secret()).await.context("Failed to connect with ADMIN_DATABASE_URL")?;
    ensure_roles(&admin, owner, runtime).await?;
    let exists = admin
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT 1 FROM pg_database WHERE datname = $1",
            [owner.database.clone().into()],
        ))
        .await
        .context("Failed to look up the database")?
        .is_some();
    if !exists {
        exec(&admin, format!("CREATE DATABASE {} OWNER {}", quote_ident(&owner.database), quote_ident(&owner.user)))
            .await?;
        tracing::info!(database = %owner.database, "created database");
    }
    Ok(())
}

/// Creates the owner role, the runtime group role and the runtime login role if missing, and makes the login role a
/// member of the group. `admin` must be a superuser connection.
pub async fn ensure_roles(admin: &DatabaseConnection, owner: &Target, runtime: &Target) -> anyhow::Result<()> {
    if owner.user == runtime.user {
        bail!("the owner role and the runtime role must differ (both are {:?})", owner.user);
    }
    ensure_role(admin, owner, "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB").await?;
    if !role_exists(admin, RUNTIME_GROUP_ROLE).await? {
        exec(
            admin,
            format!("CREATE ROLE {RUNTIME_GROUP_ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB"),
        )
        .await?;
    }
    ensure_role(admin, runtime, "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB INHERIT").await?;
    exec(admin, format!("GRANT {RUNTIME_GROUP_ROLE} TO {}", quote_ident(&runtime.user))).await
}

async fn ensure_role(admin: &DatabaseConnection, target: &Target, attributes: &str) -> anyhow::Result<()> {
    if role_exists(admin, &target.user).await? {
        return Ok(());
    }
    let password = match &target.password {
        Some(p) => format!(" PASSWORD {}", quote_literal(p)),
        None => String::new(),
    };
    exec(admin, format!("CREATE ROLE {} {attributes}{password}", quote_ident(&target.user))).await?;
    tracing::info!(role = %target.user, "created role");
    Ok(())
}

pub async fn role_exists(admin: &DatabaseConnection, name: &str) -> anyhow::Result<bool> {
    Ok(admin
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT 1 FROM pg_roles WHERE rolname = $1",
            [name.into()],
        ))
        .await
        .context("Failed to look up a role")?
        .is_some())
}

pub async fn exec(admin: &DatabaseConnection, sql: String) -> anyhow::Result<()> {
    // Utility statements cannot take bind parameters; every name and literal in `sql` went through the quoting below.
    admin
        .execute_unprepared(&sql)
        .await
        .with_context(|| format!("Failed to run bootstrap statement `{}`", redact(&sql)))?;
    Ok(())
}

fn redact(sql: &str) -> &str {
    sql.split(" PASSWORD ").next().unwrap_or(sql)
}

/// Quotes an SQL identifier (doubling embedded quotes).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes an SQL string literal (standard_conforming_strings is on in every supported Postgres).
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_reads_user_password_and_database_from_a_url() {
        let t = Target::from_url(&SecretString::from("postgres://app%40x:p%3Aw@localhost:5432/hub_db")).unwrap();
        assert_eq!(t.user, "app@x");
        assert_eq!(t.database, "hub_db");
        assert_eq!(t.password.as_deref(), Some("p:w"));
    }

    #[test]
    fn target_rejects_a_url_without_user_or_database() {
        assert!(Target::from_url(&SecretString::from("postgres://localhost/hub")).is_err());
        assert!(Target::from_url(&SecretString::from("postgres://u@localhost/")).is_err());
        assert!(Target::from_url(&SecretString::from("mysql://u@localhost/db")).is_err());
    }

    #[test]
    fn quoting_doubles_embedded_quotes() {
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    #[test]
    fn redact_hides_the_password() {
        assert_eq!(redact("CREATE ROLE \"x\" LOGIN PASSWORD 'secret'"), "CREATE ROLE \"x\" LOGIN");
    }
}
