//! argon2id password hashing, run on the blocking pool so that a login never stalls the async workers.

use std::sync::OnceLock;

use anyhow::Context;
use argon2::{Argon2, PasswordHasher, PasswordVerifier};

/// Hashes a password into a PHC string (argon2id, default parameters, random salt).
pub async fn hash(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|e| anyhow::anyhow!("{e}"))
    })
    .await
    .context("Failed to join the password hashing task")?
    .context("Failed to hash a password")
}

/// Checks a password against a stored hash. With no stored hash (unknown account, or one without a password) it
/// still spends the same work on a dummy hash, so that response times do not tell accounts apart.
pub async fn verify(password: String, stored: Option<String>) -> anyhow::Result<bool> {
    let dummy = stored.is_none();
    let stored = match stored {
        Some(s) => s,
        None => dummy_hash().to_owned(),
    };
    let matched =
        tokio::task::spawn_blocking(move || Argon2::default().verify_password(password.as_bytes(), stored.as_str()))
            .await
            .context("Failed to join the password verification task")?;
    Ok(!dummy && matched.is_ok())
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        Argon2::default().hash_password(b"not-a-real-password").map(|h| h.to_string()).unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let h = hash("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse".into(), Some(h.clone())).await.unwrap());
        assert!(!verify("wrong horse".into(), Some(h)).await.unwrap());
        assert!(!verify("not-a-real-password".into(), None).await.unwrap());
    }
}
