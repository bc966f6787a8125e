//! The audit-log viewer page (issue 13) in a real headless browser: Debian's Chromium driven through ChromeDriver's
//! WebDriver protocol. Signs in, reads the events, filters, pages with the cursor, opens an event, exports CSV and
//! shows the chain's status; a screenshot is kept in `target/ci-artifacts/audit-viewer.png`.
//!
//! Ignored by a plain `cargo test` (it needs `chromium` and `chromium-driver`); `.ci/run` installs them and runs it
//! with `cargo test -p tests --test api audit_viewer -- --ignored`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::spawn_app;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A ChromeDriver process and one browser session in it.
struct Browser {
    driver: Child,
    http: reqwest::Client,
    base: String,
    downloads: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.downloads);
    }
}

impl Browser {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".to_owned()))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver did not start: install chromium and chromium-driver (.ci/run does)");
        let http = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{url}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not answer");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let downloads = std::env::temp_dir().join(format!("audit-viewer-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&downloads).unwrap();
        let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": binary,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1400,1000"],
                "prefs": { "download.default_directory": downloads, "download.prompt_for_download": false },
            },
        }}});
        let session: Value =
            http.post(format!("{url}/session")).json(&capabilities).send().await.unwrap().json().await.unwrap();
        let id = session["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {session}")).to_owned();
        Self { driver, http, base: format!("{url}/session/{id}"), downloads }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        assert!(answer["value"].get("error").is_none(), "{path}: {answer}");
        answer["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url }))).await;
    }

    async fn find(&self, css: &str) -> String {
        let found =
            self.call(reqwest::Method::POST, "/element", Some(json!({ "using": "css selector", "value": css }))).await;
        found[ELEMENT].as_str().unwrap().to_owned()
    }

    async fn count(&self, css: &str) -> usize {
        let found =
            self.call(reqwest::Method::POST, "/elements", Some(json!({ "using": "css selector", "value": css }))).await;
        found.as_array().unwrap().len()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{element}/clear"), Some(json!({}))).await;
        self.call(reqwest::Method::POST, &format!("/element/{element}/value"), Some(json!({ "text": text }))).await;
    }

    async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{element}/click"), Some(json!({}))).await;
    }

    async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        self.call(reqwest::Method::GET, &format!("/element/{element}/text"), None).await.as_str().unwrap().to_owned()
    }

    async fn script(&self, script: &str) -> Value {
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({ "script": script, "args": [] }))).await
    }

    /// Waits until the text of `css` contains `part`; returns it.
    async fn wait_text(&self, css: &str, part: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let text = self.text(css).await;
            if text.contains(part) {
                return text;
            }
            assert!(Instant::now() < deadline, "{css} never showed {part:?}; it shows {text:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn screenshot(&self, path: &std::path::Path) {
        use base64::Engine;
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

#[tokio::test]
#[ignore = "needs chromium and chromium-driver; .ci/run installs them and runs it"]
async fn the_viewer_signs_in_filters_pages_opens_exports_and_shows_the_chain() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;
    // 70 events: more than one page of 50.
    for k in 0..69 {
        let renamed = app.patch_tenant(&ann, tenant, json!({ "name": format!("Acme {k}") })).await;
        assert_eq!(renamed.status(), 200);
    }
    let runtime = app.db.connect_runtime().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while entity::audit::chain::seal_pending(&runtime).await.unwrap().events == 0 {
        assert!(Instant::now() < deadline, "nothing was sealed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let page = reqwest::get(format!("{}/admin/audit", app.address)).await.unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"), "{csp}");

    let browser = Browser::start().await;
    browser.go(&format!("{}/admin/audit", app.address)).await;
    // A wrong password is refused on the page.
    browser.type_into("#email", "ann@example.com").await;
    browser.type_into("#password", "not the password").await;
    browser.click("#signin-button").await;
    browser.wait_text("#signin-error", "Invalid email or password").await;
    browser.type_into("#password", "correct horse battery").await;
    browser.click("#signin-button").await;
    browser.wait_text("#status", "50 events shown; more on the next page").await;
    assert_eq!(browser.count("#events tbody tr").await, 50);
    browser.wait_text("#badge", "chain intact").await;

    // The next page through the cursor: all 70, each once.
    browser.click("#more").await;
    browser.wait_text("#status", "70 events shown.").await;
    let ids = browser.script("return [...document.querySelectorAll('#events tbody tr')].map(r => r.dataset.id)").await;
    let ids: std::collections::HashSet<&str> = ids.as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(ids.len(), 70);

    // A filter: the creation only.
    browser.type_into("#action", "tenant.create").await;
    browser.click("#apply").await;
    browser.wait_text("#status", "1 event shown.").await;
    assert_eq!(browser.text("#events tbody tr td:nth-child(2)").await, "tenant.create");

    // One event's details.
    browser.click("#events tbody tr").await;
    let detail = browser.wait_text("#detail-json", "\"action\": \"tenant.create\"").await;
    assert!(detail.contains("ann@example.com"), "{detail}");
    browser.click("#close-detail").await;

    // Export what the filter selects (all of it, not only the page shown), as CSV.
    browser.type_into("#action", "tenant.*").await;
    browser.click("#apply").await;
    browser.wait_text("#status", "50 events shown; more on the next page.").await;
    browser.click("#export").await;
    browser.wait_text("#status", "Exported 70 events as CSV.").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let csv = loop {
        let done: Vec<PathBuf> = std::fs::read_dir(&browser.downloads)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "csv"))
            .collect();
        if let Some(path) = done.first() {
            break std::fs::read_to_string(path).unwrap();
        }
        assert!(Instant::now() < deadline, "no CSV was downloaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(csv.lines().count(), 71, "a header and 70 events");
    assert!(csv.starts_with("created_at,id,action,"));

    let artefact = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/ci-artifacts/audit-viewer.png");
    browser.screenshot(&artefact).await;
    assert!(std::fs::metadata(&artefact).unwrap().len() > 10_000);

    // The export is on the log, and the viewer reads the log it shows only as its user may.
    assert!(app.audit_log(tenant).await.has("audit_log.export", "success"));

    // A platform admin reads (and exports) every tenant's events, the platform's own sign-ins included.
    app.sql("UPDATE users SET is_platform_admin = true WHERE email = 'ann@example.com'").await;
    browser.go(&format!("{}/admin/audit", app.address)).await;
    browser.type_into("#email", "ann@example.com").await;
    browser.type_into("#password", "correct horse battery").await;
    browser.click("#signin-button").await;
    browser.wait_text("#status", "50 events shown; more on the next page").await;
    assert_eq!(browser.script("return document.querySelector('#tenant').value").await, "*");
    browser.type_into("#action", "auth.login").await;
    browser.click("#apply").await;
    let logins = app.db.count("SELECT count(*) FROM audit_logs WHERE action = 'auth.login'").await;
    assert!(logins >= 3, "two failed and two successful sign-ins at least: {logins}");
    browser.wait_text("#status", &format!("{logins} events shown.")).await;
    browser.click("#export").await;
    browser.wait_text("#status", &format!("Exported {logins} events as CSV.")).await;
    let platform = browser.downloads.join("audit-log-platform.csv");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !platform.exists() {
        assert!(Instant::now() < deadline, "no platform CSV was downloaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Swagger UI (`/docs/`) runs under its strict Content-Security-Policy: scripts and styles from this origin only.
/// Were the policy to block what the page needs, no operation would be drawn.
#[tokio::test]
#[ignore = "needs chromium and chromium-driver; .ci/run installs them and runs it"]
async fn the_api_docs_render_under_their_content_security_policy() {
    let app = spawn_app().await;
    let page = reqwest::get(format!("{}/docs/", app.address)).await.unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-eval"), "{csp}");

    let browser = Browser::start().await;
    browser.go(&format!("{}/docs/", app.address)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while browser.count(".opblock").await < 10 {
        assert!(Instant::now() < deadline, "Swagger UI drew no operations under its policy");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    browser.wait_text(".information-container", "TestIO Hub API").await;
    browser.screenshot(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/ci-artifacts/api-docs.png")).await;
}
