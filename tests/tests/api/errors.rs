//! Bad requests get problem+json 4xx answers, never a 500 or a dropped connection.

use serde_json::Value;
use tests::spawn_app;

async fn assert_problem(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let request_id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status);
    assert_eq!(body["code"], code);
    assert_eq!(body["type"], format!("urn:testio-hub:problem:{code}"));
    assert_eq!(body["request_id"], request_id, "the body names the same request as the header");
    assert!(body["title"].is_string() && body["detail"].is_string());
    body
}

#[tokio::test]
async fn an_unknown_route_is_a_404_problem() {
    let app = spawn_app().await;
    assert_problem(app.get("/v1/does-not-exist").await, 404, "route_not_found").await;
    assert_problem(app.get("/livez/extra").await, 404, "route_not_found").await;
}

#[tokio::test]
async fn a_known_route_with_the_wrong_method_is_a_405_problem_with_allow() {
    let app = spawn_app().await;
    let response = app.client.delete(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.headers()["allow"], "GET");
    assert_problem(response, 405, "method_not_allowed").await;

    let response = app.client.post(app.url("/openapi.json")).send().await.unwrap();
    assert_problem(response, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn a_large_body_sent_to_the_wrong_place_still_gets_a_problem_answer() {
    let app = spawn_app().await;
    let big = vec![b'x'; 2 * 1024 * 1024];
    let response = app
        .client
        .post(app.url("/livez"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .expect("the connection must not be dropped");
    assert_problem(response, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn a_path_with_odd_characters_is_a_404_problem_not_a_500() {
    let app = spawn_app().await;
    for path in ["/%00", "/v1/%E2%82%AC/x", "/..%2f..%2fetc/passwd", "/v1/tenants/x/y/z/w"] {
        assert_problem(app.get(path).await, 404, "route_not_found").await;
    }
}

/// Bytes that are not HTTP never reach the application: actix-http answers them itself (400, or 431 for oversized
/// headers) and closes the connection. The point here is that the client gets a 4xx answer rather than a reset.
#[tokio::test]
async fn bytes_that_are_not_http_get_a_4xx_answer_not_a_reset() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let many_headers = format!("GET /livez HTTP/1.1\r\nHost: x\r\n{}\r\n", "X-A: b\r\n".repeat(200));
    for (payload, status) in [
        ("GARBAGE\r\n\r\n".to_owned(), "400"),
        ("GET /livez HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".to_owned(), "400"),
        (many_headers, "431"),
    ] {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
        stream.write_all(payload.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with(&format!("HTTP/1.1 {status}")), "{payload:?} got {answer:?}");
    }
}
