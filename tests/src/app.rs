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
    let mut settings = Settings::local_defaults();
    settings.host = "127.0.0.1".into();
    settings.port = 0;
    settings.workers = 1;
    settings.database_url = db.runtime_url().into();
    settings.database_max_connections = 4;
    settings.database_acquire_timeout_ms = 1500;
    settings.database_startup_timeout_secs = 5;
    settings.shutdown_timeout_secs = 1;
    settings.jwt_keys = Some(format!("{TEST_JWT_KID}:{TEST_JWT_SECRET}").into());
    settings.testio_token_keys = Some(TEST_TOKEN_KEYS.into());
    settings.testio_allowed_base_urls = "http://127.0.0.1:".into();
    settings.testio_verify_timeout_secs = 3;
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
    configure(&mut settings);
    let app = Application::build(settings).await.expect("failed to build the application");
    let port = app.port();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
        db,
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

    /// Registers `email` (password `correct horse battery`) and returns its credentials.
    pub async fn register(&self, email: &str) -> TestUser {
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
