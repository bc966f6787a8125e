//! [`TenantSlug`]: the URL-safe name of a tenant.

use super::invalid;
use crate::error::FieldError;

/// A tenant slug: 1-63 characters of `a-z`, `0-9` and inner `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSlug(String);

impl TenantSlug {
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let s = raw.trim();
        let ok = (1..=63).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(invalid(field, "must be 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_lowercase_words_with_inner_dashes() {
        assert!(TenantSlug::parse("slug", "acme-qa-2").is_ok());
        for bad in ["", "-acme", "acme-", "Acme", "ac me", "acmé", &"a".repeat(64)] {
            assert!(TenantSlug::parse("slug", bad).is_err(), "{bad:?} accepted");
        }
    }
}
