//! [`spawn_app`]: the real API, built by the same `Application::build` as production, on a free port, against a
//! fresh database, connected as the runtime role.

use api::config::Settings;
use api::startup::Application;

use crate::database::TestDatabase;

pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    pub db: TestDatabase,
    /// The app's mail outbox (`MAIL_TRANSPORT=file`): one `.eml` file per message sent.
    pub outbox: Outbox,
}

/// A temporary mail outbox folder, removed with the app.
pub struct Outbox(pub std::path::PathBuf);

impl Outbox {
    fn new() -> Self {
        Self(std::env::temp_dir().join(format!("testio-outbox-{}", uuid::Uuid::new_v4().simple())))
    }

    /// Every message in the outbox as (headers, decoded text body), oldest first.
    pub fn messages(&self) -> Vec<(String, String)> {
        let mut files: Vec<(std::time::SystemTime, std::path::PathBuf)> = std::fs::read_dir(&self.0)
            .map(|dir| {
                dir.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .map(|p| (std::fs::metadata(&p).and_then(|m| m.modified()).unwrap(), p))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files.into_iter().map(|(_, p)| parse_eml(&std::fs::read_to_string(p).unwrap())).collect()
    }

    /// The text bodies of the messages to `email`, oldest first.
    pub fn to(&self, email: &str) -> Vec<String> {
        let needle = email.to_lowercase();
        self.messages()
            .into_iter()
            .filter(|(headers, _)| {
                headers.lines().any(|l| l.to_lowercase().starts_with("to:") && l.to_lowercase().contains(&needle))
            })
            .map(|(_, body)| body)
            .collect()
    }

    /// The token of the newest email verification link sent to `email`.
    pub fn verification_token(&self, email: &str) -> Option<String> {
        self.to(email).iter().rev().find_map(|body| {
            let start = body.find("verify-email?token=")? + "verify-email?token=".len();
            Some(body[start..].split_whitespace().next()?.to_owned())
        })
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Splits a message into its headers and its text body, undoing quoted-printable or base64 transfer encoding.
pub fn parse_eml(raw: &str) -> (String, String) {
    let raw = raw.replace("\r\n", "\n");
    let (headers, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
    let encoding = headers
        .lines()
        .find(|l| l.to_lowercase().starts_with("content-transfer-encoding:"))
        .map(|l| l.split_once(':').unwrap().1.trim().to_lowercase())
        .unwrap_or_default();
    let body = match encoding.as_str() {
        "quoted-printable" => {
            let joined = body.replace("=\n", "");
            let bytes = joined.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < bytes.len() {
                let escaped = joined.get(i + 1..i + 3).filter(|_| bytes[i] == b'=');
                if let Some(b) = escaped.and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
                    out.push(b);
                    i += 3;
                    continue;
                }
                out.push(bytes[i]);
                i += 1;
            }
            String::from_utf8(out).unwrap()
        }
        "base64" => {
            use base64::Engine;
            let compact: String = body.split_whitespace().collect();
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(compact).unwrap()).unwrap()
        }
        _ => body.to_owned(),
    };
    (headers.to_owned(), body)
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request failed")
    }
}

/// The key the test apps sign with, so that tests can forge tokens for attack scenarios.
pub const TEST_JWT_KID: &str = "test-key-1";
pub const TEST_JWT_SECRET: &str = "test-secret-that-is-at-least-32-bytes-long";

/// Settings for a test app: local defaults, port 0, one worker, short timeouts.
pub fn test_settings(db: &TestDatabase) -> Settings {
    test_settings_for(&db.runtime_url())
}

/// [`test_settings`] for a database URL (a child process has the URL, not the [`TestDatabase`]).
pub fn test_settings_for(database_url: &str) -> Settings {
    let mut settings = Settings::local_defaults();
    settings.host = "127.0.0.1".into();
    settings.port = 0;
    settings.workers = 1;
    settings.database_url = database_url.into();
    settings.database_max_connections = 4;
    settings.database_acquire_timeout_ms = 1500;
    settings.database_startup_timeout_secs = 5;
    settings.shutdown_timeout_secs = 1;
    settings.jwt_keys = Some(format!("{TEST_JWT_KID}:{TEST_JWT_SECRET}").into());
    settings.testio_token_keys = Some(TEST_TOKEN_KEYS.into());
    settings.testio_allowed_base_urls = "https://api.test.io/".into();
    settings.testio_verify_timeout_secs = 3;
    // Apps built outside `spawn_app` share one outbox that no test reads; `spawn_app` gives each app its own.
    settings.mail_outbox_dir = std::env::temp_dir().join("testio-outbox-unread");
    settings
}

/// The AES key test apps and test workers seal TestIO tokens with (32 zero-free bytes, base64).
pub const TEST_TOKEN_KEYS: &str = "test-k1:dGVzdC1rZXktdGhhdC1pcy0zMi1ieXRlcy1sb25nISE=";

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Like [`spawn_app`], letting the test adjust the settings first.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    init_logging();
    let db = TestDatabase::migrated().await;
    let mut settings = test_settings(&db);
    let outbox = Outbox::new();
    settings.mail_outbox_dir = outbox.0.clone();
    configure(&mut settings);
    let app = Application::build(settings).await.expect("failed to build the application");
    let port = app.port();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
        db,
        outbox,
    }
}

