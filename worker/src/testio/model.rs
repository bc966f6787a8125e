//! Turning TestIO JSON items into mirror rows. Each item is parsed on its own, so one malformed item (unknown enum
//! value, missing field, wrong type, oversized) becomes a gap with its reason while the rest of the page is stored.
//! Credentials of test environments are removed before anything is stored.

use chrono::{DateTime, Utc};
use entity::mirror::{BugRow, ProductRow, TestRow};
use serde_json::{Map, Value};

/// Largest stored raw item; anything bigger is recorded as a gap rather than stored.
pub const MAX_ITEM_BYTES: usize = 256 * 1024;

pub const TEST_STATUSES: [&str; 7] =
    ["initialized", "customer_finalized", "waiting", "running", "locked", "archived", "cancelled"];
pub const TESTING_TYPES: [&str; 6] = ["coverage", "focused", "rapid", "usability", "custom", "external"];
pub const BUG_SEVERITIES: [&str; 6] = ["low", "high", "critical", "visual", "content", "custom"];
pub const BUG_STATUSES: [&str; 3] = ["forwarded", "accepted", "rejected"];

/// Why an item could not be stored, with the id when it had a readable one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub id: Option<i64>,
    pub reason: String,
}

type Parsed<T> = Result<T, Invalid>;

struct Item<'a> {
    object: &'a Map<String, Value>,
    id: i64,
}

impl<'a> Item<'a> {
    fn new(value: &'a Value, what: &str) -> Parsed<Self> {
        let object =
            value.as_object().ok_or_else(|| Invalid { id: None, reason: format!("{what} is not an object") })?;
        let id = match object.get("id") {
            Some(Value::Number(n)) => n.as_i64().filter(|id| *id > 0),
            _ => None,
        }
        .ok_or_else(|| Invalid { id: None, reason: format!("{what} has no positive integer id") })?;
        let size = serde_json::to_vec(value).map(|v| v.len()).unwrap_or(usize::MAX);
        if size > MAX_ITEM_BYTES {
            return Err(Invalid { id: Some(id), reason: format!("{what} is {size} bytes, over {MAX_ITEM_BYTES}") });
        }
        Ok(Self { object, id })
    }

    fn invalid(&self, reason: String) -> Invalid {
        Invalid { id: Some(self.id), reason }
    }

    fn string(&self, key: &str) -> Parsed<Option<String>> {
        match self.object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.invalid(format!("{key} should be a string, not {}", kind(other)))),
        }
    }

    fn required_string(&self, keys: &[&str]) -> Parsed<String> {
        for key in keys {
            if let Some(s) = self.string(key)? {
                return Ok(s);
            }
        }
        Err(self.invalid(format!("{} is missing", keys.join(" or "))))
    }

    fn one_of(&self, key: &str, allowed: &[&str], required: bool) -> Parsed<Option<String>> {
        match self.string(key)? {
            Some(s) if allowed.contains(&s.as_str()) => Ok(Some(s)),
            Some(s) => Err(self.invalid(format!("unknown {key} {:?}", entity::audit::truncate(&s, 60)))),
            None if required => Err(self.invalid(format!("{key} is missing"))),
            None => Ok(None),
        }
    }

    fn bool(&self, key: &str) -> Parsed<Option<bool>> {
        match self.object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.invalid(format!("{key} should be a boolean, not {}", kind(other)))),
        }
    }

    fn time(&self, key: &str) -> Parsed<Option<DateTime<Utc>>> {
        match self.string(key)? {
            None => Ok(None),
            Some(s) => DateTime::parse_from_rfc3339(&s)
                .map(|t| Some(t.with_timezone(&Utc)))
                .map_err(|_| self.invalid(format!("{key} is not an ISO-8601 date-time"))),
        }
    }

    fn nested_id(&self, key: &str) -> Parsed<Option<i64>> {
        match self.object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(o)) => match o.get("id") {
                Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64()),
                None | Some(Value::Null) => Ok(None),
                Some(other) => Err(self.invalid(format!("{key}.id should be an integer, not {}", kind(other)))),
            },
            Some(other) => Err(self.invalid(format!("{key} should be an object, not {}", kind(other)))),
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub fn product(value: &Value) -> Parsed<ProductRow> {
    let item = Item::new(value, "product")?;
    Ok(ProductRow {
        testio_id: item.id,
        name: item.required_string(&["name"])?,
        // Descriptive only: an unknown type is stored as sent rather than turning the product, and so every test
        // under it, into a gap.
        product_type: item.string("type")?,
        raw: value.clone(),
    })
}

