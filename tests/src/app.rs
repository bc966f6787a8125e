//! [`spawn_app`]: the real API, built by the same `Application::build` as production, on a free port, against a
//! fresh database, connected as the runtime role.
//!
//! A [`TestApp`] has one method per endpoint, named after its method and route (`post_tenants`, `patch_member`, ..), so
//! that route paths are spelled here only; conveniences on top of them (`register`, `create_tenant`, `add_member`, ..);
//! and the tenant's audit log as whole rows ([`AuditRow`]).

use std::fmt::Display;

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

/// An API replica on another app's database (see [`TestApp::replica`]).
pub struct Replica {
    /// `http://127.0.0.1:PORT`
    pub address: String,
    pub client: reqwest::Client,
}

impl Replica {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// `method path` with an optional bearer credential and JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> reqwest::Response {
        send_to(&self.client, method, self.url(path), bearer, body).await
    }
}

/// Sends `method url` with an optional bearer credential and JSON body.
async fn send_to(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    bearer: Option<&str>,
    body: Option<serde_json::Value>,
) -> reqwest::Response {
    let mut request = client.request(method, url);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("request failed")
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

    /// Sends `method path` with an optional bearer credential and JSON body (for the spec-driven walks and for paths
    /// no endpoint method spells).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> reqwest::Response {
        send_to(&self.client, method, self.url(path), bearer, body).await
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.call(reqwest::Method::POST, path, None, Some(body)).await
    }
}

/// The key the test apps sign with, so that tests can forge tokens for attack scenarios.
pub const TEST_JWT_KID: &str = "test-key-1";
pub const TEST_JWT_SECRET: &str = "test-secret-that-is-at-least-32-bytes-long";

/// The declared defaults of a clap settings struct (`api::config::Settings`, `worker::Settings`), whatever the
/// environment holds: every `env = ...` of the struct is dropped before parsing no arguments, so that an exported
/// `SYNC_PAGE_SIZE` or `LOGIN_MAX_FAILURES_PER_IP` cannot change what a test runs with.
pub fn defaults_without_env<T: clap::Args + clap::FromArgMatches>() -> T {
    let command = T::augment_args(clap::Command::new("defaults")).mut_args(|arg| arg.env(None::<&str>));
    let matches = command.try_get_matches_from(["defaults"]).unwrap_or_else(|e| panic!("defaults do not parse: {e}"));
    T::from_arg_matches(&matches).unwrap_or_else(|e| panic!("defaults do not parse: {e}"))
}

/// No plan limits on seats, products or API keys: the tests of other features add as many as they need (the billing
/// tests set small limits, `tests::billing::small_plans`).
pub fn unlimited_plans(plans: &mut common::settings::PlanSettings) {
    for limit in [
        &mut plans.free_seats,
        &mut plans.free_products,
        &mut plans.free_api_keys,
        &mut plans.pro_seats,
        &mut plans.pro_products,
        &mut plans.pro_api_keys,
    ] {
        *limit = 0;
    }
}

/// Settings for a test app: the declared defaults (never the environment), port 0, one worker, short timeouts.
pub fn test_settings(db: &TestDatabase) -> Settings {
    test_settings_for(&db.runtime_url())
}

/// [`test_settings`] for a database URL (a child process has the URL, not the [`TestDatabase`]).
pub fn test_settings_for(database_url: &str) -> Settings {
    let mut settings: Settings = defaults_without_env();
    unlimited_plans(&mut settings.plans);
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
    // No request rate limits: the tests send many requests from one address (the rate-limit tests set their own).
    settings.rate_limit_per_ip_per_minute = 0;
    settings.rate_limit_per_tenant_per_minute = 0;
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
    TestApp::served_by(port, db, outbox)
}

impl TestApp {
    /// Another API process on this app's database, with the test settings (the same JWT and token keys) adjusted by
    /// `configure`: a replica behind the same load balancer. Returns a [`TestApp`] view of it that does not own the
    /// database (dropping it leaves the database to this app).
    pub async fn replica(&self, configure: impl FnOnce(&mut Settings)) -> Replica {
        let mut settings = test_settings(&self.db);
        settings.mail_outbox_dir = self.outbox.0.clone();
        configure(&mut settings);
        let app = Application::build(settings).await.expect("failed to build the replica");
        let port = app.port();
        tokio::spawn(app.run_until_stopped());
        Replica { address: format!("http://127.0.0.1:{port}"), client: self.client.clone() }
    }

