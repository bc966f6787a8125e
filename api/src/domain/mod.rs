//! Input types that can only hold valid values ("parse, don't validate"): request bodies are turned into these before
//! any database work, and each failure names its field.

use crate::error::FieldError;

/// Builds a [`FieldError`].
pub fn invalid(field: &str, message: impl Into<String>) -> FieldError {
    FieldError { field: field.to_owned(), message: message.into() }
}

/// Whether `c` is invisible or changes how the text around it is shown: control characters, format characters (such
/// as the right-to-left override U+202E, the zero-width space U+200B and the tag characters U+E0020-U+E007F that can
/// smuggle hidden text), and line and paragraph separators. Names and emails shown to other people must not hide what
/// they say.
fn is_deceptive(c: char) -> bool {
    use unicode_properties::{GeneralCategory as G, UnicodeGeneralCategory};
    matches!(c.general_category(), G::Control | G::Format | G::LineSeparator | G::ParagraphSeparator)
}

/// The JSON Schema `pattern` of a display name, built from the very rules [`parse_name`] applies, so that the document
/// and the server agree on every string: any blanks the server trims (Unicode White_Space), then a text that starts
/// and ends with a character that is neither blank nor [deceptive](is_deceptive) and holds no deceptive character.
/// Characters beyond the Basic Multilingual Plane are written `\\UXXXXXXXX`, as Python and Rust regular expressions
/// read them.
pub fn display_name_pattern() -> &'static str {
    static PATTERN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| {
        let blank = char_class(char::is_whitespace);
        let deceptive = char_class(is_deceptive);
        let edge = format!("[^{blank}{deceptive}]");
        format!("^[{blank}]*{edge}(?:[^{deceptive}]*{edge})?[{blank}]*$")
    })
}

/// The characters for which `member` holds, as the inside of a regular-expression character class.
fn char_class(member: impl Fn(char) -> bool) -> String {
    let mut runs: Vec<(char, char)> = Vec::new();
    for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32).filter(|c| member(*c)) {
        match runs.last_mut() {
            Some((_, end)) if u32::from(*end) + 1 == u32::from(c) => *end = c,
            _ => runs.push((c, c)),
        }
    }
    let escape = |c: char| match u32::from(c) {
        code @ 0..=0xFFFF => format!("\\u{code:04X}"),
        code => format!("\\U{code:08X}"),
    };
    runs.into_iter()
        .map(|(start, end)| if start == end { escape(start) } else { format!("{}-{}", escape(start), escape(end)) })
        .collect()
}

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

/// A display name (of a person, tenant or API key): at most `max` characters, trimmed, not empty, no control, format or
/// other invisible characters.
pub fn parse_name(field: &str, raw: &str, max: usize) -> Result<String, FieldError> {
    let s = raw.trim();
    if s.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    // Counted before trimming, as the document's `maxLength` counts.
    if raw.chars().count() > max {
        return Err(invalid(field, format!("must be at most {max} characters")));
    }
    if s.chars().any(is_deceptive) {
        return Err(invalid(
            field,
            "must not contain control, format (such as direction overrides) or invisible characters",
        ));
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

    #[test]
    fn the_display_name_pattern_accepts_exactly_what_parse_name_accepts() {
        use rand::{RngExt, SeedableRng};
        let pattern = regex::Regex::new(display_name_pattern()).unwrap();
        // Characters from every class that matters: plain, blanks the server trims, deceptive ones, and astral ones.
        let alphabet = [
            'a',
            'Z',
            '7',
            '-',
            '.',
            'é',
            '山',
            '😀',
            ' ',
            '\u{a0}',
            '\u{3000}',
            '\u{2003}',
            '\t',
            '\n',
            '\u{0}',
            '\u{85}',
            '\u{ad}',
            '\u{200b}',
            '\u{202e}',
            '\u{2028}',
            '\u{2066}',
            '\u{feff}',
            '\u{e0041}',
            '\u{1d173}',
            '\u{e000}',
        ];
        let seed: u64 = rand::rng().random();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for _ in 0..20_000 {
            let len = rng.random_range(0..6);
            let name: String = (0..len).map(|_| alphabet[rng.random_range(0..alphabet.len())]).collect();
            let accepted = parse_name("name", &name, 200).is_ok();
            assert_eq!(pattern.is_match(&name), accepted, "seed {seed}: {name:?}");
        }
    }

    #[test]
    fn invisible_and_direction_changing_characters_are_refused() {
        for bad in ["a\u{200b}lice@example.com", "alice@exa\u{202e}mple.com", "\u{feff}alice@example.com"] {
            assert!(Email::parse("email", bad).is_err(), "{bad:?} accepted");
        }
        for bad in ["Admin\u{202e}gnp.exe", "zero\u{200b}width", "line\u{2028}break", "tag\u{e0041}smuggled"] {
            assert!(parse_name("name", bad, 100).is_err(), "{bad:?} accepted");
        }
        assert_eq!(parse_name("name", "Zoë Łukasz 山田", 100).unwrap(), "Zoë Łukasz 山田");
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
        assert!(parse_name("name", " abcdefghij", 10).is_err(), "the length is counted before trimming, as maxLength");
        assert!(parse_name("name", "a\u{0}b", 10).is_err());
    }
}
