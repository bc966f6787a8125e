//! Access tokens: short-lived HS256 JWTs with `iss`, `aud`, `sub` (user), `sid` (session), `jti`, `iat`, `nbf`, `exp`,
//! and a `kid` header naming the key that signed them.
//!
//! Rotation: `JWT_KEYS` lists `kid:secret` pairs; the first signs, all verify. Add a new key first in the list, deploy,
//! and drop the old one once the longest access-token lifetime has passed. Verification pins HS256, so `alg: none`
//! and every other algorithm are refused, and requires every claim above.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, bail};
use common::keyring::{self, Entry};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The user id.
    pub sub: Uuid,
    /// The session id; the session must still be open for the token to be accepted.
    pub sid: Uuid,
    pub jti: Uuid,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
}

/// Why a token was refused; the detail is safe to show to the client.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("The access token has expired.")]
    Expired,
    #[error("The access token is not valid yet.")]
    NotYetValid,
    #[error("The access token is signed with an unknown key.")]
    UnknownKey,
    #[error("The access token is invalid.")]
    Invalid,
}

pub struct JwtKeys {
    signing_kid: String,
    signing: EncodingKey,
    verifying: HashMap<String, DecodingKey>,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl: Duration,
}

/// The smallest secret accepted: HS256 keys shorter than the hash output weaken it.
const MIN_SECRET_BYTES: usize = 32;

impl JwtKeys {
    /// Parses `kid:secret,kid:secret`; with no keys configured, makes one random key for this process only.
    pub fn from_config(
        keys: Option<&SecretString>,
        issuer: &str,
        audience: &str,
        ttl: Duration,
    ) -> anyhow::Result<Self> {
        let mut pairs: Vec<(String, Vec<u8>)> = Vec::new();
        match keys {
            Some(keys) => {
                for Entry { kid, secret } in keyring::parse(keys).map_err(|e| anyhow::anyhow!("JWT_KEYS: {e}"))? {
                    if secret.len() < MIN_SECRET_BYTES {
                        bail!("each JWT_KEYS entry needs a secret of at least {MIN_SECRET_BYTES} bytes");
                    }
                    pairs.push((kid.to_owned(), secret.as_bytes().to_vec()));
                }
            }
            None => {
                tracing::warn!(
                    "JWT_KEYS is not set: signing with a random key that lives only as long as this process \
                     (tokens will not survive a restart nor work across instances)"
                );
                pairs.push(("ephemeral".to_owned(), super::secrets::random_secret().into_bytes()));
            }
        }
        let Some((signing_kid, signing_secret)) = pairs.first().cloned() else {
            bail!("JWT_KEYS is empty");
        };
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 5;
        Ok(Self {
            signing_kid,
            signing: EncodingKey::from_secret(&signing_secret),
            verifying: pairs.into_iter().map(|(kid, s)| (kid, DecodingKey::from_secret(&s))).collect(),
            validation,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            ttl,
        })
    }

