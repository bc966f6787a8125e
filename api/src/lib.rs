//! The TestIO Hub REST API: an actix-web server over the shared `entity` crate.
//!
//! `startup` assembles the server; `config` holds the settings; `request_context` gives each request its id, span and
//! access-log line; `http_policy` adds the security headers, the request deadline and CORS; `error` turns every failure into problem+json; `routes` has one module per resource; `openapi`
//! builds the spec from the routes; `viewer` serves the audit-log viewer page.

pub mod admin;
pub mod auth;
pub mod body;
pub mod bootstrap;
pub mod config;
pub mod domain;
pub mod error;
pub mod http_policy;
pub mod idempotency;
pub mod mailer;
pub mod metrics;
pub mod openapi;
pub mod pagination;
pub mod plan_limits;
pub mod rate_limit;
pub mod request_context;
pub mod routes;
pub mod startup;
pub mod state;
pub mod viewer;
