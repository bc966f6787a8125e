//! Input types that can only hold valid values ("parse, don't validate"): request bodies are turned into these before
//! any database work, and each failure names its field.

use crate::error::FieldError;

/// Builds a [`FieldError`].
pub fn invalid(field: &str, message: impl Into<String>) -> FieldError {
    FieldError { field: field.to_owned(), message: message.into() }
}

/// An email address: trimmed, 3-254 characters, one `@` with a non-empty local part and a dotted domain, no spaces.
/// Kept as typed; compared case-insensitively by the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let s = raw.trim();
        let ok = (3..=254).contains(&s.len())
            && !s.chars().any(|c| c.is_whitespace() || c.is_control())
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
        if ok { Ok(Self(s.to_owned())) } else { Err(invalid(field, "is not a valid email address")) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Case-insensitive comparison, as the database compares.
    pub fn matches(&self, other: &str) -> bool {
        self.0.to_lowercase() == other.trim().to_lowercase()
    }
}

/// A password: 8 to 1024 characters. (Hashing cost grows with length; the cap keeps a single login cheap.)
pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 8;
    pub const MAX_CHARS: usize = 1024;

    pub fn parse(field: &str, raw: String) -> Result<Self, FieldError> {
        let n = raw.chars().count();
        if n < Self::MIN_CHARS {
            return Err(invalid(field, format!("must be at least {} characters", Self::MIN_CHARS)));
        }
        if n > Self::MAX_CHARS {
            return Err(invalid(field, format!("must be at most {} characters", Self::MAX_CHARS)));
        }
        Ok(Self(raw))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

/// A display name (of a person, tenant or API key): trimmed, 1 to `max` characters, no control characters.
pub fn parse_name(field: &str, raw: &str, max: usize) -> Result<String, FieldError> {
    let s = raw.trim();
    if s.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if s.chars().count() > max {
        return Err(invalid(field, format!("must be at most {max} characters")));
    }
    if s.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(s.to_owned())
}

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

/// Collects the field errors of several parses: `Ok` only if every one succeeded.
pub fn all_valid<T>(results: Vec<Result<T, FieldError>>) -> Result<Vec<T>, Vec<FieldError>> {
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(v) => ok.push(v),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() { Ok(ok) } else { Err(errors) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_checked() {
        assert_eq!(Email::parse("email", "  Ann@Example.com ").unwrap().as_str(), "Ann@Example.com");
        for bad in ["", "a", "no-at.example.com", "a@b", "a@@b.com", "a b@c.com", "@b.com", "a@.com", "a@b..com"] {
            assert!(Email::parse("email", bad).is_err(), "{bad:?} accepted");
        }
        assert!(Email::parse("email", "Ann@Example.com").unwrap().matches("ann@example.COM"));
    }

    #[test]
    fn passwords_have_a_floor_and_a_ceiling() {
        assert!(Password::parse("password", "short".into()).is_err());
        assert!(Password::parse("password", "x".repeat(1025)).is_err());
        assert!(Password::parse("password", "correct horse".into()).is_ok());
        assert_eq!(format!("{:?}", Password::parse("p", "secret-secret".into()).unwrap()), "Password(..)");
    }

    #[test]
    fn slugs_are_lowercase_words_with_inner_dashes() {
        assert!(TenantSlug::parse("slug", "acme-qa-2").is_ok());
        for bad in ["", "-acme", "acme-", "Acme", "ac me", "acmé", &"a".repeat(64)] {
            assert!(TenantSlug::parse("slug", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(parse_name("name", "  Ann ", 10).unwrap(), "Ann");
        assert!(parse_name("name", "   ", 10).is_err());
        assert!(parse_name("name", "abcdefghijk", 10).is_err());
        assert!(parse_name("name", "a\u{0}b", 10).is_err());
    }
}
