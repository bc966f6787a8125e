//! The committed `openapi.json` is the generated spec; the docs page works offline.

use serde_json::Value;
use tests::spawn_app;

fn committed_spec_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("openapi.json")
}

#[test]
fn committed_openapi_json_matches_the_generated_spec() {
    let generated = api::openapi::spec_json().unwrap();
    let path = committed_spec_path();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi.json is stale: run `UPDATE_OPENAPI=1 cargo test -p tests --test api openapi` \
         (or `cargo run -p api -- openapi > openapi.json`) and commit the result"
    );
}

#[tokio::test]
async fn the_served_spec_is_the_committed_one() {
    let app = spawn_app().await;
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status(), 200);
    let served: Value = response.json().await.unwrap();
    let committed: Value = serde_json::from_str(&api::openapi::spec_json().unwrap()).unwrap();
    assert_eq!(served, committed);
    assert!(served["paths"]["/readyz"]["get"].is_object());
    assert!(served["components"]["schemas"]["ProblemDetails"].is_object());
}

#[tokio::test]
async fn the_docs_page_is_served_with_all_its_assets_locally() {
    let app = spawn_app().await;
    let redirect = app.get("/docs").await;
    assert_eq!(redirect.status(), 308);
    assert_eq!(redirect.headers()["location"], "/docs/");

    let page = app.get("/docs/").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "not the Swagger UI page");
    let remote: Vec<&str> =
        html.split(['"', '\'']).filter(|s| s.starts_with("http:") || s.starts_with("https:")).collect();
    assert!(remote.is_empty(), "the docs page loads {remote:?} from the network");
    for asset in ["swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js"] {
        let response = app.get(&format!("/docs/{asset}")).await;
        assert_eq!(response.status(), 200, "{asset} is not served locally");
        assert!(response.bytes().await.unwrap().len() > 1000, "{asset} is empty");
    }
    let initializer = app.get("/docs/swagger-initializer.js").await.text().await.unwrap();
    assert!(initializer.contains("/openapi.json"), "the docs page does not load our spec");
}
