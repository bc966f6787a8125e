//! Pages of the list endpoints: the `limit` / `page` / `per_page` rules and the opaque, signed `next_cursor`.
//!
//! A cursor is `base64url(json) "." base64url(hmac)`: the JSON says which list it continues (tenant, list, sort and a
//! fingerprint of the filters) and where (the last row's sort key and id); the HMAC-SHA256 tag, under a key derived
//! from the JWT keyring (`JWT_KEYS`: the first key signs, every key verifies, so cursors survive a key rotation as long
//! as tokens do), makes it tamper-evident. A cursor that fails the tag, or belongs to another tenant, list, sort or
//! filter, is a 400 naming `cursor`: a client cannot forge a position nor carry one across queries.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::keyring::{self, Entry};
use entity::TenantId;
use entity::mirror::query::{Keyset, TOTAL_CAP, Window};
use hmac::{Hmac, KeyInit, Mac};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ErrorCode};

type HmacSha256 = Hmac<Sha256>;

/// Largest `limit` / `per_page`.
pub const MAX_LIMIT: u64 = 200;
/// `limit` / `per_page` when not given.
pub const DEFAULT_LIMIT: u64 = 50;

/// The keys that sign and verify cursors.
pub struct CursorKeys {
    keys: Vec<[u8; 32]>,
}

impl CursorKeys {
    /// One key per `JWT_KEYS` entry (the first signs); without `JWT_KEYS`, a random key for this process, as for
    /// tokens.
    pub fn from_config(jwt_keys: Option<&SecretString>) -> anyhow::Result<Self> {
        let derive = |secret: &[u8]| -> [u8; 32] {
            let mut hasher = Sha256::new();
            hasher.update(b"testio-hub list cursor v1\0");
            hasher.update(secret);
            hasher.finalize().into()
        };
        let keys = match jwt_keys {
            Some(keys) => keyring::parse(keys)
                .map_err(|e| anyhow::anyhow!("JWT_KEYS: {e}"))?
                .into_iter()
                .map(|Entry { secret, .. }| derive(secret.as_bytes()))
                .collect(),
            None => vec![derive(crate::auth::secrets::random_secret().as_bytes())],
        };
        if keys.is_empty() {
            anyhow::bail!("JWT_KEYS is empty");
        }
        Ok(Self { keys })
    }

    fn tag(key: &[u8; 32], body: &[u8]) -> Result<HmacSha256, ApiError> {
        let mut mac = HmacSha256::new_from_slice(key).map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")))?;
        mac.update(body);
        Ok(mac)
    }

    /// Seals `cursor`.
    pub fn seal<P: Serialize>(&self, cursor: &Cursor<P>) -> Result<String, ApiError> {
        let body = serde_json::to_vec(cursor).map_err(|e| ApiError::internal(e.into()))?;
        let key = self.keys.first().ok_or_else(|| ApiError::internal(anyhow::anyhow!("no cursor key")))?;
        let tag = Self::tag(key, &body)?.finalize().into_bytes();
        Ok(format!("{}.{}", URL_SAFE_NO_PAD.encode(&body), URL_SAFE_NO_PAD.encode(tag)))
    }

    /// Opens a cursor sealed by [`CursorKeys::seal`] and checks that it continues `expected` (tenant, list, sort,
    /// filters).
    pub fn open<P: DeserializeOwned>(&self, text: &str, expected: &CursorScope) -> Result<P, ApiError> {
        let bad = |why: &str| ApiError::new(ErrorCode::InvalidQueryParameter, format!("cursor {why}."));
        let (body, tag) = text.split_once('.').ok_or_else(|| bad("is malformed"))?;
        let body = URL_SAFE_NO_PAD.decode(body).map_err(|_| bad("is malformed"))?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| bad("is malformed"))?;
        let mut valid = false;
        for key in &self.keys {
            valid |= Self::tag(key, &body)?.verify_slice(&tag).is_ok();
        }
        if !valid {
            return Err(bad("is not one this server issued (it was altered or is too old)"));
        }
        let cursor: Cursor<P> = serde_json::from_slice(&body).map_err(|_| bad("is malformed"))?;
        if cursor.scope != *expected {
            return Err(bad(
                "belongs to another list, tenant, sort or set of filters: use it only with the query that returned it",
            ));
        }
        Ok(cursor.after)
    }
}

/// What a cursor continues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorScope {
    #[serde(rename = "t")]
    pub tenant: uuid::Uuid,
    /// The list (`tests`, `bugs`, `products`).
    #[serde(rename = "l")]
    pub list: String,
    /// The `sort` parameter as given.
    #[serde(rename = "s")]
    pub sort: String,
    /// A fingerprint of the filters.
    #[serde(rename = "f")]
    pub filters: String,
}