    /// The app listening on `127.0.0.1:port`, on `db`, mailing to `outbox`: one [`spawn_app`] started, or one run by
    /// a child process.
    pub fn served_by(port: u16, db: TestDatabase, outbox: Outbox) -> Self {
        Self {
            address: format!("http://127.0.0.1:{port}"),
            port,
            client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
            db,
            outbox,
        }
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

/// What a request is sent with: a [`TestUser`] (their access token), any token or API-key secret as it is (`&str`,
/// `String`), or [`Anonymous`] (no `Authorization` header).
pub trait Bearer {
    fn bearer(&self) -> Option<&str>;
}

impl Bearer for TestUser {
    fn bearer(&self) -> Option<&str> {
        Some(&self.access_token)
    }
}

impl Bearer for str {
    fn bearer(&self) -> Option<&str> {
        Some(self)
    }
}

impl Bearer for String {
    fn bearer(&self) -> Option<&str> {
        Some(self)
    }
}

/// No credentials at all.
pub struct Anonymous;

impl Bearer for Anonymous {
    fn bearer(&self) -> Option<&str> {
        None
    }
}

/// The routes of the API, spelled once. `{tenant_id}` and the other ids are whatever `Display`s as one, so that a test
/// can pass a `Uuid` or an id read from a response.
mod paths {
    use std::fmt::Display;

    pub fn tenant(tenant_id: impl Display) -> String {
        format!("/v1/tenants/{tenant_id}")
    }
    pub fn members(tenant_id: impl Display) -> String {
        format!("{}/members", tenant(tenant_id))
    }
    pub fn member(tenant_id: impl Display, user_id: impl Display) -> String {
        format!("{}/{user_id}", members(tenant_id))
    }
    pub fn invitations(tenant_id: impl Display) -> String {
        format!("{}/invitations", tenant(tenant_id))
    }
    pub fn invitation(tenant_id: impl Display, invitation_id: impl Display) -> String {
        format!("{}/{invitation_id}", invitations(tenant_id))
    }
    pub fn api_keys(tenant_id: impl Display) -> String {
        format!("{}/api-keys", tenant(tenant_id))
    }
    pub fn api_key(tenant_id: impl Display, api_key_id: impl Display) -> String {
        format!("{}/{api_key_id}", api_keys(tenant_id))
    }
    pub fn connection(tenant_id: impl Display) -> String {
        format!("{}/testio-connection", tenant(tenant_id))
    }
    pub fn sync_runs(tenant_id: impl Display) -> String {
        format!("{}/sync-runs", tenant(tenant_id))
    }
    pub fn sync_run(tenant_id: impl Display, sync_run_id: impl Display) -> String {
        format!("{}/{sync_run_id}", sync_runs(tenant_id))
    }
    pub fn audit_logs(tenant_id: impl Display) -> String {
        format!("{}/audit-logs", tenant(tenant_id))
    }
    pub fn audit_log(tenant_id: impl Display, audit_log_id: impl Display) -> String {
        format!("{}/{audit_log_id}", audit_logs(tenant_id))
    }
}

pub use paths::sync_run as sync_run_path;

/// `path?query`, the query's names and values form-encoded.
fn with_query(path: &str, query: &[(&str, &str)]) -> String {
    let encoded = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(query).finish();
    if encoded.is_empty() { path.to_owned() } else { format!("{path}?{encoded}") }
}

/// One method per endpoint of the API (`openapi.json`), each returning the raw response: the tests assert on it.
/// Bodies are passed as JSON as they are, so that a test can send what the API must refuse.
impl TestApp {
    /// Sends `method path` with `who`'s credentials and an optional JSON body.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        who: &(impl Bearer + ?Sized),
        body: Option<serde_json::Value>,
    ) -> reqwest::Response {
        self.call(method, path, who.bearer(), body).await
    }

    /// `POST /v1/auth/register`
    pub async fn post_register(&self, body: serde_json::Value) -> reqwest::Response {
        self.post("/v1/auth/register", body).await
    }

    /// `POST /v1/auth/login`
    pub async fn post_login(&self, body: serde_json::Value) -> reqwest::Response {
        self.post("/v1/auth/login", body).await
    }

    /// `POST /v1/auth/refresh`
    pub async fn post_refresh(&self, refresh_token: &str) -> reqwest::Response {
        self.post("/v1/auth/refresh", serde_json::json!({ "refresh_token": refresh_token })).await
    }

    /// `POST /v1/auth/logout`
    pub async fn post_logout(&self, who: &(impl Bearer + ?Sized)) -> reqwest::Response {
        self.send(reqwest::Method::POST, "/v1/auth/logout", who, None).await
    }

    /// `GET /v1/auth/verify-email?token=..` (the link mailed to a new account)
    pub async fn get_verify_email(&self, token: &str) -> reqwest::Response {
        self.get(&with_query("/v1/auth/verify-email", &[("token", token)])).await
    }

    /// `POST /v1/auth/verify-email`
    pub async fn post_verify_email(&self, token: &str) -> reqwest::Response {
        self.post("/v1/auth/verify-email", serde_json::json!({ "token": token })).await
    }

    /// `GET /v1/me`
    pub async fn get_me(&self, who: &(impl Bearer + ?Sized)) -> reqwest::Response {
        self.send(reqwest::Method::GET, "/v1/me", who, None).await
    }

    /// `POST /v1/me/password`
    pub async fn post_password(&self, who: &(impl Bearer + ?Sized), current: &str, new: &str) -> reqwest::Response {
        let body = serde_json::json!({ "current_password": current, "new_password": new });
        self.send(reqwest::Method::POST, "/v1/me/password", who, Some(body)).await
    }

    /// `POST /v1/me/verification-email`
    pub async fn post_verification_email(&self, who: &(impl Bearer + ?Sized)) -> reqwest::Response {
        self.send(reqwest::Method::POST, "/v1/me/verification-email", who, None).await
    }

    /// `POST /v1/invitations/accept`
    pub async fn post_accept_invitation(&self, who: &(impl Bearer + ?Sized), token: &str) -> reqwest::Response {
        let body = serde_json::json!({ "token": token });
        self.send(reqwest::Method::POST, "/v1/invitations/accept", who, Some(body)).await
    }

    /// `GET /v1/tenants`
    pub async fn get_tenants(&self, who: &(impl Bearer + ?Sized)) -> reqwest::Response {
        self.send(reqwest::Method::GET, "/v1/tenants", who, None).await
    }

    /// `POST /v1/tenants`
    pub async fn post_tenants(&self, who: &(impl Bearer + ?Sized), body: serde_json::Value) -> reqwest::Response {
        self.send(reqwest::Method::POST, "/v1/tenants", who, Some(body)).await
    }

    /// `GET /v1/tenants/{tenant_id}`
    pub async fn get_tenant(&self, who: &(impl Bearer + ?Sized), tenant: impl Display) -> reqwest::Response {
        self.send(reqwest::Method::GET, &paths::tenant(tenant), who, None).await
    }

    /// `PATCH /v1/tenants/{tenant_id}`
    pub async fn patch_tenant(
        &self,
        who: &(impl Bearer + ?Sized),
        tenant: impl Display,
        body: serde_json::Value,
    ) -> reqwest::Response {
        self.send(reqwest::Method::PATCH, &paths::tenant(tenant), who, Some(body)).await
    }

    /// `DELETE /v1/tenants/{tenant_id}`
    pub async fn delete_tenant(&self, who: &(impl Bearer + ?Sized), tenant: impl Display) -> reqwest::Response {
        self.send(reqwest::Method::DELETE, &paths::tenant(tenant), who, None).await
    }

    /// `GET /v1/tenants/{tenant_id}/members`
    pub async fn get_members(&self, who: &(impl Bearer + ?Sized), tenant: impl Display) -> reqwest::Response {
        self.send(reqwest::Method::GET, &paths::members(tenant), who, None).await
    }

    /// `PATCH /v1/tenants/{tenant_id}/members/{user_id}` with `{ "role": role }`
    pub async fn patch_member(
        &self,
        who: &(impl Bearer + ?Sized),
        tenant: impl Display,
        user: impl Display,
        role: &str,
    ) -> reqwest::Response {
        let body = serde_json::json!({ "role": role });
        self.send(reqwest::Method::PATCH, &paths::member(tenant, user), who, Some(body)).await
    }

    /// `DELETE /v1/tenants/{tenant_id}/members/{user_id}` (removing a member, or leaving)
    pub async fn delete_member(
        &self,
        who: &(impl Bearer + ?Sized),
        tenant: impl Display,
        user: impl Display,
    ) -> reqwest::Response {
        self.send(reqwest::Method::DELETE, &paths::member(tenant, user), who, None).await
    }

    /// `GET /v1/tenants/{tenant_id}/invitations`
    pub async fn get_invitations(&self, who: &(impl Bearer + ?Sized), tenant: impl Display) -> reqwest::Response {
        self.send(reqwest::Method::GET, &paths::invitations(tenant), who, None).await
    }

    /// `POST /v1/tenants/{tenant_id}/invitations` with `{ "email": email, "role": role }`
    pub async fn post_invitation(
        &self,
        who: &(impl Bearer + ?Sized),
        tenant: impl Display,
        email: &str,
        role: &str,
    ) -> reqwest::Response {
        let body = serde_json::json!({ "email": email, "role": role });
        self.send(reqwest::Method::POST, &paths::invitations(tenant), who, Some(body)).await
    }

    /// `DELETE /v1/tenants/{tenant_id}/invitations/{invitation_id}`
    pub async fn delete_invitation(
        &self,
        who: &(impl Bearer + ?Sized),
        tenant: impl Display,
        invitation: impl Display,
    ) -> reqwest::Response {
        self.send(reqwest::Method::DELETE, &paths::invitation(tenant, invitation), who, None).await
    }

    /// `GET /v1/tenants/{tenant_id}/api-keys`
    pub async fn get_api_keys(&self, who: &(impl Bearer + ?Sized), tenant: impl Display) -> reqwest::Response {
        self.send(reqwest::Method::GET, &paths::api_keys(tenant), who, None).await
    }

    /// `POST /v1/tenants/{tenant_id}/api-keys` with `{ "name": name, "role": role }`
    pub async fn post_api_key(
        &self,
        who: &(impl Bearer + ?Sized),
        tenant: impl Display,
        name: &str,
        role: &str,
    ) -> reqwest::Response {
        let body = serde_json::json!({ "name": name, "role": role });
        self.send(reqwest::Method::POST, &paths::api_keys(tenant), who, Some(body)).await
    }

    /// `DELETE /v1/tenants/{tenant_id}/api-keys/{api_key_id}`
    pub async fn delete_api_key(
        &self,
        who: &(impl Bearer + ?Sized),
        tenant: impl Display,
        key: impl Display,
    ) -> reqwest::Response {
        self.send(reqwest::Method::DELETE, &paths::api_key(tenant, key), who, None).await
    }

    /// `GET /v1/tenants/{tenant_id}/testio-connection`
    pub async fn get_connection(&self, who: &(impl Bearer + ?Sized), tenant: impl Display) -> reqwest::Response {
        self.send(reqwest::Method::GET, &paths::connection(tenant), who, None).await
    }

    /// `PUT /v1/tenants/{tenant_id}/testio-connection`
    pub async fn put_connection(
        &self,
        who: &(impl Bearer + ?Sized),
        tenant: impl Display,
        body: serde_json::Value,
    ) -> reqwest::Response {
        self.send(reqwest::Method::PUT, &paths::connection(tenant), who, Some(body)).await
    }

    /// `DELETE /v1/tenants/{tenant_id}/testio-connection`
    pub async fn delete_connection(&self, who: &(impl Bearer + ?Sized), tenant: impl Display) -> reqwest::Response {
        self.send(reqwest::Method::DELETE, &paths::connection(tenant), who, None).await
    }

    /// `GET /v1/tenants/{tenant_id}/sync-runs`, with query parameters (`limit`, `before`) if any.
    pub async fn get_sync_runs(
        &self,
        who: &(impl Bearer + ?Sized),
        tenant: impl Display,
        query: &[(&str, &str)],
    ) -> reqwest::Response {
        self.send(reqwest::Method::GET, &with_query(&paths::sync_runs(tenant), query), who, None).await
    }

    /// `POST /v1/tenants/{tenant_id}/sync-runs`
    pub async fn post_sync_run(
        &self,
        who: &(impl Bearer + ?Sized),
        tenant: impl Display,
        body: serde_json::Value,
    ) -> reqwest::Response {
        self.send(reqwest::Method::POST, &paths::sync_runs(tenant), who, Some(body)).await
    }

    /// `GET /v1/tenants/{tenant_id}/sync-runs/{sync_run_id}`
    pub async fn get_sync_run(
        &self,
        who: &(impl Bearer + ?Sized),
        tenant: impl Display,
        run: impl Display,
    ) -> reqwest::Response {
        self.send(reqwest::Method::GET, &paths::sync_run(tenant, run), who, None).await
    }
}

impl TestApp {
    /// `GET /v1/tenants/{tenant_id}/audit-logs?query`
    pub async fn get_audit_logs(
        &self,
        who: &(impl Bearer + ?Sized),
        tenant: impl Display,
        query: &[(&str, &str)],
    ) -> reqwest::Response {
        self.send(reqwest::Method::GET, &with_query(&paths::audit_logs(tenant), query), who, None).await
    }

