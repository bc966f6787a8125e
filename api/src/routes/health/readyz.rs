//! `GET /readyz`: ready only when the database answers, its schema is at the migration head this binary was built
//! for, and the connected role is still safe (not a superuser, no BYPASSRLS, owns nothing, RLS forced everywhere).

use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, get, web};
use anyhow::Context;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorCode, ProblemDetails};
use crate::state::AppState;

/// The result of each readiness check: `ok`, or why it failed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadinessChecks {
    pub database: String,
    pub migrations: String,
    pub role: String,
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    #[schema(example = "ready")]
    pub status: &'static str,
    pub checks: ReadinessChecks,
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Readiness probe.
#[utoipa::path(
    tag = "health",
    responses(
        (status = 200, description = "Ready to serve traffic", body = Readiness),
        (status = 503, description = "Not ready; `checks` says which check failed", body = ProblemDetails,
         content_type = "application/problem+json"),
    ),
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let checks = match tokio::time::timeout(CHECK_TIMEOUT, run_checks(&state)).await {
        Ok(checks) => checks,
        Err(_) => ReadinessChecks {
            database: "timed out".into(),
            migrations: "not checked".into(),
            role: "not checked".into(),
        },
    };
    if [&checks.database, &checks.migrations, &checks.role].iter().all(|c| *c == "ok") {
        return Ok(HttpResponse::Ok().json(Readiness { status: "ready", checks }));
    }
    let detail =
        format!("Not ready: database {}, migrations {}, role {}.", checks.database, checks.migrations, checks.role);
    Err(ApiError::new(ErrorCode::ServiceUnavailable, detail)
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("5"))
        .with_extension("checks", serde_json::to_value(&checks).unwrap_or_default()))
}

async fn run_checks(state: &AppState) -> ReadinessChecks {
    let db = &state.db;
    let database = match db.execute_unprepared("SELECT 1").await {
        Ok(_) => "ok".to_owned(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database unreachable");
            return ReadinessChecks {
                database: "unreachable".into(),
                migrations: "not checked".into(),
                role: "not checked".into(),
            };
        }
    };
    let migrations = match applied_migrations(db).await {
        Ok(applied) => describe_migrations(&applied, &migration::expected_versions()),
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), "readiness: cannot read migrations");
            "unreadable".to_owned()
        }
    };
    let role = match common::role_check::verify_runtime_role(db).await {
        Ok(()) => "ok".to_owned(),
        Err(e) => {
            tracing::error!(error = %e, "readiness: unsafe database role");
            "unsafe".to_owned()
        }
    };
    ReadinessChecks { database, migrations, role }
}

async fn applied_migrations(db: &impl ConnectionTrait) -> anyhow::Result<Vec<String>> {
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT version FROM seaql_migrations ORDER BY version",
        ))
        .await
        .context("Failed to read seaql_migrations")?;
    rows.iter()
        .map(|row| row.try_get::<String>("", "version").context("Failed to decode a migration version"))
        .collect()
}

/// `ok` when exactly the expected migrations are applied; otherwise what is pending or unknown.
fn describe_migrations(applied: &[String], expected: &[String]) -> String {
    let pending = expected.iter().filter(|v| !applied.contains(v)).count();
    let unknown = applied.iter().filter(|v| !expected.contains(v)).count();
    match (pending, unknown) {
        (0, 0) => "ok".to_owned(),
        (p, 0) => format!("{p} pending"),
        (0, u) => format!("{u} newer than this build"),
        (p, u) => format!("{p} pending, {u} newer than this build"),
    }
}

#[cfg(test)]
mod tests {
    use super::describe_migrations;

    #[test]
    fn migrations_are_ok_only_at_exactly_the_expected_head() {
        let v = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(describe_migrations(&v(&["a", "b"]), &v(&["a", "b"])), "ok");
        assert_eq!(describe_migrations(&v(&["a"]), &v(&["a", "b"])), "1 pending");
        assert_eq!(describe_migrations(&v(&["a", "b", "c"]), &v(&["a", "b"])), "1 newer than this build");
    }
}
