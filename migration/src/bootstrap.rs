//! One-time, idempotent preparation of a Postgres cluster for TestIO Hub, run with superuser rights: the owner role
//! (runs migrations, owns every object), the runtime group role, the runtime login role (what the API and the worker
//! connect as) and the database. Role names, passwords and the database name are read from the two connection URLs,
//! so the bootstrap and the services can never disagree about them.
//!
//! Passwords never leave this process in cleartext: a role is created with the SCRAM-SHA-256 verifier of its password
//! (see [`scram_sha256_verifier`]), and statement logging is off on every connection this crate opens, so no log level
//! of ours, sqlx's or the server's ever shows a password.

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::percent_decode_str;
use rand::Rng;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::{AUDIT_GATE_ROLE, AUDIT_READER_ROLE, RUNTIME_GROUP_ROLE, SEARCH_ROLE};

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
        // Percent-decoding only, as sqlx does: `+` is a plus sign in a URL's user, password and path.
        let decode = |s: &str| -> anyhow::Result<String> {
            Ok(percent_decode_str(s).decode_utf8().context("a database URL must be UTF-8 once decoded")?.into_owned())
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

/// Opens a small pool with sqlx's statement logging off: bootstrap statements carry password verifiers, and whatever
/// `RUST_LOG` says, no statement of this crate is ever logged. The password is handed to sqlx apart from the URL,
/// because sea-orm records its connect options, URL included, in a trace-level span.
pub async fn connect(url: &SecretString) -> anyhow::Result<DatabaseConnection> {
    let mut url = url::Url::parse(url.expose_secret()).context("Failed to parse a database URL")?;
    let password = match url.password() {
        Some(p) => Some(SecretString::from(
            percent_decode_str(p).decode_utf8().context("a database URL's password must be UTF-8")?.into_owned(),
        )),
        None => None,
    };
    if password.is_some() {
        url.set_password(None).map_err(|()| anyhow!("a database URL with a password must name a host"))?;
    }
    let mut options = ConnectOptions::new(url.as_str());
    options.max_connections(2).sqlx_logging(false).record_stmt_in_spans(false);
    if let Some(password) = password {
        options.map_sqlx_postgres_opts(move |pg| pg.password(password.expose_secret()));
    }
    Ok(Database::connect(options).await?)
}

/// Creates whatever of the roles and the database is missing and removes PUBLIC's privileges on the database (see
/// [`database_privileges_sql`]); never changes or drops a role or a database that exists.
pub async fn bootstrap(admin_url: &SecretString, owner: &Target, runtime: &Target) -> anyhow::Result<()> {
    if owner.database != runtime.database {
        bail!(
            "MIGRATION_DATABASE_URL names database {:?} but DATABASE_URL names {:?}",
            owner.database,
            runtime.database
        );
    }
    let admin = connect(admin_url).await.context("Failed to connect with ADMIN_DATABASE_URL")?;
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
    exec(&admin, database_privileges_sql(&owner.database)).await?;
    admin.close().await.context("Failed to close the ADMIN_DATABASE_URL connection")?;
    Ok(())
}

/// Takes from PUBLIC the CONNECT and TEMPORARY privileges every new database grants it, and gives CONNECT to the
/// runtime group: other login roles of the cluster cannot connect, and the runtime role cannot create a temporary
/// table that shadows a real one. Idempotent. Database privileges are not copied by `CREATE DATABASE .. TEMPLATE`,
/// so whoever clones a migrated database runs this again (migration 8 runs the same on the current database).
pub fn database_privileges_sql(database: &str) -> String {
    let database = quote_ident(database);
    format!(
        "REVOKE CONNECT, TEMPORARY ON DATABASE {database} FROM PUBLIC; \
         GRANT CONNECT ON DATABASE {database} TO {RUNTIME_GROUP_ROLE}"
    )
}

/// Creates the owner role, the runtime group role, the text-search role, the platform audit reader and its gate, and
/// the runtime login role if missing; makes the login role a member of the group, the owner a member of the search
/// role (so that the migrations can hand it the search functions), and the group a member of the gate, itself a
/// member of the reader. `admin` must be a superuser connection.
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
    if !role_exists(admin, SEARCH_ROLE).await? {
        exec(
            admin,
            format!("CREATE ROLE {SEARCH_ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB NOINHERIT"),
        )
        .await?;
    }
    exec(admin, format!("GRANT {SEARCH_ROLE} TO {}", quote_ident(&owner.user))).await?;
    // The audit chain's sealer asks which transactions still run in the database (`audit_settled_below`, a definer
    // function of the owner's): pg_stat_activity shows other roles' transactions only to this role.
    exec(admin, format!("GRANT pg_read_all_stats TO {}", quote_ident(&owner.user))).await?;
    // The platform audit review: the runtime group may `SET ROLE` to the reader (through the gate) but, the gate not
    // inheriting, never holds the reader's rights otherwise.
    for role in [AUDIT_READER_ROLE, AUDIT_GATE_ROLE] {
        if !role_exists(admin, role).await? {
            exec(
                admin,
                format!("CREATE ROLE {role} NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB NOINHERIT"),
            )
            .await?;
        }
    }
    exec(admin, format!("ALTER ROLE {AUDIT_GATE_ROLE} NOINHERIT")).await?;
    exec(admin, format!("GRANT {AUDIT_READER_ROLE} TO {AUDIT_GATE_ROLE}")).await?;
    exec(admin, format!("GRANT {AUDIT_GATE_ROLE} TO {RUNTIME_GROUP_ROLE}")).await?;
    ensure_role(admin, runtime, "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB INHERIT").await?;
    exec(admin, format!("GRANT {RUNTIME_GROUP_ROLE} TO {}", quote_ident(&runtime.user))).await
}

