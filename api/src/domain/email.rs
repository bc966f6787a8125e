//! [`Email`]: an account's address.

use super::{invalid, is_deceptive};
use crate::error::FieldError;

/// An email address: NFKC-normalised and trimmed, 3-254 characters, one `@` with a non-empty local part and a dotted
/// domain, no spaces and no invisible or direction-changing characters. The domain is lower-cased (it is
/// case-insensitive); the local part is kept as typed. Accounts are unique case-insensitively in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        use unicode_normalization::UnicodeNormalization;
        let normalized: String = raw.nfkc().collect();
        let s = normalized.trim();
        let ok = (3..=254).contains(&s.len())
            && !s.chars().any(|c| c.is_whitespace() || is_deceptive(c))
            && match s.split_once('@') {
                Some((local, domain)) => {
                    !local.is_empty()
                        && local.len() <= 64
                        && !domain.contains('@')
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                        && !domain.contains("..")
                }
                None => false,
            };
        match s.split_once('@') {
            Some((local, domain)) if ok => Ok(Self(format!("{local}@{}", domain.to_lowercase()))),
            _ => Err(invalid(field, "is not a valid email address")),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Case-insensitive comparison, as the database compares.
    pub fn matches(&self, other: &str) -> bool {
        self.0.to_lowercase() == other.trim().to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_checked() {
        assert_eq!(Email::parse("email", "  Ann@Example.com ").unwrap().as_str(), "Ann@example.com");
        for bad in ["", "a", "no-at.example.com", "a@b", "a@@b.com", "a b@c.com", "@b.com", "a@.com", "a@b..com"] {
            assert!(Email::parse("email", bad).is_err(), "{bad:?} accepted");
        }
        assert!(Email::parse("email", "Ann@Example.com").unwrap().matches("ann@example.COM"));
    }

    #[test]
    fn emails_are_nfkc_normalised_with_a_lower_cased_domain() {
        assert_eq!(Email::parse("email", "Ann@Example.COM").unwrap().as_str(), "Ann@example.com");
        // Fullwidth letters are compatibility forms of ASCII ones.
        assert_eq!(Email::parse("email", "\u{ff41}nn@\u{ff25}xample.com").unwrap().as_str(), "ann@example.com");
    }
}
