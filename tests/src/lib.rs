//! Test support for black-box tests of the whole stack: a fresh Postgres database per test (cloned from a migrated
//! template), the real API on a free port connected as the runtime role, and fault injectors.
//!
//! Postgres must run locally; `TEST_ADMIN_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`) names
//! a superuser connection used only to create roles and databases.

pub mod app;
pub mod audit;
pub mod bench;
pub mod billing;
pub mod database;
pub mod metrics;
pub mod mirror;
pub mod proxy;
pub mod smtp_sink;
pub mod spec;
pub mod stripe_sim;
pub mod sync;
pub mod testio_sim;

pub use app::{TestApp, TestUser, spawn_app, spawn_app_with};
pub use database::TestDatabase;
