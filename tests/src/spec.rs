//! Reading the OpenAPI document in tests: request bodies built from its own examples.

use serde_json::Value;

/// A body for `operation` that its schema accepts: the schema's example, with `overrides`' value for every property
/// it names. `None` for an operation without a body.
pub fn example_body(spec: &Value, operation: &Value, overrides: &Value) -> Option<Value> {
    let reference = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].as_str()?;
    let schema = &spec["components"]["schemas"][reference.rsplit('/').next().unwrap()];
    let mut body = schema["example"].clone();
    assert!(body.is_object(), "{reference} has no example");
    for name in schema["properties"].as_object().unwrap().keys() {
        if let Some(value) = overrides.get(name) {
            body[name] = value.clone();
        }
    }
    Some(body)
}
