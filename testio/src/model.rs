//! TestIO's items (products, tests, bugs) and its vocabulary (test statuses, testing types, bug severities and
//! statuses). Each item is parsed on its own, so one malformed item (missing field, wrong type, oversized) becomes an
//! [`Invalid`] with its id and reason (the sync records it as a gap) while the rest of the page is used. A word of the
//! vocabulary that we do not know (TestIO added a status) is not malformed: it is kept as sent, as a [`Word::Other`].
//! Credentials of test environments are removed from the JSON kept with a test.
//!
//! An item is read in two steps: its id first, straight from the JSON, so that even an item whose other fields are
//! broken can be named; then the fields, through a serde DTO per kind of item, with `serde_path_to_error` naming the
//! path of the field that failed (`product.id`, `steps[1]`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use strum::{EnumString, IntoStaticStr, VariantArray};

/// Largest item kept; anything bigger is refused rather than stored.
pub const MAX_ITEM_BYTES: usize = 256 * 1024;

/// Longest reason of an [`Invalid`]: a reason quotes the value it refuses, which may be huge.
const MAX_REASON_CHARS: usize = 300;

/// Declares one of TestIO's enumerations: the serde names (what TestIO sends) and the strum names (what is stored)
/// are the same snake_case words, listed once by the variants. Read from a JSON string only: serde's own enum
/// reading would also take `{"running": null}`.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize, IntoStaticStr, EnumString,
            VariantArray, strum::Display,
        )]
        #[serde(rename_all = "snake_case", try_from = "String")]
        #[strum(serialize_all = "snake_case")]
        pub enum $name {
            $($variant),+
        }

        impl TryFrom<String> for $name {
            type Error = String;

            fn try_from(word: String) -> Result<Self, String> {
                word.parse().map_err(|_| {
                    let known: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                    format!("unknown value {word:?}, expected one of {}", known.join(", "))
                })
            }
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = <Self as VariantArray>::VARIANTS;

            /// The word TestIO uses (and the mirror stores).
            pub fn as_str(self) -> &'static str {
                self.into()
            }
        }

        impl Vocabulary for $name {
            fn as_str(self) -> &'static str {
                self.into()
            }

            fn from_word(word: &str) -> Option<Self> {
                word.parse().ok()
            }
        }
    };
}

/// One of TestIO's enumerations (declared by `vocabulary!`): the words we know.
pub trait Vocabulary: Copy + 'static {
    /// The word TestIO uses (and the mirror stores).
    fn as_str(self) -> &'static str;

    /// The value named by `word`, `None` for a word we do not know.
    fn from_word(word: &str) -> Option<Self>;
}

/// Longest word of TestIO's vocabulary kept when we do not know it; a longer one is junk, not a status, and makes its
/// item [`Invalid`] rather than bloat the mirror.
pub const MAX_WORD_CHARS: usize = 100;

/// A word of one of TestIO's enumerations as sent: one we know, or one we do not (TestIO added a status since this
/// was written), kept as it is so that the item is still mirrored. Read from and written as a JSON string; anything
/// else (a number, an object) is refused, as is an unknown word over [`MAX_WORD_CHARS`].
///
/// Two words are equal when they are the same word, so `Other("running")` (which [`Word::new`] never makes) equals
/// `Known(Running)`.
#[derive(Debug, Clone)]
pub enum Word<T> {
    Known(T),
    Other(String),
}

impl<T: Vocabulary> Word<T> {
    /// The word as a [`Word`]: `Known` when it is one of `T`'s, else `Other`, whatever its length (for words already
    /// stored; reading TestIO's JSON checks the length).
    pub fn new(word: impl Into<String> + AsRef<str>) -> Self {
        match T::from_word(word.as_ref()) {
            Some(known) => Self::Known(known),
            None => Self::Other(word.into()),
        }
    }

    /// The word as TestIO sent it (and the mirror stores it).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Known(known) => known.as_str(),
            Self::Other(word) => word,
        }
    }

    /// The value, when the word is one we know.
    pub fn known(&self) -> Option<T> {
        match self {
            Self::Known(known) => Some(*known),
            Self::Other(word) => T::from_word(word),
        }
    }
}

