//! `migration bootstrap`, run as the real binary with passwords in every URL: whatever `RUST_LOG` says, no password
//! reaches its output, and the roles it creates hold a SCRAM-SHA-256 verifier of their password, never the cleartext.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use migration::bootstrap::{quote_ident, scram_sha256_verifier_with_salt};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use tests::database::admin_url;

/// The `migration` binary of this build. Cargo builds a dependency's library for the tests, never its binaries, so it
/// is built here (a no-op when up to date), with the profile the test binary itself was built with.
fn migration_binary() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        // target/<profile>/deps/api-<hash> → target/<profile>
        let exe = std::env::current_exe().expect("no path to the test binary");
        let dir = exe.parent().and_then(|deps| deps.parent()).expect("the test binary is not in target/*/deps");
        let profile = match dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev",
            Some(other) => other,
        };
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--quiet", "--package", "migration", "--bin", "migration", "--profile", profile])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cannot run cargo");
        assert!(status.success(), "cargo build of the migration binary failed: {status}");
        let binary = dir.join(format!("migration{}", std::env::consts::EXE_SUFFIX));
        assert!(binary.exists(), "{} was not built", binary.display());
        binary
    })
}

/// Throwaway roles and database; dropped (as the superuser) when this value is, even if the test failed.
struct Cluster {
    suffix: String,
}

impl Cluster {
    fn new() -> Self {
        Self { suffix: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned() }
    }
    fn database(&self) -> String {
        format!("secrev_{}", self.suffix)
    }
    fn owner(&self) -> String {
        format!("secrev_owner_{}", self.suffix)
    }
    fn runtime(&self) -> String {
        format!("secrev_app_{}", self.suffix)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let statements = [
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(&self.database())),
            format!("DROP ROLE IF EXISTS {}", quote_ident(&self.runtime())),
            format!("DROP ROLE IF EXISTS {}", quote_ident(&self.owner())),
        ];
        // Drop runs inside the test's runtime; do the async cleanup on a thread of its own and wait for it.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    if let Ok(admin) = Database::connect(admin_url()).await {
                        for sql in &statements {
                            let _ = admin.execute_unprepared(sql).await;
                        }
                        let _ = admin.close().await;
                    }
                });
            }
        });
        let _ = cleanup.join();
    }
}

/// `url` (the admin URL's host and port) with another user, a password and a database; also returns the password as
/// it is written in the URL, percent-encoded.
fn url_with(user: &str, password: &str, database: &str) -> (String, String) {
    let mut url = url::Url::parse(&admin_url()).expect("TEST_ADMIN_DATABASE_URL is not a URL");
    url.set_username(user).unwrap();
    url.set_password(Some(password)).unwrap();
    url.set_path(database);
    let encoded = url.password().unwrap().to_owned();
    (url.to_string(), encoded)
}

async fn rolpassword(admin: &DatabaseConnection, role: &str) -> String {
    let row = admin
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            [role.into()],
        ))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("role {role} was not created"));
    row.try_get("", "rolpassword").unwrap()
}

/// The salt of a `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` verifier.
fn salt_of(verifier: &str) -> Vec<u8> {
    let salt = verifier.split(['$', ':']).nth(2).unwrap_or_else(|| panic!("not a SCRAM verifier: {verifier}"));
    BASE64.decode(salt).unwrap()
}

/// Runs `migration bootstrap` (and then `migration up`) with `rust_log`, and checks that the output holds none of the
/// passwords (the admin URL gets one too: the local cluster trusts loopback and ignores it) and that each role's
/// stored password is the SCRAM verifier of its password.
async fn bootstrap_leaks_no_password(rust_log: Option<&str>) {
    let cluster = Cluster::new();
    let tag = &cluster.suffix;
    let (owner_pw, runtime_pw, admin_pw) =
        (format!("S3cret@Owner/Pw{tag}"), format!("S3cret:App;Pw{tag}"), format!("S3cret#Admin Pw{tag}"));
    let (owner_url, owner_enc) = url_with(&cluster.owner(), &owner_pw, &cluster.database());
    let (runtime_url, runtime_enc) = url_with(&cluster.runtime(), &runtime_pw, &cluster.database());
    let admin_user = url::Url::parse(&admin_url()).unwrap().username().to_owned();
    let admin_db = url::Url::parse(&admin_url()).unwrap().path().trim_start_matches('/').to_owned();
    let (admin_with_pw, admin_enc) = url_with(&admin_user, &admin_pw, &admin_db);
    let secrets = [&owner_pw, &owner_enc, &runtime_pw, &runtime_enc, &admin_pw, &admin_enc];

    let mut output = String::new();
    for args in [&["bootstrap"][..], &["up"][..]] {
        let mut command = Command::new(migration_binary());
        command
            .args(args)
            .env("ADMIN_DATABASE_URL", &admin_with_pw)
            .env("MIGRATION_DATABASE_URL", &owner_url)
            .env("DATABASE_URL", &runtime_url)
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1");
        if let Some(level) = rust_log {
            command.env("RUST_LOG", level);
        }
        let out = command.output().expect("cannot run the migration binary");
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "migration {args:?} failed: {}\n{stdout}\n{stderr}", out.status);
        for secret in secrets {
            assert!(!stdout.contains(secret.as_str()), "migration {args:?} printed a password on stdout:\n{stdout}");
            assert!(!stderr.contains(secret.as_str()), "migration {args:?} printed a password on stderr:\n{stderr}");
        }
        output.push_str(&stdout);
        output.push_str(&stderr);
    }
    // The binary did log (so the absence of passwords means something): at least its own summary line.
    assert!(output.contains("bootstrap complete"), "{output}");

    let admin = Database::connect(admin_url()).await.unwrap();
    for (role, password) in [(cluster.owner(), &owner_pw), (cluster.runtime(), &runtime_pw)] {
        let stored = rolpassword(&admin, &role).await;
        assert!(stored.starts_with("SCRAM-SHA-256$"), "{role} has password {stored}");
        assert_eq!(stored, scram_sha256_verifier_with_salt(password, &salt_of(&stored)), "{role}");
    }
    admin.close().await.unwrap();
}

#[tokio::test]
async fn bootstrap_prints_no_password_with_rust_log_unset() {
    bootstrap_leaks_no_password(None).await;
}

#[tokio::test]
async fn bootstrap_prints_no_password_even_with_rust_log_trace() {
    bootstrap_leaks_no_password(Some("trace")).await;
}

/// The proof that a role created with our verifier accepts its password: for the same password and salt, Postgres
/// computes the same verifier (a login is checked against nothing else). The local cluster trusts loopback, so a
/// password login cannot be tried here.
#[tokio::test]
async fn a_verifier_computed_by_migration_equals_the_one_postgres_computes_for_the_same_salt() {
    let cluster = Cluster::new();
    let admin = Database::connect(admin_url()).await.unwrap();
    let password = format!("it's a Pässwörd {}", cluster.suffix);
    admin
        .execute_unprepared(&format!(
            "SET password_encryption = 'scram-sha-256'; CREATE ROLE {} PASSWORD {}",
            quote_ident(&cluster.owner()),
            migration::bootstrap::quote_literal(&password)
        ))
        .await
        .unwrap();
    let computed_by_postgres = rolpassword(&admin, &cluster.owner()).await;
    admin.close().await.unwrap();
    assert_eq!(scram_sha256_verifier_with_salt(&password, &salt_of(&computed_by_postgres)), computed_by_postgres);
}