/// A test, listed under `listed_product` (or read alone when `None`: its `product.id` then decides).
pub fn test(value: &Value, listed_product: Option<i64>) -> Parsed<TestRow> {
    let item = Item::new(value, "test")?;
    let product_id = match (item.nested_id("product")?, listed_product) {
        (_, Some(listed)) => listed,
        (Some(own), None) => own,
        (None, None) => return Err(item.invalid("product.id is missing".to_owned())),
    };
    let testing_type = match item.object.get("testing_type") {
        None | Some(Value::Null) => None,
        _ => item.one_of("testing_type", &TESTING_TYPES, false)?,
    };
    if let Some(steps) = item.object.get("requirements").filter(|v| !v.is_null() && !v.is_array()) {
        return Err(item.invalid(format!("requirements should be an array, not {}", kind(steps))));
    }
    Ok(TestRow {
        testio_id: item.id,
        product_id,
        title: item.required_string(&["title", "test_title"])?,
        status: item.one_of("status", &TEST_STATUSES, true)?.unwrap_or_default(),
        testing_type,
        review_status: item.string("review_status")?,
        start_at: item.time("start_at")?,
        end_at: item.time("end_at")?,
        raw: without_credentials(value),
    })
}

/// A bug; `test_id` comes from its `test.id`.
pub fn bug(value: &Value) -> Parsed<BugRow> {
    let item = Item::new(value, "bug")?;
    let test_id = item.nested_id("test")?.ok_or_else(|| item.invalid("test.id is missing".to_owned()))?;
    match item.object.get("steps") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(Value::Array(steps)) if steps.iter().all(Value::is_string) => {}
        Some(other) => return Err(item.invalid(format!("steps should be text or a list of text, not {}", kind(other)))),
    }
    Ok(BugRow {
        testio_id: item.id,
        test_id,
        title: item.required_string(&["title"])?,
        severity: item.one_of("severity", &BUG_SEVERITIES, false)?,
        status: item.one_of("status", &BUG_STATUSES, false)?,
        known: item.bool("known")?,
        auto_accepted: item.bool("auto_accepted")?,
        reported_at: item.time("reported_at")?,
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
        assert_eq!(row.testio_id, 7);
        assert_eq!(row.end_at.unwrap().to_rfc3339(), "2026-11-02T08:00:00+00:00");
        let env = &row.raw["test_environment"];
        assert_eq!(env, &json!({"id": 1, "url": "https://x/", "access": {"note": "n"}}));
        assert!(!row.raw.to_string().contains("\"p\""));
    }

    #[test]
    fn each_kind_of_bad_item_gives_its_reason_and_id() {
        let cases = [
            (json!({"status": "weird"}), "unknown status"),
            (json!({"status": null}), "status is missing"),
            (json!({"end_at": "yesterday"}), "end_at is not an ISO-8601"),
            (json!({"title": 5, "test_title": null}), "title should be a string"),
            (json!({"testing_type": "brand_new"}), "unknown testing_type"),
            (json!({"requirements": "x"}), "requirements should be an array"),
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
        value["title"] = Value::Null;
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
        assert!(bug(&b).is_err());
        b = base;
        b["severity"] = json!("catastrophic");
        assert!(bug(&b).unwrap_err().reason.contains("unknown severity"));
    }
}