impl Word<TestStatus> {
    /// Whether the test no longer changes: only a known final status is; a test with a status we do not know is
    /// still read again by the sync.
    pub fn is_final(&self) -> bool {
        self.known().is_some_and(TestStatus::is_final)
    }
}

impl<T: Vocabulary> From<T> for Word<T> {
    fn from(known: T) -> Self {
        Self::Known(known)
    }
}

impl<T: Vocabulary> TryFrom<String> for Word<T> {
    type Error = String;

    /// A word read from TestIO: any word up to [`MAX_WORD_CHARS`].
    fn try_from(word: String) -> Result<Self, String> {
        match Self::new(word) {
            Self::Other(other) if other.chars().count() > MAX_WORD_CHARS => {
                let quoted = truncate(other, MAX_WORD_CHARS);
                Err(format!("unknown value over {MAX_WORD_CHARS} characters: {quoted:?}"))
            }
            word => Ok(word),
        }
    }
}

impl<T: Vocabulary> PartialEq for Word<T> {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl<T: Vocabulary> Eq for Word<T> {}

impl<T: Vocabulary> PartialEq<T> for Word<T> {
    fn eq(&self, other: &T) -> bool {
        self.as_str() == other.as_str()
    }
}

impl<T: Vocabulary> std::hash::Hash for Word<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl<T: Vocabulary> std::fmt::Display for Word<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<T: Vocabulary> serde::Serialize for Word<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de, T: Vocabulary> Deserialize<'de> for Word<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::try_from(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

vocabulary! {
    /// Where a test stands; [`TestStatus::FINAL`] ones no longer change.
    TestStatus { Initialized, CustomerFinalized, Waiting, Running, Locked, Archived, Cancelled }
}

impl TestStatus {
    /// Statuses after which a test no longer changes.
    pub const FINAL: &'static [Self] = &[Self::Archived, Self::Cancelled];

    pub fn is_final(self) -> bool {
        Self::FINAL.contains(&self)
    }
}

vocabulary! {
    /// The kind of a test.
    TestingType { Coverage, Focused, Rapid, Usability, Custom, External }
}

vocabulary! {
    /// How bad a bug is, as its tester classified it.
    BugSeverity { Low, High, Critical, Visual, Content, Custom }
}

vocabulary! {
    /// Where a bug stands with the customer.
    BugStatus { Forwarded, Accepted, Rejected }
}

/// Why an item could not be used, with the id when it had a readable one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub id: Option<i64>,
    pub reason: String,
}

type Parsed<T> = Result<T, Invalid>;

/// A product. Its `type` is descriptive only: an unknown one is kept as sent rather than turning the product, and so
/// every test under it, into a gap.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    pub id: i64,
    pub name: String,
    pub product_type: Option<String>,
    /// The item as TestIO sent it.
    pub raw: Value,
}

/// A test (TestIO's "exploratory test").
#[derive(Debug, Clone, PartialEq)]
pub struct Test {
    pub id: i64,
    pub product_id: i64,
    pub title: String,
    /// Required; a status we do not know is kept as sent (and is not final).
    pub status: Word<TestStatus>,
    pub testing_type: Option<Word<TestingType>>,
    pub review_status: Option<String>,
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
    /// The item as TestIO sent it, without the credentials of its test environment.
    pub raw: Value,
}

/// A bug.
#[derive(Debug, Clone, PartialEq)]
pub struct Bug {
    pub id: i64,
    pub test_id: i64,
    pub title: String,
    pub severity: Option<Word<BugSeverity>>,
    pub status: Option<Word<BugStatus>>,
    pub known: Option<bool>,
    pub auto_accepted: Option<bool>,
    pub reported_at: Option<DateTime<Utc>>,
    /// The item as TestIO sent it.
    pub raw: Value,
}

