//! [`Application::build`]: the one way to assemble the server, used by `main` and by the tests (on port 0).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::{Condition, ErrorHandlers, from_fn};
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::jwt::JwtKeys;
use crate::auth::password::PasswordHasher;
use crate::config::Settings;
use crate::error::{json_error, path_error, query_error, render_foreign_error};
use crate::http_policy::{HttpPolicy, security_headers};
use crate::rate_limit::{Rate, rate_limit};
use crate::request_context::{ProxyTrust, request_context};
use crate::routes::fallback::{RouteTable, not_found_or_method_not_allowed};
use crate::state::AppState;
use crate::{openapi, routes};

/// A bound, ready-to-run server.
pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Connects to the database, refuses an unsafe role, binds the port and builds the server (not yet running).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let db = entity::db::connect(settings.database_url.expose_secret(), &settings.pool())
            .await
            .context("Failed to configure the database pool")?;
        common::role_check::verify_at_startup(&db, Duration::from_secs(settings.database_startup_timeout_secs)).await?;

        let listener = TcpListener::bind((settings.host.as_str(), settings.port))
            .with_context(|| format!("Failed to bind {}:{}", settings.host, settings.port))?;
        let port = listener.local_addr().context("Failed to read the bound address")?.port();
        let jwt = JwtKeys::from_config(
            settings.jwt_keys.as_ref(),
            &settings.jwt_issuer,
            &settings.jwt_audience,
            Duration::from_secs(settings.access_token_ttl_secs),
        )?;
        let proxy_trust = ProxyTrust::from_settings(
            settings.trust_forwarded_for,
            &settings.trusted_proxies,
            settings.trusted_proxy_hops,
        )?;
        let token_keys = common::token_cipher::TokenKeys::from_config(settings.testio_token_keys.as_ref())
            .context("Failed to read TESTIO_TOKEN_KEYS")?;
        if !token_keys.is_configured() {
            tracing::warn!("TESTIO_TOKEN_KEYS is not set: TestIO connections cannot be saved");
        }
        let testio_allowlist = settings
            .testio_allowed_base_urls
            .parse::<testio::allowlist::AllowedBaseUrls>()
            .map_err(anyhow::Error::msg)
            .context("Failed to read TESTIO_ALLOWED_BASE_URLS")?;
        let testio = testio::client::TestioClient::new(
            testio::client::ClientSettings {
                request_timeout: Duration::from_secs(settings.testio_verify_timeout_secs.max(1)),
                max_attempts: 2,
                max_retry_after: Duration::from_secs(2),
                ..Default::default()
            },
            tokio_util::sync::CancellationToken::new(),
        )?;
        let mailer = crate::mailer::from_settings(&settings)?;
        let passwords = PasswordHasher::new(
            settings.password_hash_concurrency,
            Duration::from_millis(settings.password_hash_wait_ms),
        );
        let cursors = crate::pagination::CursorKeys::from_config(settings.jwt_keys.as_ref())?;
        let plans = settings.plans.catalog();
        let stripe = billing::StripeClient::from_settings(&settings.stripe)?;
        let webhooks = billing::webhook::Verifier::new(
            settings
                .stripe_webhook_secrets
                .as_ref()
                .map(|s| {
                    s.expose_secret()
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| SecretString::from(s.to_owned()))
                        .collect()
                })
                .unwrap_or_default(),
            chrono::Duration::seconds(i64::try_from(settings.stripe_webhook_tolerance_secs).unwrap_or(300)),
        );
        let rate_limits = crate::rate_limit::RateLimits {
            per_ip: Rate::new(settings.rate_limit_per_ip_per_minute, settings.rate_limit_per_ip_burst),
            per_tenant: Rate::new(settings.rate_limit_per_tenant_per_minute, settings.rate_limit_per_tenant_burst),
        };
        let state = AppState {
            db,
            settings: Arc::new(settings),
            jwt: Arc::new(jwt),
            mailer,
            token_keys: Arc::new(token_keys),
            testio,
            testio_allowlist: Arc::new(testio_allowlist),
            passwords,
            proxy_trust: Arc::new(proxy_trust),
            cursors: Arc::new(cursors),
            stats: Arc::new(entity::mirror::query::StatsCache::new(crate::state::STATS_CACHE_TENANTS)),
            plans: Arc::new(plans),
            stripe,
            webhooks: Arc::new(webhooks),
            rate_limits,
        };
        common::metrics::handle();
        let server = serve(listener, state)?;
        tracing::info!(port, "listening");
        Ok(Self { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs until SIGINT/SIGTERM (graceful: in-flight requests get `APP_SHUTDOWN_TIMEOUT_SECS`).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// Extractor settings under which every extraction failure (bad JSON, wrong content type, oversize body, bad path or
/// query parameter) becomes a problem+json response.
pub(crate) fn configure_extractors(cfg: &mut web::ServiceConfig, max_body: usize) {
    cfg.app_data(web::JsonConfig::default().limit(max_body).error_handler(json_error))
        .app_data(web::PayloadConfig::new(max_body))
        .app_data(web::PathConfig::default().error_handler(path_error))
        .app_data(web::QueryConfig::default().error_handler(query_error));
}

fn serve(listener: TcpListener, state: AppState) -> anyhow::Result<Server> {
    let spec = openapi::spec();
    let route_table = Arc::new(RouteTable::from_spec(&spec));
    let settings = state.settings.clone();
    let max_body = settings.max_body_bytes;
    let policy = web::Data::new(HttpPolicy::from_settings(&settings));
    // Checked here, so a bad origin stops start-up; built again for each HTTP worker (a `Cors` is not `Clone`).
    crate::http_policy::cors(&settings)?;
    let cors_settings = settings.clone();
    let mut server = HttpServer::new(move || {
        let spec = spec.clone();
        let cors = crate::http_policy::cors(&cors_settings).ok().flatten();
        App::new()
            .app_data(web::Data::new(state.clone()))
            .app_data(web::Data::new(route_table.clone()))
            .app_data(policy.clone())
            .configure(|cfg| configure_extractors(cfg, max_body))
            .wrap(from_fn(rate_limit))
            .wrap(Condition::new(cors.is_some(), cors.unwrap_or_default()))
            .wrap(ErrorHandlers::new().default_handler(render_foreign_error))
            .wrap(from_fn(security_headers))
            .wrap(from_fn(request_context))
            .into_utoipa_app()
            .configure(routes::configure)
            .openapi_service(move |_| SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", spec))
            .into_app()
            .service(
                web::resource("/docs")
                    .get(|| async { HttpResponse::PermanentRedirect().insert_header(("location", "/docs/")).finish() }),
            )
            .service(web::resource("/metrics").get(crate::metrics::scrape))
            .service(web::resource("/admin/audit").get(crate::viewer::page))
            .service(web::resource("/admin/audit/app.js").get(crate::viewer::script))
            .default_service(web::to(not_found_or_method_not_allowed))
    })
    .listen(listener)
    .context("Failed to listen")?
    .shutdown_timeout(settings.shutdown_timeout_secs)
    .client_request_timeout(Duration::from_secs(settings.client_request_timeout_secs))
    .keep_alive(Duration::from_secs(settings.keep_alive_secs));
    if settings.workers > 0 {
        server = server.workers(settings.workers);
    }
    Ok(server.run())
}

#[cfg(test)]
mod tests {
    //! The extractor configuration and middleware of the real server, around a probe handler: the request-body
    //! failures that public JSON endpoints can hit.

    use actix_web::http::StatusCode;
    use actix_web::test::{TestRequest, call_service, init_service, read_body_json};
    use serde_json::Value;

    use super::*;

    #[derive(serde::Deserialize)]
    struct Probe {
        #[allow(dead_code)]
        name: String,
        #[allow(dead_code)]
        count: u32,
    }

    async fn probe(_: web::Json<Probe>, _: web::Path<uuid::Uuid>) -> HttpResponse {
        HttpResponse::NoContent().finish()
    }

    async fn send(req: TestRequest) -> (StatusCode, Value) {
        let app = init_service(
            App::new()
                .configure(|cfg| configure_extractors(cfg, 64))
                .wrap(ErrorHandlers::new().default_handler(render_foreign_error))
                .wrap(from_fn(request_context))
                .route("/probe/{id}", web::post().to(probe)),
        )
        .await;
        let res = call_service(&app, req.to_request()).await;
        let status = res.status();
        if status.is_success() {
            return (status, Value::Null);
        }
        let header = |name: &str| res.headers().get(name).unwrap().to_str().unwrap().to_owned();
        assert_eq!(header("content-type"), "application/problem+json");
        let request_id = header("x-request-id");
        let body: Value = read_body_json(res).await;
        assert_eq!(body["request_id"], request_id);
        (status, body)
    }

    const ID: &str = "/probe/0b7c6f0e-2f55-4b8e-9a53-0d4bb1d2b0c1";

    fn json(body: &str) -> TestRequest {
        TestRequest::post().uri(ID).insert_header(("content-type", "application/json")).set_payload(body.to_owned())
    }

    #[actix_web::test]
    async fn a_valid_body_passes() {
        assert_eq!(send(json(r#"{"name":"a","count":1}"#)).await.0, StatusCode::NO_CONTENT);
    }

    #[actix_web::test]
    async fn malformed_json_is_400_malformed_json() {
        let (status, body) = send(json(r#"{"name":"a","#)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["code"], "malformed_json");
    }

    #[actix_web::test]
    async fn well_formed_json_of_the_wrong_shape_is_422_with_field_errors() {
        let (status, body) = send(json(r#"{"name":"a","count":-1}"#)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["code"], "validation_failed");
        assert!(body["errors"][0]["message"].as_str().unwrap().contains("-1"));
        let (_, body) = send(json(r#"{"name":"a"}"#)).await;
        assert!(body["detail"].as_str().unwrap().contains("missing field `count`"));
    }

    #[actix_web::test]
    async fn a_body_that_is_not_json_is_415() {
        let req = TestRequest::post().uri(ID).insert_header(("content-type", "text/plain")).set_payload("{}");
        let (status, body) = send(req).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(body["code"], "unsupported_media_type");
        let (status, _) = send(TestRequest::post().uri(ID).set_payload("{}")).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "a missing content type is refused too");
    }

    #[actix_web::test]
    async fn an_oversize_body_is_413() {
        let (status, body) = send(json(&format!(r#"{{"name":"{}","count":1}}"#, "x".repeat(100)))).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body["code"], "payload_too_large");
    }

    #[actix_web::test]
    async fn a_path_id_that_is_not_a_uuid_is_400_invalid_path_parameter() {
        let req = TestRequest::post()
            .uri("/probe/not-a-uuid")
            .insert_header(("content-type", "application/json"))
            .set_payload(r#"{"name":"a","count":1}"#);
        let (status, body) = send(req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["code"], "invalid_path_parameter");
    }
}
