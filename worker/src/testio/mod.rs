//! The TestIO Customer API v2: the HTTP client with its pacing, and the parsing of its items into mirror rows.

pub mod client;
pub mod model;