async fn ensure_role(admin: &DatabaseConnection, target: &Target, attributes: &str) -> anyhow::Result<()> {
    if role_exists(admin, &target.user).await? {
        return Ok(());
    }
    let password = match &target.password {
        Some(p) => format!(" PASSWORD {}", quote_literal(&scram_sha256_verifier(p))),
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

/// The iteration count libpq and the server use by default (`scram_iterations` in Postgres 16+).
const SCRAM_ITERATIONS: u32 = 4096;

/// What Postgres stores for a SCRAM-SHA-256 password, computed the way libpq's `PQencryptPasswordConn` does it
/// (RFC 5802, RFC 7677) with a fresh 16-byte random salt. Given as a role's `PASSWORD`, the server stores it as is,
/// so the cleartext is never sent, stored or logged, and a login with the password is then checked against it.
///
/// The password is used as its UTF-8 bytes, without SASLprep. That is what libpq does for every ASCII password
/// (SASLprep leaves printable ASCII unchanged, and libpq falls back to the raw bytes when it refuses one), and for
/// non-ASCII passwords already in NFKC form without characters SASLprep maps or prohibits.
pub fn scram_sha256_verifier(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    scram_sha256_verifier_with_salt(password, &salt)
}

/// [`scram_sha256_verifier`] with a given salt: `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
pub fn scram_sha256_verifier_with_salt(password: &str, salt: &[u8]) -> String {
    let salted: [u8; 32] = pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password.as_bytes(), salt, SCRAM_ITERATIONS);
    let client_key = hmac_sha256(&salted, b"Client Key");
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac_sha256(&salted, b"Server Key");
    format!(
        "SCRAM-SHA-256${SCRAM_ITERATIONS}:{}${}:{}",
        BASE64.encode(salt),
        BASE64.encode(stored_key),
        BASE64.encode(server_key)
    )
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    mac.update(message);
    mac.finalize().into_bytes().into()
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
        let t = Target::from_url(&SecretString::from("postgres://app:a+b%2Bc@localhost/hub")).unwrap();
        assert_eq!(t.password.as_deref(), Some("a+b+c"));
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

    /// Verifiers Postgres 15 computed itself (`SET password_encryption = 'scram-sha-256'; CREATE ROLE .. PASSWORD ..`,
    /// then `SELECT rolpassword FROM pg_authid`): recomputed with their salt, they must come out byte for byte.
    #[test]
    fn the_verifier_matches_what_postgres_computes_for_the_same_salt() {
        let vectors = [
            (
                "correct horse battery staple",
                "SCRAM-SHA-256$4096:NhFFkp0i/hs9y7VNo/WyXw==$4sxlYvPPnnPmDV2KFzr1eDmq1cDTYPMtlt0XwSqNyzI=:\
                 +z8ZcIib6gKYYkmQxb1VDOR4jtR7ScAPtcFaysqQGkw=",
            ),
            (
                "it's S3cret!",
                "SCRAM-SHA-256$4096:HBPqAcAI+g7yZP8c5+uDcg==$7/sJx+k7MtlJxOb348Io8EaaQbhUHzeS/KSISRqGjKk=:\
                 PshyOdHqTGiN0P93sumOuS1W4TMZ3kFyH4tfgPb7KdU=",
            ),
        ];
        for (password, expected) in vectors {
            let salt = expected.split(['$', ':']).nth(2).unwrap();
            let salt = BASE64.decode(salt).unwrap();
            assert_eq!(scram_sha256_verifier_with_salt(password, &salt), expected);
        }
    }

    #[test]
    fn every_verifier_has_a_fresh_16_byte_salt() {
        let (a, b) = (scram_sha256_verifier("pw"), scram_sha256_verifier("pw"));
        assert_ne!(a, b);
        assert!(a.starts_with("SCRAM-SHA-256$4096:"), "{a}");
        let salt = a.split(['$', ':']).nth(2).unwrap();
        assert_eq!(BASE64.decode(salt).unwrap().len(), 16);
    }

    #[test]
    fn database_privileges_revoke_public_and_grant_the_runtime_group() {
        assert_eq!(
            database_privileges_sql(r#"hub"db"#),
            r#"REVOKE CONNECT, TEMPORARY ON DATABASE "hub""db" FROM PUBLIC; GRANT CONNECT ON DATABASE "hub""db" TO testio_runtime"#
        );
    }

    #[test]
    fn redact_hides_the_password() {
        assert_eq!(redact("CREATE ROLE \"x\" LOGIN PASSWORD 'secret'"), "CREATE ROLE \"x\" LOGIN");
    }
}