/// The fields as TestIO sends them. `Option` fields accept both a missing key and `null`; required ones are checked
/// after parsing, so that a `null` reads as missing, as it means.
mod wire {
    use super::*;

    #[derive(Deserialize)]
    pub(super) struct Product {
        pub name: Option<String>,
        #[serde(rename = "type")]
        pub product_type: Option<String>,
    }

    #[derive(Deserialize)]
    pub(super) struct Test {
        pub product: Option<Ref>,
        pub title: Option<String>,
        /// Sent instead of `title` (which is then `null`) by some tests; read only when `title` is missing, so that
        /// it is type-checked only then (see [`super::test`]).
        pub test_title: Option<Value>,
        pub status: Option<Word<TestStatus>>,
        pub testing_type: Option<Word<TestingType>>,
        pub review_status: Option<String>,
        #[serde(default, deserialize_with = "rfc3339")]
        pub start_at: Option<DateTime<Utc>>,
        #[serde(default, deserialize_with = "rfc3339")]
        pub end_at: Option<DateTime<Utc>>,
        /// Not used apart from `raw`, but a test whose requirements are not a list is not what we understand.
        #[serde(default, rename = "requirements")]
        pub _requirements: Option<Vec<serde::de::IgnoredAny>>,
    }

    #[derive(Deserialize)]
    pub(super) struct Bug {
        pub test: Option<Ref>,
        pub title: Option<String>,
        pub severity: Option<Word<BugSeverity>>,
        pub status: Option<Word<BugStatus>>,
        pub known: Option<bool>,
        pub auto_accepted: Option<bool>,
        #[serde(default, deserialize_with = "rfc3339")]
        pub reported_at: Option<DateTime<Utc>>,
        /// Not used apart from `raw`: checked like `requirements`.
        #[serde(default, rename = "steps")]
        pub _steps: Option<Steps>,
    }

    /// A nested `{"id": ...}` such as a test's `product` or a bug's `test`. Read by hand because a derived struct
    /// would also take a list (`[3]`), which is not what TestIO sends.
    pub(super) struct Ref {
        pub id: Option<i64>,
    }

    impl<'de> Deserialize<'de> for Ref {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct Visitor;
            impl<'de> serde::de::Visitor<'de> for Visitor {
                type Value = Ref;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object with an id")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Ref, A::Error> {
                    let mut id = None;
                    while let Some(key) = map.next_key::<String>()? {
                        if key == "id" {
                            id = map.next_value()?;
                        } else {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                    Ok(Ref { id })
                }
            }
            deserializer.deserialize_map(Visitor)
        }
    }

    /// A bug's steps: observed both as one text and as a list of texts.
    pub(super) struct Steps;

    impl<'de> Deserialize<'de> for Steps {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct Visitor;
            impl<'de> serde::de::Visitor<'de> for Visitor {
                type Value = Steps;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("text or a list of text")
                }
                fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Steps, E> {
                    Ok(Steps)
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Steps, A::Error> {
                    while seq.next_element::<String>()?.is_some() {}
                    Ok(Steps)
                }
            }
            deserializer.deserialize_any(Visitor)
        }
    }

    /// An RFC 3339 date-time (with its offset), in UTC. chrono's own `Deserialize` is laxer (it takes a space for
    /// the `T`); what TestIO documents is RFC 3339.
    fn rfc3339<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        let Some(text) = Option::<String>::deserialize(deserializer)? else { return Ok(None) };
        DateTime::parse_from_rfc3339(&text).map(|t| Some(t.with_timezone(&Utc))).map_err(|_| {
            serde::de::Error::invalid_value(serde::de::Unexpected::Str(&text), &"an RFC 3339 (ISO-8601) date-time")
        })
    }
}

