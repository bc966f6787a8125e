//! Display names (of people, tenants and API keys), and the JSON Schema pattern that says the same in the document.

use super::{invalid, is_deceptive};
use crate::error::FieldError;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Email;

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
    fn names_are_trimmed_and_bounded() {
        assert_eq!(parse_name("name", "  Ann ", 10).unwrap(), "Ann");
        assert!(parse_name("name", "   ", 10).is_err());
        assert!(parse_name("name", "abcdefghijk", 10).is_err());
        assert!(parse_name("name", " abcdefghij", 10).is_err(), "the length is counted before trimming, as maxLength");
        assert!(parse_name("name", "a\u{0}b", 10).is_err());
    }
}
