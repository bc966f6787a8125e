//! `TESTIO_ALLOWED_BASE_URLS`: the base URLs a TestIO connection may point at. The API checks a base URL before it
//! sends a tenant's token there to verify it, and the worker checks the stored one again before every sync: the
//! server makes these requests with the tenant's token, so a lax match would let a tenant aim them at an internal
//! service or at a host of their choosing.
//!
//! An entry is a URL, not a string prefix: scheme, host and port must be equal (the port after filling in the scheme's
//! default), and the path must lie under the entry's path on a segment boundary. `https://api.test.io` therefore
//! admits `https://api.test.io/customer/v2/` but not `https://api.test.io.evil.com/`, and `http://127.0.0.1:8090`
//! admits no other port.

use std::fmt;
use std::str::FromStr;

use url::Url;

use crate::client::normalize_base_url;

/// The parsed allowlist; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedBaseUrls {
    entries: Vec<Url>,
}

impl AllowedBaseUrls {
    /// The entries, normalised as base URLs (ending in `/`).
    pub fn entries(&self) -> &[Url] {
        &self.entries
    }

    /// Whether `candidate`, a base URL as [`normalize_base_url`] makes it, lies under one of the entries.
    pub fn permits(&self, candidate: &Url) -> bool {
        // Stored base URLs never carry these; one that does is not what the entries describe.
        if !candidate.username().is_empty()
            || candidate.password().is_some()
            || candidate.query().is_some()
            || candidate.fragment().is_some()
        {
            return false;
        }
        self.entries.iter().any(|entry| {
            entry.scheme() == candidate.scheme()
                && entry.host() == candidate.host()
                && entry.port_or_known_default() == candidate.port_or_known_default()
                // Both paths end in `/` once normalised, so a prefix match stops at a segment boundary: `/customer/`
                // does not admit `/customer-evil/`.
                && candidate.path().starts_with(entry.path())
        })
    }
}

impl FromStr for AllowedBaseUrls {
    type Err = String;

    /// Parses the comma-separated setting; the error names the first entry that is not a usable base URL.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let mut entries = Vec::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            entries.push(parse_entry(entry).map_err(|e| format!("entry {entry:?} {e}"))?);
        }
        if entries.is_empty() {
            return Err("lists no base URL (expected comma-separated URLs such as https://api.test.io/)".to_owned());
        }
        Ok(Self { entries })
    }
}

fn parse_entry(entry: &str) -> Result<Url, String> {
    // The URL parser reads `http://127.0.0.1:` as port 80, but whoever wrote it meant "any port", which no entry
    // means: refuse it rather than guess. Likewise a `*` is no wildcard.
    let authority = entry.split_once("://").map_or("", |(_, rest)| rest);
    let authority = authority.split(['/', '?', '#', '\\']).next().unwrap_or_default();
    if authority.ends_with(':') {
        return Err("has an empty port (ports are matched exactly: name the port or leave out the colon)".to_owned());
    }
    if authority.contains('*') {
        return Err("contains a wildcard (hosts are matched exactly)".to_owned());
    }
    let url = normalize_base_url(entry)?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host".to_owned());
    }
    Ok(url)
}

