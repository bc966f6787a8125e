//! The contract as a client sees it: the rules every operation of the document follows, and walks of every operation
//! against the real server that check it answers only what the document says (status, media type, credential).

use reqwest::Method;
use serde_json::{Value, json};
use tests::spawn_app;

fn spec() -> Value {
    serde_json::from_str(&api::openapi::spec_json().unwrap()).unwrap()
}

/// Every operation: (path template, method, operation object).
fn operations(spec: &Value) -> Vec<(String, Method, Value)> {
    let mut out = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            out.push((path.clone(), method.to_uppercase().parse().unwrap(), operation.clone()));
        }
    }
    out
}

/// The response object for `status`, with `$ref`s to shared responses resolved.
fn documented(spec: &Value, operation: &Value, status: u16) -> Option<Value> {
    let response = operation["responses"].get(status.to_string())?;
    match response["$ref"].as_str() {
        Some(reference) => {
            let name = reference.rsplit('/').next().unwrap();
            Some(spec["components"]["responses"][name].clone())
        }
        None => Some(response.clone()),
    }
}

#[test]
fn every_operation_has_a_snake_case_id_a_tag_descriptions_and_problem_json_errors() {
    let spec = spec();
    let mut ids = std::collections::HashSet::new();
    for (path, method, operation) in operations(&spec) {
        let id = operation["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
        assert!(id.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{id} is not snake_case");
        assert!(ids.insert(id.to_owned()), "operationId {id} is used twice");
        assert!(operation["tags"].as_array().is_some_and(|t| !t.is_empty()), "{id} has no tag");
        if let Some(body) = operation.get("requestBody") {
            assert_eq!(body["required"], true, "{id}: a body that may be left out would be `null` to the server");
            let reference = body["content"]["application/json"]["schema"]["$ref"].as_str().unwrap();
            let schema = &spec["components"]["schemas"][reference.rsplit('/').next().unwrap()];
            assert!(schema["example"].is_object(), "{id}: the request body has no example");
            assert_eq!(schema["additionalProperties"], false, "{id}: the server refuses unknown properties; say so");
        }
        for status in operation["responses"].as_object().unwrap().keys() {
            let status: u16 = status.parse().unwrap();
            let response = documented(&spec, &operation, status).unwrap();
            assert!(response["description"].as_str().is_some_and(|d| !d.is_empty()), "{id} {status}: no description");
            if status >= 400 {
                let content = response["content"].as_object().unwrap();
                assert_eq!(content.keys().collect::<Vec<_>>(), ["application/problem+json"], "{id} {status}");
            }
        }
        let public = api::openapi::contract::PUBLIC_OPERATIONS.contains(&id);
        assert_eq!(operation.get("security").is_none(), public, "{id}: security does not match being public");
        if !public {
            assert!(documented(&spec, &operation, 401).is_some(), "{id} does not document 401");
            let schemes: Vec<&str> = operation["security"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| r.as_object().unwrap().keys())
                .map(String::as_str)
                .collect();
            let expected = if path.contains("{tenant_id}") { vec!["bearer", "api_key"] } else { vec!["bearer"] };
            assert_eq!(schemes, expected, "{id}");
        }
    }
    assert!(ids.len() >= 30, "only {} operations", ids.len());
}

/// `path` with `{tenant_id}` set to `tenant` and every other parameter to a fresh id.
fn fill(path: &str, tenant: uuid::Uuid) -> String {
    path.split('/')
        .map(|s| match s {
            "{tenant_id}" => tenant.to_string(),
            s if s.starts_with('{') => uuid::Uuid::new_v4().to_string(),
            s => s.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Sends `method path`, with `body` as JSON when the operation takes one, and checks the answer against the document.
async fn check(spec: &Value, path: &str, method: &Method, operation: &Value, request: reqwest::RequestBuilder) -> u16 {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let id = operation["operationId"].as_str().unwrap();
    let documented = documented(spec, operation, status)
        .unwrap_or_else(|| panic!("{method} {path} ({id}) answered {status}, which it does not document"));
    let content_type =
        response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    if let Some(content) = documented["content"].as_object() {
        assert!(
            content.contains_key(&content_type),
            "{id} {status} sent {content_type:?}, documented {:?}",
            content.keys()
        );
    }
    if status == 401 {
        assert!(response.headers().contains_key("www-authenticate"), "{id}: 401 without WWW-Authenticate");
    }
    status
}

#[tokio::test]
async fn without_a_credential_only_public_operations_answer_and_the_rest_say_401_as_documented() {
    let app = spawn_app().await;
    let spec = spec();
    for (path, method, operation) in operations(&spec) {
        let id = operation["operationId"].as_str().unwrap();
        let mut request = app.client.request(method.clone(), app.url(&fill(&path, uuid::Uuid::new_v4())));
        if operation.get("requestBody").is_some() {
            request = request.json(&json!({}));
        }
        let status = check(&spec, &path, &method, &operation, request).await;
        let public = api::openapi::contract::PUBLIC_OPERATIONS.contains(&id);
        assert_eq!(status == 401, !public, "{method} {path} ({id}) answered {status} without a credential");
    }
}

#[tokio::test]
async fn malformed_wrong_type_and_empty_requests_get_documented_problems_on_every_operation() {
    // Billing configured (against the simulator), as in production: its routes answer, not 503.
    let stripe = tests::stripe_sim::StripeSim::start().await;
    let app = tests::spawn_app_with(|s| tests::billing::use_stripe(s, &stripe)).await;
    let user = app.register("walker@example.com").await;
    let tenant = app.create_tenant(&user, "walk").await;
    let spec = spec();
    let mut seen = std::collections::BTreeSet::new();
    for (path, method, operation) in operations(&spec) {
        // Ending the session or deleting the tenant would turn the rest of the walk into 401s and 404s.
        if ["logout", "delete_tenant"].contains(&operation["operationId"].as_str().unwrap()) {
            continue;
        }
        let url = app.url(&fill(&path, tenant));
        let authed = |r: reqwest::RequestBuilder| r.bearer_auth(&user.access_token);
        let base = || authed(app.client.request(method.clone(), url.clone()));
        let mut variants = vec![base()];
        if operation.get("requestBody").is_some() {
            variants.push(base().json(&json!({})));
            variants.push(base().header("content-type", "application/json").body("{"));
            variants.push(base().header("content-type", "text/plain").body("x"));
            variants.push(base().json(&json!(null)));
            variants.push(base().json(&json!({ "email": 42, "name": [], "role": "god", "token": {}, "full": "yes" })));
        }
        if operation["parameters"].as_array().is_some_and(|p| p.iter().any(|p| p["in"] == "query")) {
            variants.push(authed(app.client.request(method.clone(), format!("{url}?limit=-1&before=x&token="))));
        }
        if let Some(mut body) = tests::spec::example_body(&spec, &operation, &json!({})) {
            // The document allows no other property: one more is refused, even next to a valid body.
            body["unexpected"] = json!(true);
            let extra = check(&spec, &path, &method, &operation, base().json(&body)).await;
            assert_eq!(extra, 422, "{method} {path} accepted an unknown property");
        }
        if operation.get("requestBody").is_some() {
            // serde reads a struct from an array of its fields too; the document says the body is an object.
            let array = check(&spec, &path, &method, &operation, base().json(&json!([null, null]))).await;
            assert_eq!(array, 422, "{method} {path} accepted an array as its body");
        }
        for request in variants {
            let status = check(&spec, &path, &method, &operation, request).await;
            assert!(status < 500, "{method} {path} answered {status}");
            seen.insert(status);
        }
    }
    assert!(seen.is_superset(&[400, 404, 415, 422].into()), "the walk met {seen:?}");
}
