//! Typed settings, read once at start-up from environment variables (or the matching command-line flags), with
//! defaults that run against a local Postgres. Secrets are [`SecretString`]s: they never appear in `Debug` output,
//! in `--help`, or in a log line.

use std::time::Duration;

use clap::{Args, ValueEnum};
pub use common::settings::LogFormat;
use common::settings::secret;
use entity::db::PoolSettings;
use secrecy::SecretString;

/// Everything the API server needs. Each field's environment variable is named in its `env = ...`.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address the HTTP server binds to.
    #[arg(long, env = "APP_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port the HTTP server binds to (0 picks a free one).
    #[arg(long, env = "APP_PORT", default_value_t = 8080)]
    pub port: u16,
    /// HTTP worker threads; 0 means one per CPU core.
    #[arg(long, env = "APP_WORKERS", default_value_t = 0)]
    pub workers: usize,
    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "APP_MAX_BODY_BYTES", default_value_t = 256 * 1024)]
    pub max_body_bytes: usize,
    /// Seconds in-flight requests get to finish after SIGTERM.
    #[arg(long, env = "APP_SHUTDOWN_TIMEOUT_SECS", default_value_t = 30)]
    pub shutdown_timeout_secs: u64,
    /// Runtime-role connection (not a superuser, NOBYPASSRLS, owns nothing).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_parser = secret,
          default_value = "postgres://testio_app@127.0.0.1:5432/testio_hub")]
    pub database_url: SecretString,
    /// Largest number of pooled database connections.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,
    /// How long a request waits for a database connection before it is answered 503, in milliseconds.
    #[arg(long, env = "DATABASE_ACQUIRE_TIMEOUT_MS", default_value_t = 3000)]
    pub database_acquire_timeout_ms: u64,
    /// How long start-up waits for the database to become reachable before giving up, in seconds.
    #[arg(long, env = "DATABASE_STARTUP_TIMEOUT_SECS", default_value_t = 30)]
    pub database_startup_timeout_secs: u64,
    /// Longest a statement may run before Postgres cancels it (the request is answered 503), in milliseconds
    /// (0: no limit).
    #[arg(long, env = "DATABASE_STATEMENT_TIMEOUT_MS", default_value_t = 10_000)]
    pub database_statement_timeout_ms: u64,
    /// Longest a request's transaction may sit idle before Postgres ends its session and so releases its locks, in
    /// milliseconds (0: no limit). Above the Stripe and TestIO timeouts: a few calls to them happen inside one.
    #[arg(long, env = "DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS", default_value_t = 60_000)]
    pub database_idle_in_transaction_timeout_ms: u64,
    /// Longest the server works on one request before answering 503 (its transaction is rolled back), in
    /// milliseconds (0: no limit). Counts until the response starts: a streamed export may run longer.
    #[arg(long, env = "APP_REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    pub request_timeout_ms: u64,
    /// Seconds the server waits for a client to send a request's headers before answering 408.
    #[arg(long, env = "APP_CLIENT_REQUEST_TIMEOUT_SECS", default_value_t = 10)]
    pub client_request_timeout_secs: u64,
    /// Seconds an idle keep-alive connection is held open.
    #[arg(long, env = "APP_KEEP_ALIVE_SECS", default_value_t = 30)]
    pub keep_alive_secs: u64,
    /// Origins (`https://app.example.com`, comma-separated) whose browser pages may call the API (CORS). Empty: none,
    /// browsers allow only same-origin pages. `*` allows every origin (credentials are bearer tokens, never cookies).
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", default_value = "")]
    pub cors_allowed_origins: String,
    /// Requests per minute from one client address (all routes but the probes, `/metrics`, the docs and the Stripe
    /// webhook), all API replicas together; 0: no limit.
    #[arg(long, env = "RATE_LIMIT_PER_IP_PER_MINUTE", default_value_t = 600)]
    pub rate_limit_per_ip_per_minute: u32,
    /// Requests one client address may send at once before the per-minute rate applies.
    #[arg(long, env = "RATE_LIMIT_PER_IP_BURST", default_value_t = 120)]
    pub rate_limit_per_ip_burst: u32,
    /// Requests per minute on one tenant's routes, all its callers and all API replicas together; 0: no limit.
    #[arg(long, env = "RATE_LIMIT_PER_TENANT_PER_MINUTE", default_value_t = 1200)]
    pub rate_limit_per_tenant_per_minute: u32,
    /// Requests on one tenant's routes at once before the per-minute rate applies.
    #[arg(long, env = "RATE_LIMIT_PER_TENANT_BURST", default_value_t = 240)]
    pub rate_limit_per_tenant_burst: u32,
    /// Bearer token the scraper of `/metrics` must send; unset: `/metrics` is open (keep it off the public network).
    #[arg(long, env = "METRICS_TOKEN", hide_env_values = true, value_parser = secret)]
    pub metrics_token: Option<SecretString>,
    /// `max-age` of the `Strict-Transport-Security` header, in seconds, sent when `APP_PUBLIC_URL` is `https://`
    /// (the API is behind TLS); 0: never sent.
    #[arg(long, env = "APP_HSTS_MAX_AGE_SECS", default_value_t = 31_536_000)]
    pub hsts_max_age_secs: u64,
    /// Public base URL of the API, used in links sent to people (invitation accept links).
    #[arg(long, env = "APP_PUBLIC_URL", default_value = "http://127.0.0.1:8080")]
    pub public_url: String,
    /// Take the client address from `X-Forwarded-For` (only behind a proxy that appends to it): the entry
    /// `APP_TRUSTED_PROXY_HOPS` from the right, i.e. the address the outermost trusted proxy saw.
    #[arg(long, env = "APP_TRUST_FORWARDED_FOR", default_value_t = false)]
    pub trust_forwarded_for: bool,
    /// Addresses or CIDR ranges of the proxies in front of the API, comma-separated. When set, `X-Forwarded-For` is
    /// read only on connections from one of them (and trusted even without `APP_TRUST_FORWARDED_FOR`).
    #[arg(long, env = "APP_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,
    /// How many proxies append to `X-Forwarded-For` before the request reaches the API (1: a single load balancer).
    #[arg(long, env = "APP_TRUSTED_PROXY_HOPS", default_value_t = 1)]
    pub trusted_proxy_hops: usize,
    /// JWT keys as `kid:secret,kid:secret` (secrets of 32+ bytes); the first signs, all verify. Unset: a random
    /// per-process key (development only).
    #[arg(long, env = "JWT_KEYS", hide_env_values = true, value_parser = secret)]
    pub jwt_keys: Option<SecretString>,
    /// `iss` of issued access tokens, and the only issuer accepted.
    #[arg(long, env = "JWT_ISSUER", default_value = "testio-hub")]
    pub jwt_issuer: String,
    /// `aud` of issued access tokens, and the only audience accepted.
    #[arg(long, env = "JWT_AUDIENCE", default_value = "testio-hub-api")]
    pub jwt_audience: String,
    /// Lifetime of access tokens, in seconds.
    #[arg(long, env = "ACCESS_TOKEN_TTL_SECS", default_value_t = 900)]
    pub access_token_ttl_secs: u64,
    /// Lifetime of a login session (and so of its refresh tokens), in seconds.
    #[arg(long, env = "SESSION_TTL_SECS", default_value_t = 30 * 24 * 3600)]
    pub session_ttl_secs: u64,
    /// Lifetime of an invitation, in seconds.
    #[arg(long, env = "INVITATION_TTL_SECS", default_value_t = 7 * 24 * 3600)]
    pub invitation_ttl_secs: u64,
    /// Failed password checks for one account from one client address (within 15 minutes) before that pair is
    /// locked for a while (30 s, doubling, at most 15 minutes). Sign-ins and password changes count alike.
    #[arg(long, env = "LOGIN_MAX_FAILURES_PER_ACCOUNT_AND_IP", default_value_t = 5)]
    pub login_max_failures_per_account_and_ip: i32,
    /// Failed password checks for one account from all addresses together (within 15 minutes) before the account is
    /// locked: a much higher ceiling than the per-address limit, so a stranger cannot lock a user out.
    #[arg(long, env = "LOGIN_MAX_FAILURES_PER_ACCOUNT", default_value_t = 100)]
    pub login_max_failures_per_account: i32,
    /// Failed sign-ins from one client address, all accounts together (within 15 minutes), before it is locked.
    #[arg(long, env = "LOGIN_MAX_FAILURES_PER_IP", default_value_t = 50)]
    pub login_max_failures_per_ip: i32,
    /// Registrations from one client address within an hour before registering from it waits (60 s, doubling, at
    /// most an hour).
    #[arg(long, env = "REGISTER_MAX_PER_IP", default_value_t = 30)]
    pub register_max_per_ip: i32,
    /// Password hashes computed at once (each takes 19 MiB and a core for ~25 ms); 0 means one per CPU core.
    #[arg(long, env = "PASSWORD_HASH_CONCURRENCY", default_value_t = 0)]
    pub password_hash_concurrency: usize,
    /// How long a request waits for a free password hasher before it is answered 503 with `Retry-After`, in ms.
    #[arg(long, env = "PASSWORD_HASH_WAIT_MS", default_value_t = 2000)]
    pub password_hash_wait_ms: u64,
    /// Where mail goes: `file` (one `.eml` file per message in `MAIL_OUTBOX_DIR`, for development) or `smtp`
    /// (`SMTP_URL`, with TLS).
    #[arg(long, env = "MAIL_TRANSPORT", value_enum, default_value_t = MailTransport::File)]
    pub mail_transport: MailTransport,
    /// The outbox folder of `MAIL_TRANSPORT=file`.
    #[arg(long, env = "MAIL_OUTBOX_DIR", default_value = "mail-outbox")]
    pub mail_outbox_dir: std::path::PathBuf,
    /// SMTP server of `MAIL_TRANSPORT=smtp`: `smtps://user:pass@host:465` or `smtp://user:pass@host:587?tls=required`
    /// (plain `smtp://` only for a relay on the loopback interface).
    #[arg(long, env = "SMTP_URL", hide_env_values = true, value_parser = secret)]
    pub smtp_url: Option<SecretString>,
    /// Sender of every message.
    #[arg(long, env = "MAIL_FROM", default_value = "TestIO Hub <no-reply@testio-hub.invalid>")]
    pub mail_from: String,
    /// How long sending one message may take before it is given up (it can be sent again), in seconds.
    #[arg(long, env = "MAIL_SEND_TIMEOUT_SECS", default_value_t = 10)]
    pub mail_send_timeout_secs: u64,
    /// Lifetime of an email verification link, in seconds.
    #[arg(long, env = "EMAIL_VERIFICATION_TTL_SECS", default_value_t = 24 * 3600)]
    pub email_verification_ttl_secs: u64,
    /// Log format: `json` (one object per line) or `pretty` (for a terminal). The level comes from `RUST_LOG`.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
    /// Keys that encrypt stored TestIO tokens, `kid:base64key,...` (32-byte AES-256-GCM keys); the first encrypts,
    /// all decrypt. The worker needs the same value. Unset: connections cannot be saved (503).
    #[arg(long, env = "TESTIO_TOKEN_KEYS", hide_env_values = true, value_parser = secret)]
    pub testio_token_keys: Option<SecretString>,
    /// Base URL of connections that name none.
    #[arg(long, env = "TESTIO_BASE_URL", default_value = "https://api.test.io/customer/v2/")]
    pub testio_base_url: String,
    /// Comma-separated base URLs a connection may use (the servers send the tenant's token there, so it must not
    /// reach internal services): scheme, host and port exactly, the path on a `/` boundary. An entry that does not
    /// parse stops start-up. The worker needs the same value.
    #[arg(long, env = "TESTIO_ALLOWED_BASE_URLS", default_value = "https://api.test.io/")]
    pub testio_allowed_base_urls: String,
    /// Zero-config start: a TestIO token. On a database without users, start-up creates a default tenant connected
    /// with it and an admin whose password is printed once.
    #[arg(long, env = "TESTIO_TOKEN", hide_env_values = true, value_parser = secret)]
    pub testio_token: Option<SecretString>,
    /// Email of the admin the zero-config start creates.
    #[arg(long, env = "BOOTSTRAP_ADMIN_EMAIL", default_value = "admin@example.com")]
    pub bootstrap_admin_email: String,
    /// Timeout of the token check made when a connection is saved, in seconds.
    #[arg(long, env = "TESTIO_VERIFY_TIMEOUT_SECS", default_value_t = 10)]
    pub testio_verify_timeout_secs: u64,
    /// The plans' limits and prices.
    #[command(flatten)]
    pub plans: common::settings::PlanSettings,
    /// How to reach Stripe.
    #[command(flatten)]
    pub stripe: common::settings::StripeSettings,
    /// Signing secrets of the Stripe webhook endpoint (`whsec_...`), comma-separated: two while one is rotated. Unset:
    /// webhooks are refused.
    #[arg(long, env = "STRIPE_WEBHOOK_SECRETS", hide_env_values = true, value_parser = secret)]
    pub stripe_webhook_secrets: Option<SecretString>,
    /// How far a webhook signature's timestamp may be from now, in seconds.
    #[arg(long, env = "STRIPE_WEBHOOK_TOLERANCE_SECS", default_value_t = 300)]
    pub stripe_webhook_tolerance_secs: u64,
    /// Where Checkout sends the customer after paying (default: `APP_PUBLIC_URL/billing/success`).
    #[arg(long, env = "BILLING_SUCCESS_URL")]
    pub billing_success_url: Option<String>,
    /// Where Checkout sends the customer who cancels (default: `APP_PUBLIC_URL/billing/cancel`).
    #[arg(long, env = "BILLING_CANCEL_URL")]
    pub billing_cancel_url: Option<String>,
    /// Where the customer portal's "return" link goes (default: `APP_PUBLIC_URL/billing`).
    #[arg(long, env = "BILLING_RETURN_URL")]
    pub billing_return_url: Option<String>,
}

/// Where outgoing mail goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MailTransport {
    File,
    Smtp,
}

impl Settings {
    /// A billing page URL: the configured one, else `APP_PUBLIC_URL` + `path`.
    pub fn billing_url(&self, configured: &Option<String>, path: &str) -> String {
        configured.clone().unwrap_or_else(|| format!("{}{path}", self.public_url.trim_end_matches('/')))
    }

    pub fn pool(&self) -> PoolSettings {
        PoolSettings {
            max_connections: self.database_max_connections,
            acquire_timeout: Duration::from_millis(self.database_acquire_timeout_ms),
            connect_timeout: Duration::from_millis(self.database_acquire_timeout_ms),
            statement_timeout: Duration::from_millis(self.database_statement_timeout_ms),
            idle_in_transaction_timeout: Duration::from_millis(self.database_idle_in_transaction_timeout_ms),
        }
    }
}
