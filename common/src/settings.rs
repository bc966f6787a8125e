//! Pieces of the API's and the worker's settings that are the same in both: the log format and the clap parser of
//! secret values (so that a secret is wrapped from the moment it is read).

use clap::ValueEnum;
use secrecy::SecretString;

/// How log lines are written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, for log collectors.
    Json,
    /// Human-readable lines, for a terminal.
    Pretty,
}

/// clap value parser for secrets: `value_parser = common::settings::secret`.
pub fn secret(s: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(s))
}
