//! What the API and the worker both need to run as services, apart from the data layer: logging set-up
//! ([`telemetry`]), the sealing of TestIO tokens at rest ([`token_cipher`]) and the start-up check that the database
//! role cannot bypass row-level security ([`role_check`]).

pub mod role_check;
pub mod telemetry;
pub mod token_cipher;
