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
    settings
}

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
