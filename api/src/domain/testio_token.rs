//! [`TestioToken`]: a TestIO Customer API token as a tenant saves it.

use secrecy::SecretString;

use super::invalid;
use crate::error::FieldError;

/// The token as TestIO issues it: printable ASCII without spaces, 8 to 512 characters. Held as a secret from the
/// moment it is parsed.
pub struct TestioToken(SecretString);

impl TestioToken {
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let token = raw.trim();
        if token.len() < 8 || token.len() > 512 {
            return Err(invalid(field, "must be 8 to 512 characters"));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(field, "must be printable ASCII without spaces"));
        }
        Ok(Self(SecretString::from(token)))
    }

    pub fn into_secret(self) -> SecretString {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn tokens_are_trimmed_printable_ascii_of_a_sane_length() {
        let token = TestioToken::parse("token", "  0123456789abcdef ").unwrap().into_secret();
        assert_eq!(token.expose_secret(), "0123456789abcdef");
        for bad in ["short", "with space inside", "ünïcode-token", &"x".repeat(513)] {
            assert!(TestioToken::parse("token", bad).is_err(), "{bad:?} accepted");
        }
    }
}
