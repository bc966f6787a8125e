//! What the benchmarks that drive the API as a separate process share. The API runs as a child of the benchmark:
//! the same executable started again with [`CHILD_DATABASE_URL`] set, which serves the API ([`serve_if_child`]) and
//! announces its port on stdout. [`ChildApi`] stops it with SIGTERM when the benchmark lets go of it, a panic or ^C
//! included.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use api::config::Settings;
use serde_json::{Value, json};

/// Set in the child: the database URL its API connects to.
pub const CHILD_DATABASE_URL: &str = "BENCH_CHILD_API_DATABASE_URL";

/// In a benchmark's `main`: when this process is the API child, serves the API with the settings `settings` makes
/// of the database URL, until it is stopped, and returns `true`; otherwise returns `false` at once.
pub async fn serve_if_child(settings: impl FnOnce(&str) -> Settings) -> bool {
    let Ok(url) = std::env::var(CHILD_DATABASE_URL) else { return false };
    let app = api::startup::Application::build(settings(&url)).await.unwrap();
    println!("PORT={}", app.port());
    app.run_until_stopped().await.unwrap();
    true
}

/// The API child process, listening.
pub struct ChildApi {
    child: Child,
    port: u16,
    /// Kept open, so that the child never writes to a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl ChildApi {
    /// Starts this executable again as the API on `database_url`, and waits until it listens.
    pub fn spawn(database_url: &str) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(CHILD_DATABASE_URL, database_url)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let port = loop {
            let mut line = String::new();
            assert!(stdout.read_line(&mut line).unwrap() > 0, "the API did not start");
            if let Some(port) = line.trim().strip_prefix("PORT=") {
                break port.parse::<u16>().unwrap();
            }
        };
        Self { child, port, _stdout: stdout }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for ChildApi {
    /// SIGTERM, then SIGKILL if it has not stopped within 5 s.
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Registers the benchmarks' user (`bench@example.com`) and returns its access token.
pub async fn register(http: &reqwest::Client, base: &str) -> String {
    let registered: Value = http
        .post(format!("{base}/v1/auth/register"))
        .json(&json!({ "email": "bench@example.com", "name": "Bench", "password": "bench password 1" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    registered["tokens"]["access_token"].as_str().expect("no access token").to_owned()
}

/// Creates a tenant as `token`'s user and returns its id.
pub async fn create_tenant(http: &reqwest::Client, base: &str, token: &str, name: &str, slug: &str) -> uuid::Uuid {
    let created: Value = http
        .post(format!("{base}/v1/tenants"))
        .bearer_auth(token)
        .json(&json!({ "name": name, "slug": slug }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["id"].as_str().expect("no tenant id").parse().unwrap()
}