    /// Lifetime of issued tokens.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Signs an access token for `user` in `session`.
    pub fn issue(&self, user: Uuid, session: Uuid) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user,
            sid: session,
            jti: Uuid::new_v4(),
            iat: now,
            nbf: now,
            exp: now + self.ttl.as_secs() as i64,
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.signing_kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.signing).context("Failed to sign an access token")
    }

    /// Verifies signature, algorithm, key id and every claim.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != Algorithm::HS256 {
            return Err(TokenError::Invalid);
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let key = self.verifying.get(&kid).ok_or(TokenError::UnknownKey)?;
        jsonwebtoken::decode::<Claims>(token, key, &self.validation).map(|data| data.claims).map_err(|e| {
            match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                _ => TokenError::Invalid,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    const A: &str = "a-signing-secret-that-is-long-enough-0001";
    const B: &str = "b-signing-secret-that-is-long-enough-0002";

    fn keys(config: &str) -> JwtKeys {
        JwtKeys::from_config(Some(&SecretString::from(config)), "iss", "aud", Duration::from_secs(60)).unwrap()
    }

    fn forge(header: serde_json::Value, claims: serde_json::Value, secret: &[u8]) -> String {
        let h = URL_SAFE_NO_PAD.encode(header.to_string());
        let c = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing_input = format!("{h}.{c}");
        let sig =
            jsonwebtoken::crypto::sign(signing_input.as_bytes(), &EncodingKey::from_secret(secret), Algorithm::HS256)
                .unwrap();
        format!("{signing_input}.{sig}")
    }

    fn claims(exp_offset: i64, nbf_offset: i64) -> serde_json::Value {
        let now = chrono::Utc::now().timestamp();
        serde_json::json!({"iss": "iss", "aud": "aud", "sub": Uuid::nil(), "sid": Uuid::nil(), "jti": Uuid::nil(),
                           "iat": now, "nbf": now + nbf_offset, "exp": now + exp_offset})
    }

    #[test]
    fn an_issued_token_verifies_and_carries_its_claims() {
        let k = keys(&format!("k1:{A}"));
        let user = Uuid::new_v4();
        let token = k.issue(user, Uuid::nil()).unwrap();
        assert_eq!(jsonwebtoken::decode_header(&token).unwrap().kid.as_deref(), Some("k1"));
        assert_eq!(k.verify(&token).unwrap().sub, user);
    }

    #[test]
    fn rotation_keeps_old_tokens_valid_until_their_key_is_dropped() {
        let old = keys(&format!("k1:{A}")).issue(Uuid::nil(), Uuid::nil()).unwrap();
        assert!(keys(&format!("k2:{B},k1:{A}")).verify(&old).is_ok());
        assert_eq!(keys(&format!("k2:{B}")).verify(&old), Err(TokenError::UnknownKey));
    }

    #[test]
    fn alg_none_wrong_algorithm_wrong_key_and_tampering_are_refused() {
        let k = keys(&format!("k1:{A}"));
        let c = claims(60, 0);
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT","kid":"k1"}"#),
            URL_SAFE_NO_PAD.encode(c.to_string())
        );
        assert_eq!(k.verify(&none), Err(TokenError::Invalid));
        let hs512 = forge(serde_json::json!({"alg": "HS512", "kid": "k1"}), c.clone(), A.as_bytes());
        assert_eq!(k.verify(&hs512), Err(TokenError::Invalid));
        let wrong_key = forge(serde_json::json!({"alg": "HS256", "kid": "k1"}), c.clone(), B.as_bytes());
        assert_eq!(k.verify(&wrong_key), Err(TokenError::Invalid));
        let no_kid = forge(serde_json::json!({"alg": "HS256"}), c.clone(), A.as_bytes());
        assert_eq!(k.verify(&no_kid), Err(TokenError::UnknownKey));
        let good = forge(serde_json::json!({"alg": "HS256", "kid": "k1"}), c, A.as_bytes());
        assert!(k.verify(&good).is_ok());
        let mut tampered = good.clone();
        tampered.insert(good.len() / 2, 'x');
        assert_eq!(k.verify(&tampered), Err(TokenError::Invalid));
    }

    #[test]
    fn expiry_not_before_issuer_and_audience_are_enforced() {
        let k = keys(&format!("k1:{A}"));
        let h = serde_json::json!({"alg": "HS256", "kid": "k1"});
        assert_eq!(k.verify(&forge(h.clone(), claims(-60, -120), A.as_bytes())), Err(TokenError::Expired));
        assert_eq!(k.verify(&forge(h.clone(), claims(600, 300), A.as_bytes())), Err(TokenError::NotYetValid));
        let mut wrong_iss = claims(60, 0);
        wrong_iss["iss"] = "other".into();
        assert_eq!(k.verify(&forge(h.clone(), wrong_iss, A.as_bytes())), Err(TokenError::Invalid));
        let mut wrong_aud = claims(60, 0);
        wrong_aud["aud"] = "other".into();
        assert_eq!(k.verify(&forge(h.clone(), wrong_aud, A.as_bytes())), Err(TokenError::Invalid));
        let mut no_exp = claims(60, 0);
        no_exp.as_object_mut().unwrap().remove("exp");
        assert_eq!(k.verify(&forge(h, no_exp, A.as_bytes())), Err(TokenError::Invalid));
    }

    #[test]
    fn short_duplicate_or_malformed_key_configs_are_refused() {
        let bad =
            |c: &str| JwtKeys::from_config(Some(&SecretString::from(c)), "i", "a", Duration::from_secs(1)).is_err();
        assert!(bad("k1:short"));
        assert!(bad(&format!("k1:{A},k1:{B}")));
        assert!(bad(A));
        assert!(bad(""));
    }
}
