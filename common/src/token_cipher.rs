//! Encryption at rest of the TestIO API tokens tenants connect with: AES-256-GCM with a random 96-bit nonce per
//! token, the tenant id as associated data (a ciphertext moved to another tenant's row does not decrypt), and a key id
//! stored next to the ciphertext so that keys can be rotated: the first configured key encrypts, every configured key
//! decrypts.
//!
//! Keys come from `TESTIO_TOKEN_KEYS` as `kid:base64key,kid:base64key` (32-byte keys, standard base64).

use aes_gcm::aead::{Aead, Generate, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};

use entity::TenantId;

use crate::keyring::{self, Entry};
pub use entity::testio_connections::Sealed;

#[derive(Debug, thiserror::Error)]
pub enum CipherError {
    #[error("TESTIO_TOKEN_KEYS is not configured")]
    NotConfigured,
    #[error("the token was sealed with key {0:?}, which is not configured")]
    UnknownKey(String),
    #[error("the stored token does not decrypt (wrong key, another tenant's row, or corrupted)")]
    Corrupt,
    #[error("invalid TESTIO_TOKEN_KEYS: {0}")]
    Config(String),
}

/// The configured keys. Cheap to clone.
#[derive(Clone, Default)]
pub struct TokenKeys {
    keys: Vec<(String, Aes256Gcm)>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("TokenKeys").field("key_ids", &ids).finish()
    }
}

impl TokenKeys {
    /// Parses `kid:base64key,...`. `None` gives an empty set: sealing and opening then fail with
    /// [`CipherError::NotConfigured`], which callers report instead of storing a token they could not read back.
    pub fn from_config(config: Option<&SecretString>) -> Result<Self, CipherError> {
        let mut keys: Vec<(String, Aes256Gcm)> = Vec::new();
        let Some(config) = config else { return Ok(Self::default()) };
        for Entry { kid, secret } in keyring::parse(config).map_err(|e| CipherError::Config(e.to_string()))? {
            let bytes =
                STANDARD.decode(secret).map_err(|_| CipherError::Config(format!("key {kid:?} is not valid base64")))?;
            let cipher = Aes256Gcm::new_from_slice(&bytes)
                .map_err(|_| CipherError::Config(format!("key {kid:?} must be 32 bytes, not {}", bytes.len())))?;
            keys.push((kid.to_owned(), cipher));
        }
        Ok(Self { keys })
    }

    /// Whether at least one key is configured.
    pub fn is_configured(&self) -> bool {
        !self.keys.is_empty()
    }

    /// A fresh random key in the configuration format, for `kid`.
    pub fn generate_entry(kid: &str) -> String {
        let key = aes_gcm::Key::<Aes256Gcm>::generate();
        format!("{kid}:{}", STANDARD.encode(key.as_slice()))
    }

    /// Encrypts `token` for `tenant` with the current (first) key.
    pub fn seal(&self, tenant: TenantId, token: &SecretString) -> Result<Sealed, CipherError> {
        let (key_id, cipher) = self.keys.first().ok_or(CipherError::NotConfigured)?;
        let nonce = Nonce::generate();
        let aad = tenant.0.as_bytes();
        let ciphertext = cipher
            .encrypt(&nonce, Payload { msg: token.expose_secret().as_bytes(), aad })
            .map_err(|_| CipherError::Corrupt)?;
        Ok(Sealed { key_id: key_id.clone(), nonce: nonce.to_vec(), ciphertext })
    }

    /// Decrypts a token sealed for `tenant`.
    pub fn open(&self, tenant: TenantId, sealed: &Sealed) -> Result<SecretString, CipherError> {
        if self.keys.is_empty() {
            return Err(CipherError::NotConfigured);
        }
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(id, _)| *id == sealed.key_id)
            .ok_or_else(|| CipherError::UnknownKey(sealed.key_id.clone()))?;
        let nonce = Nonce::try_from(sealed.nonce.as_slice()).map_err(|_| CipherError::Corrupt)?;
        let plain = cipher
            .decrypt(&nonce, Payload { msg: &sealed.ciphertext, aad: tenant.0.as_bytes() })
            .map_err(|_| CipherError::Corrupt)?;
        String::from_utf8(plain).map(SecretString::from).map_err(|_| CipherError::Corrupt)
    }

    /// Whether `sealed` uses a key other than the current one (and should be re-sealed).
    pub fn is_stale(&self, sealed: &Sealed) -> bool {
        self.keys.first().is_some_and(|(id, _)| *id != sealed.key_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(config: &str) -> TokenKeys {
        TokenKeys::from_config(Some(&SecretString::from(config))).unwrap()
    }

    fn tenant() -> TenantId {
        TenantId(uuid::Uuid::now_v7())
    }

    #[test]
    fn a_sealed_token_opens_for_its_tenant_only() {
        let keys = keys(&TokenKeys::generate_entry("k1"));
        let (a, b) = (tenant(), tenant());
        let sealed = keys.seal(a, &SecretString::from("abcd-token")).unwrap();
        assert!(!sealed.ciphertext.windows(4).any(|w| w == b"abcd"), "plaintext visible");
        assert_eq!(keys.open(a, &sealed).unwrap().expose_secret(), "abcd-token");
        assert!(matches!(keys.open(b, &sealed), Err(CipherError::Corrupt)));
        let mut tampered = sealed.clone();
        tampered.ciphertext[0] ^= 1;
        assert!(matches!(keys.open(a, &tampered), Err(CipherError::Corrupt)));
    }

    #[test]
    fn two_seals_of_one_token_differ() {
        let keys = keys(&TokenKeys::generate_entry("k1"));
        let t = tenant();
        let token = SecretString::from("same");
        assert_ne!(keys.seal(t, &token).unwrap().nonce, keys.seal(t, &token).unwrap().nonce);
    }

    #[test]
    fn rotation_keeps_old_tokens_readable_and_seals_with_the_new_key() {
        let old = TokenKeys::generate_entry("old");
        let t = tenant();
        let sealed = keys(&old).seal(t, &SecretString::from("tok")).unwrap();
        let rotated = keys(&format!("{},{old}", TokenKeys::generate_entry("new")));
        assert_eq!(rotated.open(t, &sealed).unwrap().expose_secret(), "tok");
        assert!(rotated.is_stale(&sealed));
        assert_eq!(rotated.seal(t, &SecretString::from("tok")).unwrap().key_id, "new");
        let without_old = keys(&TokenKeys::generate_entry("new"));
        assert!(matches!(without_old.open(t, &sealed), Err(CipherError::UnknownKey(k)) if k == "old"));
    }

    #[test]
    fn bad_configurations_are_refused_and_absent_keys_refuse_to_seal() {
        for bad in ["nokey", ":AAAA", "k1:not base64!", "k1:AAAA", "k:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,k:x"]
        {
            assert!(TokenKeys::from_config(Some(&SecretString::from(bad))).is_err(), "{bad}");
        }
        let none = TokenKeys::from_config(None).unwrap();
        assert!(matches!(none.seal(tenant(), &SecretString::from("t")), Err(CipherError::NotConfigured)));
        assert!(format!("{:?}", keys(&TokenKeys::generate_entry("k1"))).contains("k1"));
    }
}
