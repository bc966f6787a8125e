//! [`Password`]: a new or presented password, never printed.

use super::invalid;
use crate::error::FieldError;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_have_a_floor_and_a_ceiling() {
        assert!(Password::parse("password", "short".into()).is_err());
        assert!(Password::parse("password", "x".repeat(1025)).is_err());
        assert!(Password::parse("password", "correct horse".into()).is_ok());
        assert_eq!(format!("{:?}", Password::parse("p", "secret-secret".into()).unwrap()), "Password(..)");
    }
}