    /// `GET /v1/tenants/{tenant_id}/audit-logs/export?query`
    pub async fn get_audit_export(
        &self,
        who: &(impl Bearer + ?Sized),
        tenant: impl Display,
        query: &[(&str, &str)],
    ) -> reqwest::Response {
        let path = with_query(&format!("{}/export", paths::audit_logs(tenant)), query);
        self.send(reqwest::Method::GET, &path, who, None).await
    }

    /// `GET /v1/tenants/{tenant_id}/audit-logs/{audit_log_id}`
    pub async fn get_audit_event(
        &self,
        who: &(impl Bearer + ?Sized),
        tenant: impl Display,
        id: impl Display,
    ) -> reqwest::Response {
        self.send(reqwest::Method::GET, &paths::audit_log(tenant, id), who, None).await
    }
}

/// Conveniences over the endpoints, returning parsed values and asserting that the step worked.
impl TestApp {
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
        let verified = self.get_verify_email(&token).await;
        assert_eq!(verified.status(), 200, "verifying {email} failed");
    }

    /// Registers `email` (password `correct horse battery`) without verifying it.
    pub async fn register_unverified(&self, email: &str) -> TestUser {
        let password = "correct horse battery".to_owned();
        let response =
            self.post_register(serde_json::json!({ "email": email, "name": "Test User", "password": password })).await;
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

    /// Signs `email` in with `password` and returns the response's body (user and tokens).
    pub async fn login(&self, email: &str, password: &str) -> serde_json::Value {
        let response = self.post_login(serde_json::json!({ "email": email, "password": password })).await;
        assert_eq!(response.status(), 200, "signing {email} in failed");
        response.json().await.unwrap()
    }

    /// Creates a tenant owned by `owner` and returns its id.
    pub async fn create_tenant(&self, owner: &TestUser, slug: &str) -> uuid::Uuid {
        let response = self.post_tenants(owner, serde_json::json!({ "name": slug, "slug": slug })).await;
        assert_eq!(response.status(), 201, "tenant {slug} was not created");
        let body: serde_json::Value = response.json().await.unwrap();
        body["id"].as_str().unwrap().parse().unwrap()
    }

    /// Invites `email` to `tenant` with `role` as `by`; returns the response's body (`invitation`, `token`,
    /// `accept_url`).
    pub async fn invite(
        &self,
        by: &(impl Bearer + ?Sized),
        tenant: uuid::Uuid,
        email: &str,
        role: &str,
    ) -> serde_json::Value {
        let response = self.post_invitation(by, tenant, email, role).await;
        assert_eq!(response.status(), 201, "inviting {email} as {role} failed");
        response.json().await.unwrap()
    }

    /// Registers `email` and makes them a member of `tenant` with `role`, through an invitation from `owner`.
    pub async fn add_member(&self, owner: &TestUser, tenant: uuid::Uuid, email: &str, role: &str) -> TestUser {
        let user = self.register(email).await;
        let invitation = self.invite(owner, tenant, email, role).await;
        let accepted = self.post_accept_invitation(&user, invitation["token"].as_str().unwrap()).await;
        assert_eq!(accepted.status(), 200, "accepting the invitation failed");
        user
    }

    /// Creates an API key of `role` on `tenant` as `creator`; returns the response's body (`api_key`, `secret`).
    pub async fn create_api_key(
        &self,
        creator: &(impl Bearer + ?Sized),
        tenant: uuid::Uuid,
        name: &str,
        role: &str,
    ) -> serde_json::Value {
        let response = self.post_api_key(creator, tenant, name, role).await;
        assert_eq!(response.status(), 201, "creating a {role} key failed");
        response.json().await.unwrap()
    }

    /// Runs `sql` as the superuser on the test database (to reach states no endpoint makes, such as a disabled user).
    pub async fn sql(&self, sql: &str) {
        use sea_orm::ConnectionTrait;
        let db = self.db.superuser().await;
        db.execute_unprepared(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The audit log of `tenant` (`Uuid::nil()`: the platform's), read as the superuser behind RLS, oldest first.
    pub async fn audit_log(&self, tenant: uuid::Uuid) -> AuditLog {
        use sea_orm::FromQueryResult;
        let rows = AuditRow::find_by_statement(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT tenant_id, id, actor_type, actor_id, actor_display, action, target_type, target_id,
                    target_display, metadata,
                    host(ip_address) AS ip_address, user_agent, request_id, outcome, created_at
               FROM audit_logs WHERE tenant_id = $1 ORDER BY created_at, id",
            [tenant.into()],
        ))
        .all(self.db.superuser().await)
        .await
        .expect("cannot read the audit log");
        AuditLog(rows)
    }
}

/// A whole row of `audit_logs`.
#[derive(Debug, Clone, PartialEq, sea_orm::FromQueryResult)]
pub struct AuditRow {
    pub tenant_id: uuid::Uuid,
    pub id: uuid::Uuid,
    /// `user`, `api_key`, `system`, `worker` or `anonymous`.
    pub actor_type: String,
    pub actor_id: Option<uuid::Uuid>,
    pub actor_display: Option<String>,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub target_display: Option<String>,
    pub metadata: serde_json::Value,
    /// The client address, without a prefix length.
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// `success`, `failure` or `denied`.
    pub outcome: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// A tenant's audit rows, oldest first.
#[derive(Debug, Clone)]
pub struct AuditLog(pub Vec<AuditRow>);

impl AuditLog {
    /// Whether some row records `action` with `outcome`.
    pub fn has(&self, action: &str, outcome: &str) -> bool {
        self.0.iter().any(|row| row.action == action && row.outcome == outcome)
    }

    /// The rows of `action`, oldest first.
    pub fn of(&self, action: &str) -> Vec<&AuditRow> {
        self.0.iter().filter(|row| row.action == action).collect()
    }
}

impl std::ops::Deref for AuditLog {
    type Target = [AuditRow];

    fn deref(&self) -> &[AuditRow] {
        &self.0
    }
}

// ---------------------------------------------------------------------------------------------------------------
// query API (issue 12): the mirror's products, tests, bugs and stats.

/// The query API's routes: `GET /v1/tenants/{tenant_id}/{products|tests|bugs|stats}[/{id}][?query]`.
impl TestApp {
    /// `GET /v1/tenants/{tenant_id}/{path_and_query}`, the path and query sent as they are (`tests?status=running`,
    /// `bugs/5001`, `stats`), so that a test can send any query string, malformed ones included.
    pub async fn get_mirror(
        &self,
        who: &(impl Bearer + ?Sized),
        tenant: impl Display,
        path_and_query: &str,
    ) -> reqwest::Response {
        self.send(reqwest::Method::GET, &format!("{}/{path_and_query}", paths::tenant(tenant)), who, None).await
    }

    /// `GET /v1/tenants/{tenant_id}/{list}` with `query`'s names and values form-encoded.
    pub async fn get_mirror_list(
        &self,
        who: &(impl Bearer + ?Sized),
        tenant: impl Display,
        list: &str,
        query: &[(&str, &str)],
    ) -> reqwest::Response {
        self.get_mirror(who, tenant, &with_query(list, query)).await
    }
}