impl fmt::Display for AllowedBaseUrls {
    /// The entries, comma-separated, for error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, entry) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(entry.as_str())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(raw: &str) -> AllowedBaseUrls {
        raw.parse().unwrap()
    }

    fn permits(list: &AllowedBaseUrls, candidate: &str) -> bool {
        list.permits(&Url::parse(candidate).unwrap())
    }

    #[test]
    fn the_default_admits_the_real_api() {
        let allowed = list("https://api.test.io/");
        assert!(permits(&allowed, crate::client::DEFAULT_BASE_URL));
        assert!(permits(&allowed, "https://api.test.io/"));
    }

    #[test]
    fn a_lookalike_host_is_refused_even_when_the_entry_has_no_trailing_slash() {
        for raw in ["https://api.test.io", "https://api.test.io/"] {
            let allowed = list(raw);
            assert!(permits(&allowed, "https://api.test.io/customer/v2/"), "{raw}");
            for evil in [
                "https://api.test.io.evil.com/",
                "https://api.test.io.evil.com/customer/v2/",
                "https://evil-api.test.io/",
                "https://test.io/",
                "https://api.test.io./",
            ] {
                assert!(!permits(&allowed, evil), "{raw} admitted {evil}");
            }
        }
    }

    #[test]
    fn another_port_is_refused() {
        let allowed = list("http://127.0.0.1:18299");
        assert!(permits(&allowed, "http://127.0.0.1:18299/customer/v2/"));
        for other in
            ["http://127.0.0.1:18298/", "http://127.0.0.1:1829/", "http://127.0.0.1/", "http://127.0.0.1:5432/"]
        {
            assert!(!permits(&allowed, other), "{other}");
        }
    }

    #[test]
    fn the_scheme_must_match() {
        let allowed = list("https://api.test.io/");
        assert!(!permits(&allowed, "http://api.test.io/"));
        assert!(!permits(&allowed, "http://api.test.io:443/"));
    }

    #[test]
    fn hosts_are_compared_as_written_not_resolved() {
        let allowed = list("http://127.0.0.1:8090/");
        assert!(!permits(&allowed, "http://localhost:8090/"));
        assert!(!permits(&allowed, "http://[::1]:8090/"));
        assert!(!permits(&allowed, "http://0.0.0.0:8090/"));
        assert!(!permits(&list("http://localhost:8090/"), "http://127.0.0.1:8090/"));
        let v6 = list("http://[::1]:8090");
        assert!(permits(&v6, "http://[::1]:8090/customer/v2/"));
        assert!(permits(&v6, "http://[0:0:0:0:0:0:0:1]:8090/"), "the same address, written longhand");
        assert!(!permits(&v6, "http://127.0.0.1:8090/"));
        assert!(!permits(&v6, "http://[::2]:8090/"));
    }

    #[test]
    fn userinfo_is_refused_and_cannot_disguise_the_host() {
        let allowed = list("https://api.test.io/");
        assert!(!permits(&allowed, "https://user:pw@api.test.io/"));
        assert!(!permits(&allowed, "https://user@api.test.io/"));
        assert!(!permits(&allowed, "https://api.test.io@evil.com/"));
        assert!(!permits(&allowed, "https://api.test.io/?x=1"));
        assert!(!permits(&allowed, "https://api.test.io/#x"));
    }

    #[test]
    fn paths_match_on_segment_boundaries() {
        for raw in ["https://x/customer", "https://x/customer/"] {
            let allowed = list(raw);
            assert!(permits(&allowed, "https://x/customer/"), "{raw}");
            assert!(permits(&allowed, "https://x/customer/v2/"), "{raw}");
            assert!(!permits(&allowed, "https://x/customer-evil/"), "{raw}");
            assert!(!permits(&allowed, "https://x/customerx/"), "{raw}");
            assert!(!permits(&allowed, "https://x/"), "{raw}: the parent");
            assert!(!permits(&allowed, "https://x/other/customer/"), "{raw}");
            assert!(!permits(&allowed, "https://x/customer/../admin/"), "{raw}: dot segments are resolved first");
        }
    }

    #[test]
    fn default_ports_equal_explicit_ones() {
        assert!(permits(&list("https://x/"), "https://x:443/"));
        assert!(permits(&list("https://x:443"), "https://x/"));
        assert!(permits(&list("http://x"), "http://x:80/"));
        assert!(!permits(&list("https://x/"), "https://x:8443/"));
        assert!(!permits(&list("http://x/"), "http://x:443/"));
    }

    #[test]
    fn host_case_does_not_matter_path_case_does() {
        let allowed = list("HTTPS://API.Test.IO/Customer");
        assert!(permits(&allowed, "https://api.test.io/Customer/v2/"));
        assert!(permits(&allowed, "https://API.TEST.IO/Customer/"));
        assert!(!permits(&allowed, "https://api.test.io/customer/"));
    }

    #[test]
    fn any_entry_may_match() {
        let allowed = list(" https://api.test.io/ , http://127.0.0.1:8090 ,");
        assert_eq!(allowed.entries().len(), 2);
        assert!(permits(&allowed, "https://api.test.io/customer/v2/"));
        assert!(permits(&allowed, "http://127.0.0.1:8090/customer/v2/"));
        assert!(!permits(&allowed, "http://127.0.0.1:8091/customer/v2/"));
        assert_eq!(allowed.to_string(), "https://api.test.io/, http://127.0.0.1:8090/");
    }

    #[test]
    fn unparsable_entries_and_empty_lists_are_refused_naming_the_entry() {
        for bad in [
            "http://127.0.0.1:",
            "https://api.test.io/,http://127.0.0.1:",
            "http://127.0.0.1:/customer/",
            "https://*.test.io/",
            "api.test.io",
            "ftp://api.test.io/",
            "https://user:pw@api.test.io/",
            "https://api.test.io/?x=1",
            "https://api.test.io/#top",
            "http://127.0.0.1:99999/",
            "not a url",
        ] {
            let err = bad.parse::<AllowedBaseUrls>().unwrap_err();
            let entry = bad.rsplit(',').next().unwrap();
            assert!(err.contains(&format!("{entry:?}")), "{bad}: {err}");
        }
        for empty in ["", " ", ",", " , "] {
            assert!(empty.parse::<AllowedBaseUrls>().unwrap_err().contains("no base URL"), "{empty:?}");
        }
    }
}
