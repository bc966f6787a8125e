//! TestIO's vocabulary as the query API shows it. The words come from `testio::model` (one list per enumeration,
//! shared with the sync and the simulator); the OpenAPI schemas are built from the same lists, so a word added there
//! appears in the filters, the views and the spec at once.
//!
//! The mirror keeps whatever word TestIO sent. A view shows a known word as itself and an unknown one as `other`,
//! with the word in a sibling `*_raw` field, so a new TestIO status never breaks a generated client nor the server.

use testio::model::{BugSeverity, BugStatus, TestStatus, TestingType};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
use utoipa::openapi::{Array, Object};

/// The word a view shows for an unknown value.
pub const OTHER: &str = "other";
/// The pseudo-status that selects auto-accepted bugs in the `status` filter of bugs.
pub const AUTO_ACCEPTED: &str = "auto_accepted";

pub fn test_statuses() -> Vec<&'static str> {
    TestStatus::ALL.iter().map(|v| v.as_str()).collect()
}

pub fn testing_types() -> Vec<&'static str> {
    TestingType::ALL.iter().map(|v| v.as_str()).collect()
}

pub fn bug_severities() -> Vec<&'static str> {
    BugSeverity::ALL.iter().map(|v| v.as_str()).collect()
}

pub fn bug_statuses() -> Vec<&'static str> {
    BugStatus::ALL.iter().map(|v| v.as_str()).collect()
}

/// The `status` filter of bugs: the statuses and `auto_accepted`.
pub fn bug_status_filters() -> Vec<&'static str> {
    let mut words = bug_statuses();
    words.push(AUTO_ACCEPTED);
    words
}

/// `word` as a view shows it: itself if known, else `other` plus the word.
pub fn shown(word: &str, known: &[&str]) -> (String, Option<String>) {
    if known.contains(&word) { (word.to_owned(), None) } else { (OTHER.to_owned(), Some(word.to_owned())) }
}

/// [`shown`] for an optional word.
pub fn shown_opt(word: Option<&str>, known: &[&str]) -> (Option<String>, Option<String>) {
    match word {
        Some(w) => {
            let (w, raw) = shown(w, known);
            (Some(w), raw)
        }
        None => (None, None),
    }
}

fn word_schema(words: Vec<&'static str>, nullable: bool, with_other: bool) -> Object {
    let mut values: Vec<serde_json::Value> = words.into_iter().map(Into::into).collect();
    if with_other {
        values.push(OTHER.into());
    }
    let schema_type = if nullable {
        values.push(serde_json::Value::Null);
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::Type(Type::String)
    };
    ObjectBuilder::new().schema_type(schema_type).enum_values(Some(values)).build()
}

fn filter_schema(words: Vec<&'static str>) -> Array {
    ArrayBuilder::new().items(word_schema(words, false, false)).build()
}

// Schemas of view fields (`#[schema(schema_with = ..)]`).
pub fn test_status_schema() -> Object {
    word_schema(test_statuses(), false, true)
}
pub fn testing_type_schema() -> Object {
    word_schema(testing_types(), true, true)
}
pub fn bug_severity_schema() -> Object {
    word_schema(bug_severities(), true, true)
}
pub fn bug_status_schema() -> Object {
    word_schema(bug_statuses(), true, true)
}

// Schemas of filter parameters (`#[param(schema_with = ..)]`).
pub fn test_status_filter() -> Array {
    filter_schema(test_statuses())
}
pub fn testing_type_filter() -> Array {
    filter_schema(testing_types())
}
pub fn bug_severity_filter() -> Array {
    filter_schema(bug_severities())
}
pub fn bug_status_filter() -> Array {
    filter_schema(bug_status_filters())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_words_are_other_with_the_word() {
        assert_eq!(shown("running", &test_statuses()), ("running".to_owned(), None));
        assert_eq!(shown("paused", &test_statuses()), ("other".to_owned(), Some("paused".to_owned())));
        assert_eq!(shown_opt(None, &bug_statuses()), (None, None));
    }
}
