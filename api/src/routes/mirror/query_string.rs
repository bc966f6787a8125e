//! The query string of the list endpoints, read strictly: an unknown parameter, a repeated single-valued one, an
//! unparsable value or an out-of-range one is a 400 whose detail names the parameter. Multi-valued filters take
//! repeated keys (`?status=running&status=locked`, what generated clients send) and comma-separated values
//! (`?status=running,locked`), or both.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use entity::mirror::query::{Direction, TimeRange};

use crate::error::{ApiError, ErrorCode};
use crate::pagination::Paging;

/// Longest `q`, in characters.
pub const MAX_Q_CHARS: usize = 200;
/// Most values one multi-valued filter takes.
pub const MAX_VALUES: usize = 100;

fn bad(detail: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidQueryParameter, detail)
}

/// The decoded `name=value` pairs of a request's query string.
pub struct QueryString {
    pairs: Vec<(String, String)>,
}

impl QueryString {
    /// Decodes `raw`, refusing any parameter not in `known` and any non-UTF-8.
    pub fn parse(raw: &str, known: &[&str]) -> Result<Self, ApiError> {
        let mut pairs = Vec::new();
        for (name, value) in url::form_urlencoded::parse(raw.as_bytes()) {
            if !known.contains(&name.as_ref()) {
                let name: String = name.chars().take(50).collect();
                return Err(bad(format!("{name} is not a parameter of this endpoint (known: {}).", known.join(", "))));
            }
            pairs.push((name.into_owned(), value.into_owned()));
        }
        Ok(Self { pairs })
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs.iter().filter(move |(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// A single-valued parameter.
    pub fn one<'a>(&'a self, name: &'a str) -> Result<Option<&'a str>, ApiError> {
        let mut values = self.all(name);
        let first = values.next();
        if values.next().is_some() {
            return Err(bad(format!("{name} may be given only once.")));
        }
        Ok(first)
    }

    /// The values of a multi-valued parameter, split at commas, without empty ones and duplicates, sorted.
    fn many<'a>(&'a self, name: &'a str) -> Result<Vec<&'a str>, ApiError> {
        let mut out = BTreeSet::new();
        for value in self.all(name) {
            if value.trim().is_empty() {
                return Err(bad(format!("{name} must not be empty.")));
            }
            out.extend(value.split(',').map(str::trim).filter(|v| !v.is_empty()));
        }
        if out.len() > MAX_VALUES {
            return Err(bad(format!("{name} takes at most {MAX_VALUES} values.")));
        }
        Ok(out.into_iter().collect())
    }

    pub fn u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.one(name)?
            .map(|v| v.parse::<u64>().map_err(|_| bad(format!("{name} must be a whole number, not {:?}.", clip(v)))))
            .transpose()
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        self.one(name)?
            .map(|v| match v {
                "true" => Ok(true),
                "false" => Ok(false),
                other => Err(bad(format!("{name} must be true or false, not {:?}.", clip(other)))),
            })
            .transpose()
    }

    /// TestIO ids: positive integers.
    pub fn ids(&self, name: &str) -> Result<Vec<i64>, ApiError> {
        let mut ids: Vec<i64> = self
            .many(name)?
            .into_iter()
            .map(|v| {
                v.parse::<i64>()
                    .ok()
                    .filter(|id| *id > 0)
                    .ok_or_else(|| bad(format!("{name} must be positive whole numbers, not {:?}.", clip(v))))
            })
            .collect::<Result<_, _>>()?;
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// UUIDs, sorted, without duplicates.
    pub fn uuids(&self, name: &str) -> Result<Vec<uuid::Uuid>, ApiError> {
        let mut ids: Vec<uuid::Uuid> = self
            .many(name)?
            .into_iter()
            .map(|v| uuid::Uuid::parse_str(v).map_err(|_| bad(format!("{name} must be UUIDs, not {:?}.", clip(v)))))
            .collect::<Result<_, _>>()?;
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// Words of a vocabulary.
    pub fn words<S: AsRef<str>>(&self, name: &str, allowed: &[S]) -> Result<Vec<String>, ApiError> {
        self.many(name)?
            .into_iter()
            .map(|v| {
                allowed.iter().map(AsRef::as_ref).find(|a| *a == v).map(str::to_owned).ok_or_else(|| {
                    let allowed: Vec<&str> = allowed.iter().map(AsRef::as_ref).collect();
                    bad(format!("{name} must be one of {}, not {:?}.", allowed.join(", "), clip(v)))
                })
            })
            .collect()
    }

    pub fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.one(name)?
            .map(|v| {
                DateTime::parse_from_rfc3339(v).map(|t| t.with_timezone(&Utc)).map_err(|_| {
                    bad(format!(
                        "{name} must be an RFC 3339 date-time such as 2026-01-31T12:00:00Z, not {:?}.",
                        clip(v)
                    ))
                })
            })
            .transpose()
    }

    /// An inclusive range from two parameters; `from` after `to` is refused.
    pub fn range(&self, from: &str, to: &str) -> Result<TimeRange, ApiError> {
        let range = TimeRange { from: self.time(from)?, to: self.time(to)? };
        if let (Some(f), Some(t)) = (range.from, range.to)
            && f > t
        {
            return Err(bad(format!("{from} must not be after {to}.")));
        }
        Ok(range)
    }

    /// `q`: trimmed, 1 to [`MAX_Q_CHARS`] characters.
    pub fn q(&self) -> Result<Option<String>, ApiError> {
        let Some(q) = self.one("q")? else { return Ok(None) };
        let chars = q.chars().count();
        if chars > MAX_Q_CHARS {
            return Err(bad(format!("q must be 1 to {MAX_Q_CHARS} characters (it has {chars}).")));
        }
        let q = q.trim();
        if q.is_empty() {
            return Err(bad("q must not be blank.".to_owned()));
        }
        if q.chars().any(char::is_control) {
            return Err(bad("q must not contain control characters.".to_owned()));
        }
        Ok(Some(q.to_owned()))
    }

    /// `include`: only `raw` is known.
    pub fn include_raw(&self) -> Result<bool, ApiError> {
        match self.one("include")? {
            None => Ok(false),
            Some("raw") => Ok(true),
            Some(other) => Err(bad(format!("include must be raw, not {:?}.", clip(other)))),
        }
    }

    /// `sort`: one of `keys` (ascending) or `-key` (descending); `default` when absent. Returns the parameter as
    /// given (for the cursor), the key and the direction.
    pub fn sort<S: Copy>(&self, keys: &[(&str, S)], default: &str) -> Result<(String, S, Direction), ApiError> {
        let given = self.one("sort")?.unwrap_or(default);
        let (name, direction) = match given.strip_prefix('-') {
            Some(name) => (name, Direction::Desc),
            None => (given, Direction::Asc),
        };
        let key = keys.iter().find(|(k, _)| *k == name).map(|(_, s)| *s).ok_or_else(|| {
            let options: Vec<String> = keys.iter().flat_map(|(k, _)| [k.to_string(), format!("-{k}")]).collect();
            bad(format!("sort must be one of {}, not {:?}.", options.join(", "), clip(given)))
        })?;
        Ok((given.to_owned(), key, direction))
    }

    /// The paging parameters.
    pub fn paging(&self) -> Result<Paging, ApiError> {
        Ok(Paging {
            limit: self.u64("limit")?,
            cursor: self.one("cursor")?.map(str::to_owned),
            page: self.u64("page")?,
            per_page: self.u64("per_page")?,
        })
    }
}

/// At most 40 characters of a value quoted back in an error.
fn clip(value: &str) -> String {
    value.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[&str] = &["status", "limit", "q", "from", "to", "sort"];

    #[test]
    fn multi_values_combine_repeats_and_commas() {
        let q = QueryString::parse("status=b,a&status=c&status=a", KNOWN).unwrap();
        assert_eq!(q.words("status", &["a", "b", "c"]).unwrap(), ["a", "b", "c"]);
        assert!(q.words("status", &["a", "b"]).is_err());
    }

    #[test]
    fn unknown_repeated_and_bad_values_name_the_parameter() {
        let detail = |r: Result<(), ApiError>| format!("{:?}", r.unwrap_err());
        assert!(detail(QueryString::parse("nope=1", KNOWN).map(|_| ())).contains("nope"));
        let q = QueryString::parse("limit=1&limit=2&q=%20&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", KNOWN)
            .unwrap();
        assert!(detail(q.u64("limit").map(|_| ())).contains("limit"));
        assert!(detail(q.q().map(|_| ())).contains("q must not be blank"));
        assert!(detail(q.range("from", "to").map(|_| ())).contains("from must not be after to"));
    }

    #[test]
    fn sort_takes_a_minus_for_descending() {
        let keys = [("end_at", 1), ("title", 2)];
        let q = QueryString::parse("sort=-title", KNOWN).unwrap();
        assert_eq!(q.sort(&keys, "-end_at").unwrap(), ("-title".to_owned(), 2, Direction::Desc));
        let q = QueryString::parse("", KNOWN).unwrap();
        assert_eq!(q.sort(&keys, "-end_at").unwrap().1, 1);
        assert!(QueryString::parse("sort=size", KNOWN).unwrap().sort(&keys, "title").is_err());
    }
}
