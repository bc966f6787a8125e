//! What the benchmarks that drive the API as a separate process share. The API runs as a child of the benchmark:
//! the same executable started again with [`CHILD_DATABASE_URL`] set, which serves the API ([`serve_if_child`]) and
//! announces its port on stdout. [`ChildApi`] stops it with SIGTERM when the benchmark lets go of it, a panic or ^C
//! included. `BENCH_CHILD_LOG=1` shows the API's warnings and errors.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use std::sync::Arc;

use api::config::Settings;
use sea_orm::{ConnectOptions, Database, DatabaseConnection, Statement, Value as SqlValue};
use serde_json::{Value, json};
use uuid::Uuid;

/// Set in the child: the database URL its API connects to.
pub const CHILD_DATABASE_URL: &str = "BENCH_CHILD_API_DATABASE_URL";

/// In a benchmark's `main`: when this process is the API child, serves the API with the settings `settings` makes
/// of the database URL, until it is stopped, and returns `true`; otherwise returns `false` at once.
pub async fn serve_if_child(settings: impl FnOnce(&str) -> Settings) -> bool {
    let Ok(url) = std::env::var(CHILD_DATABASE_URL) else { return false };
    if std::env::var_os("BENCH_CHILD_LOG").is_some() {
        let _ = tracing_subscriber::fmt().with_env_filter("warn").with_writer(std::io::stderr).try_init();
    }
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
        Self::spawn_with(database_url, &[])
    }

    /// [`ChildApi::spawn`] with more environment variables for the child.
    pub fn spawn_with(database_url: &str, env: &[(&str, String)]) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env(CHILD_DATABASE_URL, database_url)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            // `BENCH_CHILD_LOG=1`: the API's warnings and errors on the benchmark's stderr.
            .stderr(if std::env::var_os("BENCH_CHILD_LOG").is_some() { Stdio::inherit() } else { Stdio::null() })
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

    /// SIGKILL: the process dies at once, whatever it was doing.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for ChildApi {
    /// SIGTERM, then SIGKILL if it has not stopped within 5 s.
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
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
    register_as(http, base, "bench@example.com", "bench password 1", None).await
}

/// Registers `email` with `password` (from `address`, through `X-Forwarded-For`, when given) and returns its access
/// token.
pub async fn register_as(
    http: &reqwest::Client,
    base: &str,
    email: &str,
    password: &str,
    address: Option<&str>,
) -> String {
    let mut request = http.post(format!("{base}/v1/auth/register"));
    if let Some(address) = address {
        request = request.header("x-forwarded-for", address);
    }
    let body = json!({ "email": email, "name": "Bench", "password": password });
    let registered: Value = request.json(&body).send().await.unwrap().json().await.unwrap();
    registered["tokens"]["access_token"].as_str().expect("no access token").to_owned()
}

/// Creates a viewer API key on `tenant` as `token`'s user and returns its secret.
pub async fn create_api_key(http: &reqwest::Client, base: &str, token: &str, tenant: uuid::Uuid, name: &str) -> String {
    let created: Value = http
        .post(format!("{base}/v1/tenants/{tenant}/api-keys"))
        .bearer_auth(token)
        .json(&json!({ "name": name, "role": "viewer" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["secret"].as_str().expect("no secret").to_owned()
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

/// The `p` quantile (0 to 1) of sorted latencies; zero for none.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

// ---------------------------------------------------------------------------------------------------------------
// pgbench: what Postgres alone does with the statements of a request

/// Stands for the random id of a detail request in a statement; pgbench replaces it by `:id`.
pub const RANDOM_ID: i64 = -7_777_777_777;

/// The statements a connection runs (sea-orm's metric callback): what the data layer sends for a request.
#[derive(Clone, Default)]
pub struct Recorder(Arc<std::sync::Mutex<Vec<Statement>>>);

impl Recorder {
    /// A connection of the runtime role whose statements are recorded.
    pub async fn connect(url: &str) -> (DatabaseConnection, Self) {
        let mut db = Database::connect(ConnectOptions::new(url).max_connections(1).to_owned()).await.unwrap();
        let recorder = Self::default();
        let sink = recorder.0.clone();
        db.set_metric_callback(move |info| sink.lock().unwrap().push(info.statement.clone()));
        (db, recorder)
    }

    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }

    /// The statements recorded since [`Recorder::clear`], without the tenant binding.
    pub fn take(&self) -> Vec<Statement> {
        let recorded = std::mem::take(&mut *self.0.lock().unwrap());
        recorded.into_iter().filter(|s| !s.sql.contains("set_config('app.tenant_id'")).collect()
    }
}

/// A statement as pgbench runs it: `$n` become variables (`-D` values; the random id `:id`).
pub fn pgbench_sql(statement: &Statement, prefix: &str, defines: &mut Vec<(String, String)>) -> String {
    let values: Vec<SqlValue> = statement.values.as_ref().map(|v| v.0.clone()).unwrap_or_default();
    let names: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let text = match value {
                SqlValue::BigInt(Some(RANDOM_ID)) => return ":id".to_owned(),
                // pgbench variables cannot be NULL: the literal stands in (the statement types it).
                SqlValue::ChronoDateTimeUtc(None) | SqlValue::Uuid(None) | SqlValue::String(None) => {
                    return "NULL".to_owned();
                }
                SqlValue::BigInt(Some(n)) => n.to_string(),
                SqlValue::Int(Some(n)) => n.to_string(),
                SqlValue::BigUnsigned(Some(n)) => n.to_string(),
                SqlValue::Unsigned(Some(n)) => n.to_string(),
                SqlValue::Bool(Some(b)) => b.to_string(),
                SqlValue::String(Some(s)) => s.clone(),
                SqlValue::ChronoDateTimeUtc(Some(t)) => t.to_rfc3339(),
                SqlValue::Uuid(Some(u)) => u.to_string(),
                other => panic!("no pgbench form for the value {other:?} of {}", statement.sql),
            };
            let name = format!("{prefix}_{}", i + 1);
            defines.push((name.clone(), text));
            format!(":{name}")
        })
        .collect();
    // `$n` to the variable, longest numbers first through one scan.
    let sql = &statement.sql;
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c == '$' && chars.peek().is_some_and(|(_, d)| d.is_ascii_digit()) {
            let mut n = 0usize;
            while let Some((_, d)) = chars.peek().filter(|(_, d)| d.is_ascii_digit()) {
                n = n * 10 + d.to_digit(10).unwrap() as usize;
                chars.next();
            }
            out.push_str(&names[n - 1]);
        } else {
            out.push(c);
        }
    }
    out
}

