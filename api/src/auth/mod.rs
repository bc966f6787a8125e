//! Authentication and authorization: who is calling (`principal`: a `Caller` for tenant endpoints, a `Principal`
//! elsewhere), what their role allows (`permissions`), and the per-request tenant check (`tenant_access`), which
//! authenticates a `Caller` in the statement that binds the request's transaction to the tenant. Credentials:
//! short-lived JWT access tokens (`jwt`) of a session (`session`), rotating opaque refresh tokens and API keys
//! (`secrets`), argon2id password hashes (`password`) with their attempt limits (`throttle`), and email verification
//! tokens (`verification`).

pub mod jwt;
pub mod password;
pub mod permissions;
pub mod principal;
pub mod secrets;
pub mod session;
pub mod tenant_access;
pub mod throttle;
pub mod verification;