/// An item's id and fields, or why not. `what`: the kind of item, for reasons.
fn parse<'a, T: Deserialize<'a>>(value: &'a Value, what: &str) -> Parsed<(i64, T)> {
    let object = value.as_object().ok_or_else(|| invalid(None, format!("{what} is not an object")))?;
    let id = object
        .get("id")
        .and_then(Value::as_i64)
        .filter(|id| *id > 0)
        .ok_or_else(|| invalid(None, format!("{what} has no positive integer id")))?;
    let size = serde_json::to_vec(value).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > MAX_ITEM_BYTES {
        return Err(invalid(Some(id), format!("{what} is {size} bytes, over {MAX_ITEM_BYTES}")));
    }
    let fields = serde_path_to_error::deserialize(value)
        .map_err(|e| invalid(Some(id), format!("{}: {}", e.path(), e.inner())))?;
    Ok((id, fields))
}

fn invalid(id: Option<i64>, reason: String) -> Invalid {
    Invalid { id, reason: truncate(reason, MAX_REASON_CHARS) }
}

/// A required field, `null` counting as missing.
fn required<T>(id: i64, field: Option<T>, name: &str) -> Parsed<T> {
    field.ok_or_else(|| invalid(Some(id), format!("{name} is missing")))
}

/// At most `max` characters of `text`, marked with `…` when cut.
fn truncate(mut text: String, max: usize) -> String {
    if let Some((cut, _)) = text.char_indices().nth(max) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

pub fn product(value: &Value) -> Parsed<Product> {
    let (id, fields) = parse::<wire::Product>(value, "product")?;
    Ok(Product { id, name: required(id, fields.name, "name")?, product_type: fields.product_type, raw: value.clone() })
}

/// A test, listed under `listed_product` (or read alone when `None`: its `product.id` then decides).
pub fn test(value: &Value, listed_product: Option<i64>) -> Parsed<Test> {
    let (id, fields) = parse::<wire::Test>(value, "test")?;
    Ok(Test {
        id,
        product_id: required(id, listed_product.or(fields.product.and_then(|p| p.id)), "product.id")?,
        title: match fields.title {
            Some(title) => title,
            None => {
                let fallback = fields.test_title.map(serde_json::from_value::<Option<String>>).transpose();
                let fallback = fallback.map_err(|e| invalid(Some(id), format!("test_title: {e}")))?.flatten();
                required(id, fallback, "title or test_title")?
            }
        },
        status: required(id, fields.status, "status")?,
        testing_type: fields.testing_type,
        review_status: fields.review_status,
        start_at: fields.start_at,
        end_at: fields.end_at,
        raw: without_credentials(value),
    })
}

/// A bug; `test_id` comes from its `test.id`.
pub fn bug(value: &Value) -> Parsed<Bug> {
    let (id, fields) = parse::<wire::Bug>(value, "bug")?;
    Ok(Bug {
        id,
        test_id: required(id, fields.test.and_then(|t| t.id), "test.id")?,
        title: required(id, fields.title, "title")?,
        severity: fields.severity,
        status: fields.status,
        known: fields.known,
        auto_accepted: fields.auto_accepted,
        reported_at: fields.reported_at,
        raw: value.clone(),
    })
}

/// The test JSON without the login of its test environment: TestIO sends the environment's username and password to
/// customers; the mirror must neither store nor serve them.
pub fn without_credentials(test: &Value) -> Value {
    let mut test = test.clone();
    if let Some(env) = test.get_mut("test_environment") {
        strip(env);
    }
    test
}

fn strip(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|key, _| {
                let key = key.to_ascii_lowercase();
                !(key == "username" || key == "login" || key.contains("password") || key.contains("secret"))
            });
            for (key, inner) in map.iter_mut() {
                if let (true, Value::String(url)) = (key.to_ascii_lowercase().contains("url"), &mut *inner) {
                    *url = without_userinfo(url);
                }
                strip(inner);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip),
        _ => {}
    }
}