pub struct PgResult {
    pub tps: f64,
    /// Average latency of each script (variant), in ms.
    pub script_latency_ms: Vec<f64>,
    pub failed: u64,
    pub latency_ms: f64,
    pub error: Option<String>,
}

/// One pgbench script: a request's statements in `tenant`, run `weight` times as often as a weight of 1; with `ids`,
/// [`RANDOM_ID`] in a statement is a random id in that range.
pub struct PgScript<'a> {
    pub tenant: Uuid,
    pub statements: &'a [Statement],
    pub weight: u32,
    pub ids: Option<(i64, i64)>,
}

/// Runs the scripts, with their weights, through pgbench as `-M prepared -j 2 -c clients` for `secs`;
/// `with_transaction` wraps each in `BEGIN; set_config('app.tenant_id', ..); ..; COMMIT`.
pub fn pgbench(
    url: &str,
    variants: &[PgScript],
    with_transaction: bool,
    clients: usize,
    secs: u64,
) -> (std::process::Child, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("bench_query_{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut command = std::process::Command::new("pgbench");
    command.args(["-n", "-M", "prepared", "-j", "2", "-c", &clients.to_string(), "-T", &secs.to_string()]);
    let mut defines = Vec::new();
    for (k, v) in variants.iter().enumerate() {
        let mut script = String::new();
        if let Some((lo, hi)) = v.ids {
            script.push_str(&format!("\\set id random({lo}, {hi})\n"));
        }
        if with_transaction {
            defines.push((format!("s{k}_tenant"), v.tenant.to_string()));
            script.push_str(&format!("BEGIN;\nSELECT set_config('app.tenant_id', :s{k}_tenant, true);\n"));
        }
        for (j, statement) in v.statements.iter().enumerate() {
            script.push_str(&pgbench_sql(statement, &format!("s{k}_{j}"), &mut defines));
            script.push_str(";\n");
        }
        if with_transaction {
            script.push_str("COMMIT;\n");
        }
        let path = dir.join(format!("{k}.sql"));
        std::fs::write(&path, script).unwrap();
        command.arg("-f").arg(format!("{}@{}", path.display(), v.weight));
    }
    for (name, value) in defines {
        command.arg("-D").arg(format!("{name}={value}"));
    }
    command.arg(url).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    (command.spawn().expect("pgbench did not start (is it installed?)"), dir)
}

pub fn pgbench_result(output: std::process::Output) -> PgResult {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let field = |prefix: &str| {
        stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
    };
    let mut script_latency_ms = Vec::new();
    for line in stdout.lines() {
        if line.starts_with("SQL script ") {
            script_latency_ms.push(f64::NAN);
        } else if let Some(rest) = line.trim().strip_prefix("- latency average = ")
            && let Some(last) = script_latency_ms.last_mut()
        {
            *last = rest.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(f64::NAN);
        }
    }
    match field("tps = ") {
        Some(tps) => PgResult {
            tps,
            script_latency_ms,
            failed: field("number of failed transactions: ").unwrap_or(0.0) as u64,
            latency_ms: field("latency average = ").unwrap_or(0.0),
            error: None,
        },
        None => PgResult {
            tps: 0.0,
            script_latency_ms,
            failed: 0,
            latency_ms: 0.0,
            error: Some(format!("{}{}", stdout, String::from_utf8_lossy(&output.stderr))),
        },
    }
}

/// Waits for a pgbench run without blocking the runtime (stopping it if this future is dropped), then removes its
/// scripts.
pub async fn finish_pgbench(child: std::process::Child, scripts: std::path::PathBuf) -> PgResult {
    struct Stop(u32, bool);
    impl Drop for Stop {
        fn drop(&mut self) {
            if !self.1 {
                let _ = std::process::Command::new("kill").args(["-TERM", &self.0.to_string()]).status();
            }
        }
    }
    let mut stop = Stop(child.id(), false);
    let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap();
    stop.1 = true;
    let _ = std::fs::remove_dir_all(&scripts);
    match output {
        Ok(output) => pgbench_result(output),
        Err(e) => {
            PgResult { tps: 0.0, script_latency_ms: Vec::new(), failed: 0, latency_ms: 0.0, error: Some(e.to_string()) }
        }
    }
}