/// Logs go to the test output only when `TEST_LOG` is set.
fn init_logging() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt().with_env_filter("info,sqlx=warn").with_test_writer().try_init();
        }
    });
}

/// A registered user with live credentials.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: uuid::Uuid,
    pub email: String,
    pub password: String,
    pub access_token: String,
    pub refresh_token: String,
}

impl TestApp {
    /// Sends `method path` with an optional bearer credential and JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> reqwest::Response {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("request failed")
    }

    pub async fn get_as(&self, path: &str, bearer: &str) -> reqwest::Response {
        self.call(reqwest::Method::GET, path, Some(bearer), None).await
    }

    pub async fn post_as(&self, path: &str, bearer: &str, body: serde_json::Value) -> reqwest::Response {
        self.call(reqwest::Method::POST, path, Some(bearer), Some(body)).await
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.call(reqwest::Method::POST, path, None, Some(body)).await
    }

    /// Registers `email` (password `correct horse battery`), verifies the address through the link mailed to it, and
    /// returns its credentials.
    pub async fn register(&self, email: &str) -> TestUser {
        let user = self.register_unverified(email).await;
        self.verify_email(&user.email).await;
        user
    }

    /// Follows the newest verification link mailed to `email`.
    pub async fn verify_email(&self, email: &str) {
        let token = self.outbox.verification_token(email).unwrap_or_else(|| panic!("no verification mail to {email}"));
        let verified = self.get(&format!("/v1/auth/verify-email?token={token}")).await;
        assert_eq!(verified.status(), 200, "verifying {email} failed");
    }

    /// Registers `email` (password `correct horse battery`) without verifying it.
    pub async fn register_unverified(&self, email: &str) -> TestUser {
        let password = "correct horse battery".to_owned();
        let response = self
            .post("/v1/auth/register", serde_json::json!({ "email": email, "name": "Test User", "password": password }))
            .await;
        assert_eq!(response.status(), 201, "registration of {email} failed");
        let body: serde_json::Value = response.json().await.unwrap();
        TestUser {
            id: body["user"]["id"].as_str().unwrap().parse().unwrap(),
            email: email.to_owned(),
            password,
            access_token: body["tokens"]["access_token"].as_str().unwrap().to_owned(),
            refresh_token: body["tokens"]["refresh_token"].as_str().unwrap().to_owned(),
        }
    }

    /// Creates a tenant owned by `owner` and returns its id.
    pub async fn create_tenant(&self, owner: &TestUser, slug: &str) -> uuid::Uuid {
        let response =
            self.post_as("/v1/tenants", &owner.access_token, serde_json::json!({ "name": slug, "slug": slug })).await;
        assert_eq!(response.status(), 201, "tenant {slug} was not created");
        let body: serde_json::Value = response.json().await.unwrap();
        body["id"].as_str().unwrap().parse().unwrap()
    }

    /// Registers `email` and makes them a member of `tenant` with `role`, through an invitation from `owner`.
    pub async fn add_member(&self, owner: &TestUser, tenant: uuid::Uuid, email: &str, role: &str) -> TestUser {
        let user = self.register(email).await;
        let invite = self
            .post_as(
                &format!("/v1/tenants/{tenant}/invitations"),
                &owner.access_token,
                serde_json::json!({ "email": email, "role": role }),
            )
            .await;
        assert_eq!(invite.status(), 201, "invitation failed");
        let token = invite.json::<serde_json::Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
        let accepted =
            self.post_as("/v1/invitations/accept", &user.access_token, serde_json::json!({ "token": token })).await;
        assert_eq!(accepted.status(), 200, "accepting the invitation failed");
        user
    }

    /// Whole audit entries of `tenant` (read as the superuser, behind RLS), oldest first, as JSON objects with
    /// `action`, `outcome`, `actor_type`, `actor_id`, `resource_id`, `metadata`, `ip_address` (text) and `request_id`.
    pub async fn audit_entries(&self, tenant: uuid::Uuid) -> Vec<serde_json::Value> {
        use sea_orm::ConnectionTrait;
        let db = self.db.connect_superuser().await;
        db.query_all_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT to_jsonb(a) - 'ip_address' || jsonb_build_object('ip_address', host(a.ip_address)) AS entry
               FROM audit_logs a WHERE tenant_id = $1 ORDER BY created_at, id",
            [tenant.into()],
        ))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get("", "entry").unwrap())
        .collect()
    }

    /// Runs `sql` as the superuser on the test database (to reach states no endpoint makes, such as a disabled user).
    pub async fn sql(&self, sql: &str) {
        use sea_orm::ConnectionTrait;
        let db = self.db.connect_superuser().await;
        db.execute_unprepared(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        db.close().await.ok();
    }

    /// Audit entries of `tenant` (read as the superuser, behind RLS), oldest first: `(action, outcome)`.
    pub async fn audit_actions(&self, tenant: uuid::Uuid) -> Vec<(String, String)> {
        use sea_orm::ConnectionTrait;
        let db = self.db.connect_superuser().await;
        db.query_all_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT action, outcome FROM audit_logs WHERE tenant_id = $1 ORDER BY created_at, id",
            [tenant.into()],
        ))
        .await
        .unwrap()
        .iter()
        .map(|r| (r.try_get("", "action").unwrap(), r.try_get("", "outcome").unwrap()))
        .collect()
    }
}