/// `https://user:pw@host/` → `https://host/`; anything that is not a URL with credentials is kept as it is.
fn without_userinfo(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) if !url.username().is_empty() || url.password().is_some() => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        _ => raw.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn a_test() -> Value {
        json!({"id": 7, "title": "Checkout", "status": "running", "testing_type": "rapid",
               "start_at": "2026-11-01T10:00:00+02:00", "end_at": "2026-11-02T10:00:00+02:00",
               "product": {"id": 3}, "requirements": [],
               "test_environment": {"id": 1, "url": "https://u:p@x/", "username": "u", "password": "p",
                                    "Access_Password": "q", "access": {"login": "l", "password": "p", "note": "n"}}})
    }

    #[test]
    fn a_test_is_stored_in_utc_without_environment_credentials() {
        let row = test(&a_test(), Some(3)).unwrap();
        assert_eq!((row.id, row.product_id, row.status), (7, 3, Word::Known(TestStatus::Running)));
        assert_eq!(row.testing_type, Some(Word::Known(TestingType::Rapid)));
        assert_eq!(row.end_at.unwrap().to_rfc3339(), "2026-11-02T08:00:00+00:00");
        let env = &row.raw["test_environment"];
        assert_eq!(env, &json!({"id": 1, "url": "https://x/", "access": {"note": "n"}}));
        assert!(!row.raw.to_string().contains("\"p\""));
    }

    #[test]
    fn each_kind_of_bad_item_gives_its_reason_and_id() {
        let cases = [
            (json!({"status": 3}), "status: invalid type: integer `3`, expected a string"),
            (json!({"status": {"running": null}}), "status: invalid type: map, expected a string"),
            (json!({"status": null}), "status is missing"),
            (json!({"end_at": "yesterday"}), "end_at: invalid value: string \"yesterday\", expected an RFC 3339"),
            (json!({"title": 5, "test_title": null}), "title: invalid type: integer `5`, expected a string"),
            (json!({"testing_type": ["rapid"]}), "testing_type: invalid type: sequence, expected a string"),
            (json!({"testing_type": "y".repeat(101)}), "testing_type: unknown value over 100 characters"),
            (json!({"requirements": "x"}), "requirements: invalid type: string \"x\", expected a sequence"),
            (json!({"filler": "x".repeat(MAX_ITEM_BYTES)}), "bytes, over"),
        ];
        for (patch, reason) in cases {
            let mut value = a_test();
            for (k, v) in patch.as_object().unwrap() {
                value[k] = v.clone();
            }
            let err = test(&value, Some(3)).unwrap_err();
            assert_eq!(err.id, Some(7));
            assert!(err.reason.contains(reason), "{reason}: {}", err.reason);
        }
        assert_eq!(test(&json!({"id": "7"}), None).unwrap_err().id, None);
        assert!(test(&json!([1]), None).is_err());
        assert!(test(&json!({"id": 7, "title": "t", "status": "running"}), None).is_err(), "no product");
    }

    #[test]
    fn observed_oddities_are_accepted() {
        let mut value = a_test();
        value["testing_type"] = Value::Null;
        value["test_title"] = json!(5);
        assert_eq!(test(&value, Some(3)).unwrap().title, "Checkout", "test_title is not read when title is there");
        value["title"] = Value::Null;
        assert!(test(&value, Some(3)).unwrap_err().reason.contains("test_title: invalid type"));
        value["test_title"] = json!("From test_title");
        let row = test(&value, Some(3)).unwrap();
        assert_eq!((row.testing_type, row.title.as_str()), (None, "From test_title"));
        let base = json!({"id": 1, "title": "b", "severity": "low", "status": "forwarded", "test": {"id": 7}});
        for steps in [json!("one string"), json!(["a", "b"]), Value::Null] {
            let mut b = base.clone();
            b["steps"] = steps;
            assert_eq!(bug(&b).unwrap().test_id, 7);
        }
        let mut b = base.clone();
        b["steps"] = json!([1]);
        assert_eq!(bug(&b).unwrap_err().id, Some(1));
        b["steps"] = json!({"1": "a"});
        assert!(bug(&b).unwrap_err().reason.contains("steps: invalid type: map, expected text or a list of text"));
        b = base;
        b["severity"] = json!(4);
        assert!(bug(&b).unwrap_err().reason.contains("severity: invalid type: integer `4`, expected a string"));
    }

    #[test]
    fn a_wrong_type_deep_in_an_item_is_named_by_its_path() {
        let mut value = a_test();
        value["product"] = json!({"id": "3"});
        let err = test(&value, Some(3)).unwrap_err();
        assert_eq!(err.id, Some(7));
        assert_eq!(err.reason, "product.id: invalid type: string \"3\", expected i64");
        value["product"] = json!([3]);
        assert_eq!(
            test(&value, None).unwrap_err().reason,
            "product: invalid type: sequence, expected an object with an id"
        );
        let b = json!({"id": 1, "title": "b", "test": {"id": 7}, "steps": ["a", 2]});
        assert_eq!(bug(&b).unwrap_err().reason, "steps[1]: invalid type: integer `2`, expected a string");
    }

    #[test]
    fn a_long_refused_value_is_cut_in_the_reason() {
        let mut value = a_test();
        value["end_at"] = json!("z".repeat(10_000));
        let reason = test(&value, Some(3)).unwrap_err().reason;
        assert!(reason.starts_with("end_at: invalid value: string \"zzz") && reason.ends_with('…'), "{reason}");
        assert_eq!(reason.chars().count(), MAX_REASON_CHARS + 1);
    }

    #[test]
    fn an_unknown_word_is_kept_as_sent() {
        let mut value = a_test();
        value["status"] = json!("paused");
        value["testing_type"] = json!("Rapid");
        let row = test(&value, Some(3)).unwrap();
        assert_eq!(row.status, Word::Other("paused".into()));
        assert_eq!((row.status.as_str(), row.status.known()), ("paused", None));
        assert!(!row.status.is_final(), "a status we do not know is not final: the test is read again");
        let testing_type = row.testing_type.unwrap();
        assert_eq!((testing_type.as_str(), testing_type.known()), ("Rapid", None), "words are not normalised");
        assert_eq!(row.raw["status"], "paused");

        let mut b = json!({"id": 1, "title": "b", "severity": "blocker", "status": "in_review", "test": {"id": 7}});
        let row = bug(&b).unwrap();
        assert_eq!(row.severity.as_ref().map(Word::as_str), Some("blocker"));
        assert_eq!(row.status.as_ref().map(Word::as_str), Some("in_review"));
        assert_eq!(row.severity.and_then(|s| s.known()), None);
        b["status"] = json!("");
        assert_eq!(bug(&b).unwrap().status, Some(Word::Other(String::new())), "even an empty word is as sent");
    }

    #[test]
    fn a_known_word_reads_as_before() {
        for status in TestStatus::ALL {
            let mut value = a_test();
            value["status"] = json!(status.as_str());
            let row = test(&value, Some(3)).unwrap();
            assert_eq!(row.status, Word::Known(*status));
            assert_eq!(row.status.known(), Some(*status));
            assert_eq!(row.status.is_final(), status.is_final());
        }
        let b = json!({"id": 1, "title": "b", "severity": "critical", "status": "accepted", "test": {"id": 7}});
        let row = bug(&b).unwrap();
        assert_eq!(row.severity.and_then(|s| s.known()), Some(BugSeverity::Critical));
        assert!(matches!(row.status, Some(Word::Known(BugStatus::Accepted))));
    }

    #[test]
    fn a_word_that_is_not_a_string_or_missing_still_makes_the_item_invalid() {
        for status in [json!(1), json!(true), json!(["running"]), json!({"running": null})] {
            let mut value = a_test();
            value["status"] = status.clone();
            let err = test(&value, Some(3)).unwrap_err();
            assert_eq!(err.id, Some(7));
            assert!(err.reason.starts_with("status: invalid type:"), "{status}: {}", err.reason);
        }
        let mut value = a_test();
        value.as_object_mut().unwrap().remove("status");
        assert_eq!(test(&value, Some(3)).unwrap_err().reason, "status is missing");
        let b = json!({"id": 1, "title": "b", "status": {"name": "accepted"}, "test": {"id": 7}});
        assert!(bug(&b).unwrap_err().reason.starts_with("status: invalid type: map, expected a string"));
    }

    #[test]
    fn an_over_long_unknown_word_is_refused_naming_its_field() {
        let mut value = a_test();
        value["status"] = json!("x".repeat(10_000));
        let reason = test(&value, Some(3)).unwrap_err().reason;
        let quoted = format!("\"{}…\"", "x".repeat(MAX_WORD_CHARS));
        assert_eq!(reason, format!("status: unknown value over {MAX_WORD_CHARS} characters: {quoted}"));
        value["status"] = json!("é".repeat(MAX_WORD_CHARS));
        assert_eq!(test(&value, Some(3)).unwrap().status.as_str().chars().count(), MAX_WORD_CHARS, "chars, not bytes");
        value["status"] = json!("é".repeat(MAX_WORD_CHARS + 1));
        assert!(test(&value, Some(3)).is_err());

        let b = json!({"id": 1, "title": "b", "severity": "s".repeat(101), "test": {"id": 7}});
        let err = bug(&b).unwrap_err();
        assert_eq!(err.id, Some(1));
        assert!(err.reason.starts_with("severity: unknown value over 100 characters: \"sss"), "{}", err.reason);
        let b = json!({"id": 1, "title": "b", "status": "s".repeat(101), "test": {"id": 7}});
        assert!(bug(&b).unwrap_err().reason.starts_with("status: unknown value over"));
    }

    #[test]
    fn a_word_round_trips_through_serde_as_a_string() {
        let words: [Word<TestStatus>; 3] =
            [Word::Known(TestStatus::Archived), Word::Other("paused".into()), Word::Other("x y \"z\"".into())];
        for word in words {
            let json = serde_json::to_value(&word).unwrap();
            assert_eq!(json, json!(word.as_str()));
            assert_eq!(serde_json::from_value::<Word<TestStatus>>(json).unwrap(), word);
        }
        let read: Word<TestStatus> = serde_json::from_value(json!("archived")).unwrap();
        assert!(matches!(read, Word::Known(TestStatus::Archived)), "a known word reads as known");
        assert!(read.is_final());
        assert_eq!(Word::<TestStatus>::new("cancelled"), TestStatus::Cancelled);
        assert_eq!(Word::<TestStatus>::new("running"), Word::Other("running".into()), "equal as words");
        assert_eq!(Word::<TestStatus>::Other("running".into()).known(), Some(TestStatus::Running));
        assert_eq!(Word::from(BugStatus::Rejected).to_string(), "rejected");
        assert_eq!(serde_json::to_string(&Some(Word::<BugSeverity>::new("blocker"))).unwrap(), "\"blocker\"");
        assert!(serde_json::from_value::<Word<TestStatus>>(json!(null)).is_err());
        assert!(serde_json::from_value::<Word<TestStatus>>(json!({"running": null})).is_err());
        assert!(serde_json::from_value::<Word<TestStatus>>(json!("w".repeat(MAX_WORD_CHARS + 1))).is_err());
    }

    #[test]
    fn the_vocabulary_reads_and_writes_testio_words() {
        let words: Vec<&str> = TestStatus::ALL.iter().map(|s| s.as_str()).collect();
        let expected = ["initialized", "customer_finalized", "waiting", "running", "locked", "archived", "cancelled"];
        assert_eq!(words, expected);
        for status in TestStatus::ALL {
            assert_eq!(serde_json::to_value(status).unwrap(), json!(status.as_str()), "serde and strum agree");
            assert_eq!(status.as_str().parse::<TestStatus>().unwrap(), *status);
            assert_eq!(status.is_final(), matches!(status, TestStatus::Archived | TestStatus::Cancelled));
        }
        assert_eq!(TestingType::External.to_string(), "external");
        assert_eq!(serde_json::from_value::<BugSeverity>(json!("critical")).unwrap(), BugSeverity::Critical);
        assert_eq!(BugStatus::ALL.len(), 3);
        assert!(serde_json::from_value::<TestStatus>(json!({"running": null})).is_err(), "a word, not a tagged object");
    }
}
