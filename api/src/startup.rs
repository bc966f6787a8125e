//! [`Application::build`]: the one way to assemble the server, used by `main` and by the tests (on port 0).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::{ErrorHandlers, from_fn};
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use secrecy::ExposeSecret;
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

use crate::config::Settings;
use crate::error::{json_error, path_error, query_error, render_foreign_error};
use crate::request_context::request_context;
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
        entity::role_check::verify_at_startup(&db, Duration::from_secs(settings.database_startup_timeout_secs)).await?;

        let listener = TcpListener::bind((settings.host.as_str(), settings.port))
            .with_context(|| format!("Failed to bind {}:{}", settings.host, settings.port))?;
        let port = listener.local_addr().context("Failed to read the bound address")?.port();
        let state = AppState { db, settings: Arc::new(settings) };
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

fn serve(listener: TcpListener, state: AppState) -> anyhow::Result<Server> {
    let spec = openapi::spec();
    let route_table = Arc::new(RouteTable::from_spec(&spec));
    let settings = state.settings.clone();
    let max_body = settings.max_body_bytes;
    let mut server = HttpServer::new(move || {
        let spec = spec.clone();
        App::new()
            .app_data(web::Data::new(state.clone()))
            .app_data(web::Data::new(route_table.clone()))
            .app_data(web::JsonConfig::default().limit(max_body).error_handler(json_error))
            .app_data(web::PayloadConfig::new(max_body))
            .app_data(web::PathConfig::default().error_handler(path_error))
            .app_data(web::QueryConfig::default().error_handler(query_error))
            .wrap(ErrorHandlers::new().default_handler(render_foreign_error))
            .wrap(from_fn(request_context))
            .into_utoipa_app()
            .configure(routes::configure)
            .openapi_service(move |_| SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", spec))
            .into_app()
            .service(
                web::resource("/docs")
                    .get(|| async { HttpResponse::PermanentRedirect().insert_header(("location", "/docs/")).finish() }),
            )
            .default_service(web::to(not_found_or_method_not_allowed))
    })
    .listen(listener)
    .context("Failed to listen")?
    .shutdown_timeout(settings.shutdown_timeout_secs);
    if settings.workers > 0 {
        server = server.workers(settings.workers);
    }
    Ok(server.run())
}
