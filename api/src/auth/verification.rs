//! Email verification tokens: a new account (or one asking again) gets a single-use, expiring link by mail. The
//! routes that consume them are `routes/auth/verify_email.rs` and `routes/me/verification_email.rs`.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use entity::{Db, email_verifications, users};

use crate::auth::secrets;
use crate::error::ApiError;
use crate::mailer::{self, Mail};
use crate::state::AppState;

/// Stores a new verification token for `user` in `db` (expiring older ones) and returns the message that carries it,
/// to be sent once `db`'s transaction has committed, and when the token expires.
pub async fn issue(state: &AppState, db: &impl Db, user: &users::Model) -> Result<(Mail, DateTime<Utc>), ApiError> {
    let token = secrets::new_verification_token();
    let valid_for = Duration::from_secs(state.settings.email_verification_ttl_secs.max(60));
    let expires_at = Utc::now() + chrono::Duration::from_std(valid_for).unwrap_or(chrono::Duration::days(1));
    email_verifications::create(db, user.id, &user.email, secrets::sha256(&token), expires_at)
        .await
        .context("Failed to store the verification token")?;
    let url = format!("{}/v1/auth/verify-email?token={token}", state.settings.public_url.trim_end_matches('/'));
    Ok((mailer::email_verification(&user.email, &user.name, &url, valid_for, user.id), expires_at))
}
