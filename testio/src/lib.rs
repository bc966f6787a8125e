//! The TestIO Customer API v2 as this product uses it: the HTTP client with its pacing ([`client`]), the allowlist of
//! base URLs a tenant's token may be sent to ([`allowlist`]), and the items it returns, parsed one by one into typed
//! values with TestIO's vocabulary of statuses and severities ([`model`]).
//!
//! It knows nothing of the database: turning items into mirror rows is the sync worker's business, and the API uses
//! only the client and the allowlist (to verify a token before saving a connection). The client is the default
//! feature `client`; `entity` turns it off and gets only [`model`], for the statuses it stores.

#[cfg(feature = "client")]
pub mod allowlist;
#[cfg(feature = "client")]
pub mod client;
pub mod model;
