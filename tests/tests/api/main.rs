//! Black-box tests of the API and the database, through real sockets and a real Postgres.

mod admin;
mod api_keys;
mod auth;
mod bootstrap_logs;
mod contract;
mod errors;
mod hardening;
mod harness;
mod health;
mod invitations;
mod isolation;
mod key_creator;
mod layering;
mod mail;
mod members;
mod migrations;
mod mirror_bad_input;
mod mirror_lists;
mod mirror_plans;
mod mirror_stats;
mod openapi;
mod rls;
mod round_trips;
mod startup;
mod tenants;
mod throttles;
