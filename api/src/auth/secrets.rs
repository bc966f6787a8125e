//! Opaque secrets: refresh tokens, invitation and email verification tokens, and API keys. Each is 256 random bits, shown to its owner once
//! and stored only as a SHA-256 hash (a slow hash adds nothing for secrets this long). Invitation tokens and API keys
//! embed the tenant id, so that they can be looked up inside that tenant's row-level security scope.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use entity::TenantId;
use rand::Rng;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// 32 random bytes, base64url without padding (43 characters).
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn sha256(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// `rt_<secret>`
pub fn new_refresh_token() -> String {
    format!("rt_{}", random_secret())
}

/// `ev_<secret>`: an email verification token.
pub fn new_verification_token() -> String {
    format!("ev_{}", random_secret())
}

/// `inv_<tenant id, 32 hex>_<secret>`
pub fn new_invitation_token(tenant: TenantId) -> String {
    format!("inv_{}_{}", tenant.0.simple(), random_secret())
}

/// The tenant an invitation token belongs to, if it has the right shape.
pub fn invitation_tenant(token: &str) -> Option<TenantId> {
    let rest = token.strip_prefix("inv_")?;
    let (tenant, secret) = rest.split_once('_')?;
    (secret.len() == 43).then_some(())?;
    Uuid::try_parse(tenant).ok().map(TenantId)
}

/// A parsed API key: `thk_<key id, 32 hex>_<tenant id, 32 hex>_<secret>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyToken {
    pub tenant_id: TenantId,
    pub key_id: Uuid,
    pub secret_hash: Vec<u8>,
    /// Where the request came from and what it asked (`GET /v1/...`), for the audit of a refused key.
    pub used_by: Option<Box<(entity::audit::Origin, String)>>,
}

pub const API_KEY_PREFIX: &str = "thk_";

/// A fresh key id: random (UUIDv4), because the start of the key is its visible prefix, and a timestamp there would
/// show the same prefix for every key made within a minute.
pub fn new_api_key_id() -> Uuid {
    Uuid::new_v4()
}

/// Characters of the key shown as its prefix after `thk_`: 12 random hex digits tell keys apart and let a leaked key
/// be matched to its row, and reveal 48 of its id's bits, none of the secret.
const VISIBLE_ID_CHARS: usize = 12;

/// A new key: the full secret (shown once) and its visible prefix (`thk_` and the first 12 hex digits of the key id).
pub fn new_api_key(tenant: TenantId, key_id: Uuid) -> (String, String) {
    let full = format!("{API_KEY_PREFIX}{}_{}_{}", key_id.simple(), tenant.0.simple(), random_secret());
    let prefix = full[..API_KEY_PREFIX.len() + VISIBLE_ID_CHARS].to_owned();
    (full, prefix)
}

pub fn parse_api_key(token: &str) -> Option<ApiKeyToken> {
    let rest = token.strip_prefix(API_KEY_PREFIX)?;
    let mut parts = rest.splitn(3, '_');
    let key_id = Uuid::try_parse(parts.next()?).ok()?;
    let tenant = Uuid::try_parse(parts.next()?).ok()?;
    let secret = parts.next()?;
    (secret.len() == 43).then_some(())?;
    Some(ApiKeyToken { tenant_id: TenantId(tenant), key_id, secret_hash: sha256(token), used_by: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_url_safe() {
        let (a, b) = (random_secret(), random_secret());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }

    #[test]
    fn invitation_tokens_carry_their_tenant() {
        let tenant = TenantId(Uuid::new_v4());
        assert_eq!(invitation_tenant(&new_invitation_token(tenant)), Some(tenant));
        assert_eq!(invitation_tenant("inv_nope_x"), None);
        assert_eq!(invitation_tenant("rt_abc"), None);
    }

    #[test]
    fn api_keys_round_trip_and_hash_the_whole_key() {
        let tenant = TenantId(Uuid::new_v4());
        let id = Uuid::new_v4();
        let (full, prefix) = new_api_key(tenant, id);
        assert!(full.starts_with(&prefix));
        let parsed = parse_api_key(&full).unwrap();
        assert_eq!((parsed.tenant_id, parsed.key_id), (tenant, id));
        assert_eq!(parsed.secret_hash, sha256(&full));
        assert!(parse_api_key(&full[..full.len() - 1]).is_none());
        assert!(parse_api_key("thk_zz_yy_xx").is_none());
    }

    #[test]
    fn keys_made_at_the_same_moment_have_different_prefixes() {
        let tenant = TenantId(Uuid::new_v4());
        let prefixes: std::collections::HashSet<String> =
            (0..50).map(|_| new_api_key(tenant, new_api_key_id()).1).collect();
        assert_eq!(prefixes.len(), 50);
        assert!(prefixes.iter().all(|p| p.len() == 16 && p.starts_with("thk_")));
    }
}
