//! The `kid:secret,kid:secret` lists that configure rotating keys (`JWT_KEYS`, `TESTIO_TOKEN_KEYS`): the first key is
//! the current one, the others are still accepted, so a key is rotated by putting a new one first and dropping the
//! old one later. This module reads the list; each user checks its secrets' own format.

use secrecy::{ExposeSecret, SecretString};

/// One entry of a key list: its id and its secret as written.
pub struct Entry<'a> {
    pub kid: &'a str,
    pub secret: &'a str,
}

/// Why a key list is refused. Never quotes a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    #[error("entries must look like kid:secret")]
    Malformed,
    #[error("key ids must be 1 to 64 characters")]
    BadKeyId,
    #[error("key id {0:?} appears twice")]
    DuplicateKeyId(String),
}

/// The entries of `config` in order (empty entries and spaces around them ignored), with key ids that are 1 to 64
/// characters and unique.
pub fn parse(config: &SecretString) -> Result<Vec<Entry<'_>>, KeyringError> {
    let mut entries: Vec<Entry<'_>> = Vec::new();
    for raw in config.expose_secret().split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (kid, secret) = raw.split_once(':').ok_or(KeyringError::Malformed)?;
        let (kid, secret) = (kid.trim(), secret.trim());
        if kid.is_empty() || kid.len() > 64 {
            return Err(KeyringError::BadKeyId);
        }
        if entries.iter().any(|e| e.kid == kid) {
            return Err(KeyringError::DuplicateKeyId(kid.to_owned()));
        }
        entries.push(Entry { kid, secret });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(config: &str) -> Result<Vec<(String, String)>, KeyringError> {
        let config = SecretString::from(config);
        parse(&config).map(|e| e.into_iter().map(|e| (e.kid.to_owned(), e.secret.to_owned())).collect())
    }

    #[test]
    fn entries_keep_their_order_and_ignore_blanks() {
        let got = parsed(" new:s2 , ,old:s1:with-colon ").unwrap();
        assert_eq!(got, [("new".into(), "s2".into()), ("old".into(), "s1:with-colon".into())]);
        assert!(parsed("").unwrap().is_empty());
    }

    #[test]
    fn malformed_lists_are_refused_without_quoting_secrets() {
        assert_eq!(parsed("no-colon-secret").unwrap_err(), KeyringError::Malformed);
        assert_eq!(parsed(":secret").unwrap_err(), KeyringError::BadKeyId);
        assert_eq!(parsed(&format!("{}:s", "k".repeat(65))).unwrap_err(), KeyringError::BadKeyId);
        let duplicate = parsed("a:topsecret,a:other").unwrap_err();
        assert_eq!(duplicate, KeyringError::DuplicateKeyId("a".into()));
        assert!(!duplicate.to_string().contains("topsecret"));
    }
}
