//! Black-box tests of the API and the database, through real sockets and a real Postgres.

mod errors;
mod health;
mod migrations;
mod openapi;
mod rls;
mod startup;
