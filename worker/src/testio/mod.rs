//! The TestIO Customer API v2: the HTTP client with its pacing, the allowlist of base URLs it may be aimed at, and
//! the parsing of its items into mirror rows.

pub mod allowlist;
pub mod client;
pub mod model;
