//! What the API and the worker both need to run as services, apart from the data layer: logging set-up
//! ([`telemetry`]), Prometheus metrics ([`metrics`]), the settings they share ([`settings`]), the sealing of TestIO tokens at rest ([`token_cipher`]) and
//! the start-up check that the database role cannot bypass row-level security ([`role_check`]), and the reading of
//! rotating key lists ([`keyring`]).

pub mod keyring;
pub mod metrics;
pub mod role_check;
pub mod settings;
pub mod telemetry;
pub mod token_cipher;