impl CursorScope {
    /// The scope of `list` in `tenant` sorted by `sort` with `filters` (any serializable, canonical form).
    pub fn new(tenant: TenantId, list: &str, sort: &str, filters: &impl Serialize) -> Result<Self, ApiError> {
        let canonical = serde_json::to_vec(filters).map_err(|e| ApiError::internal(e.into()))?;
        let digest = Sha256::digest(&canonical);
        Ok(Self {
            tenant: tenant.0,
            list: list.to_owned(),
            sort: sort.to_owned(),
            filters: URL_SAFE_NO_PAD.encode(&digest[..12]),
        })
    }
}

/// A position in a list, as sealed into `next_cursor`: a mirror list's [`Keyset`], or an audit log's position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor<P = Keyset> {
    #[serde(flatten)]
    pub scope: CursorScope,
    #[serde(rename = "a")]
    pub after: P,
}

/// The paging parameters of a request, checked: either a keyset window (`limit`, `cursor`) or an offset one (`page`,
/// `per_page`).
pub struct Paging {
    pub limit: Option<u64>,
    pub cursor: Option<String>,
    pub page: Option<u64>,
    pub per_page: Option<u64>,
}

/// The window asked for, and whether it is an offset page.
pub struct Asked {
    pub window: Window,
    pub offset_page: Option<(u64, u64)>,
}

impl Paging {
    /// Checks the combination and the bounds, and opens the cursor against `scope`.
    pub fn window(self, keys: &CursorKeys, scope: &CursorScope) -> Result<Asked, ApiError> {
        let bad = |detail: String| ApiError::new(ErrorCode::InvalidQueryParameter, detail);
        let in_range = |name: &str, value: u64| {
            if (1..=MAX_LIMIT).contains(&value) {
                Ok(value)
            } else {
                Err(bad(format!("{name} must be between 1 and {MAX_LIMIT}.")))
            }
        };
        if self.page.is_some() || self.per_page.is_some() {
            if self.cursor.is_some() {
                return Err(bad("cursor cannot be combined with page/per_page: use one way of paging.".to_owned()));
            }
            if self.limit.is_some() {
                return Err(bad("limit cannot be combined with page/per_page: use per_page.".to_owned()));
            }
            let page = self.page.unwrap_or(1);
            if page == 0 {
                return Err(bad("page must be 1 or more.".to_owned()));
            }
            let per_page = in_range("per_page", self.per_page.unwrap_or(DEFAULT_LIMIT))?;
            let offset = (page - 1).checked_mul(per_page).filter(|o| o + per_page <= TOTAL_CAP).ok_or_else(|| {
                bad(format!(
                    "page: offset paging reaches the first {TOTAL_CAP} rows only; use limit and next_cursor to go \
                     further."
                ))
            })?;
            return Ok(Asked {
                window: Window::Offset { offset, limit: per_page },
                offset_page: Some((page, per_page)),
            });
        }
        let limit = in_range("limit", self.limit.unwrap_or(DEFAULT_LIMIT))?;
        let after = self.cursor.as_deref().map(|c| keys.open(c, scope)).transpose()?;
        Ok(Asked { window: Window::Keyset { after, limit }, offset_page: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use entity::mirror::query::SortValue;

    fn scope() -> CursorScope {
        CursorScope::new(TenantId(uuid::Uuid::nil()), "tests", "-end_at", &vec![1, 2]).unwrap()
    }

    #[test]
    fn a_sealed_cursor_opens_only_in_its_scope_and_unaltered() {
        let keys = CursorKeys::from_config(Some(&SecretString::from("k1:0123456789abcdef0123456789abcdef"))).unwrap();
        let after = Keyset { value: SortValue::Text("x".into()), id: 7 };
        let sealed = keys.seal(&Cursor { scope: scope(), after: after.clone() }).unwrap();
        assert_eq!(keys.open::<Keyset>(&sealed, &scope()).unwrap(), after);

        let other = CursorScope::new(TenantId(uuid::Uuid::nil()), "tests", "-end_at", &vec![1]).unwrap();
        assert!(keys.open::<Keyset>(&sealed, &other).is_err());
        let mut forged = sealed.clone().into_bytes();
        forged[3] = if forged[3] == b'A' { b'B' } else { b'A' };
        assert!(keys.open::<Keyset>(&String::from_utf8(forged).unwrap(), &scope()).is_err());
        let stranger = CursorKeys::from_config(None).unwrap();
        assert!(stranger.open::<Keyset>(&sealed, &scope()).is_err());
        assert!(keys.open::<Keyset>("garbage", &scope()).is_err());
    }
}
