//! `TESTIO_ALLOWED_BASE_URLS`: the API refuses to save (and so to call) a base URL outside the list, matching scheme,
//! host and port exactly and paths on segment boundaries; the worker checks the stored base URL again before every
//! sync and sends nothing to one it does not allow; an entry that does not parse stops either process at start-up.

use serde_json::{Value, json};
use tests::sync::{SyncFixture, assert_same, build_worker, worker_settings};
use tests::testio_sim::{Account, Shape, Simulator};

const TINY: Shape = Shape { products: 1, tests_per_product: 2, bugs_per_test: 1 };

fn port_of(base_url: &str) -> u16 {
    url::Url::parse(base_url).unwrap().port().unwrap()
}

#[tokio::test]
async fn base_urls_outside_the_allowlist_are_refused_before_any_request_even_with_entries_lacking_a_slash() {
    let sim = Simulator::start().await;
    let port = port_of(&sim.base_url);
    // Written the lax way, without trailing slashes: a string prefix match would admit lookalikes of each.
    let allowed = format!("https://api.test.io,http://127.0.0.1:{port}/customer/v2");
    let f = SyncFixture::connected_to(sim, TINY, &allowed).await;
    // Another local service that would accept the token: if the API called it, the save would succeed.
    let other = Simulator::start().await;
    other.add_account(&f.token, Account::generate(2, TINY));
    let other_port = port_of(&other.base_url);
    let before: Value = f.app.get_connection(&f.owner, f.tenant).await.json().await.unwrap();
    let sim_requests = f.sim.requests();

    let refused = [
        "https://api.test.io.evil.com/".to_owned(),
        "https://api.test.io.evil.com/customer/v2/".to_owned(),
        other.base_url.clone(),
        format!("http://127.0.0.1:{other_port}/customer/v2/"),
        format!("http://localhost:{port}/customer/v2/"),
        format!("http://[::1]:{port}/customer/v2/"),
        format!("https://127.0.0.1:{port}/customer/v2/"),
        format!("http://127.0.0.1:{port}/customer/v2-evil/"),
        format!("http://127.0.0.1:{port}/customer/"),
        format!("http://127.0.0.1:{port}/"),
        format!("http://user:pw@127.0.0.1:{port}/customer/v2/"),
        format!("http://127.0.0.1:{port}@127.0.0.1:{other_port}/customer/v2/"),
    ];
    for base_url in &refused {
        let body = json!({ "token": f.token, "base_url": base_url });
        let response = f.app.put_connection(&f.owner, f.tenant, body).await;
        assert_eq!(response.status(), 422, "{base_url} was not refused");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], "validation_failed", "{base_url}: {problem}");
        assert_eq!(problem["errors"][0]["field"], "base_url", "{base_url}: {problem}");
    }
    // A refusal by the allowlist names what is allowed.
    let body = json!({ "token": f.token, "base_url": "https://api.test.io.evil.com/" });
    let problem: Value = f.app.put_connection(&f.owner, f.tenant, body).await.json().await.unwrap();
    let message = problem["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("https://api.test.io/") && message.contains(&f.sim.base_url), "{message}");

    assert_eq!(other.requests(), 0, "the token reached a base URL outside the allowlist");
    assert_eq!(f.sim.requests(), sim_requests, "a refused base URL was called");
    let after: Value = f.app.get_connection(&f.owner, f.tenant).await.json().await.unwrap();
    assert_eq!(after["base_url"], f.sim.base_url);
    assert_eq!(after["updated_at"], before["updated_at"], "nothing was saved");
    let audit = f.app.audit_log(f.tenant).await;
    assert!(audit.of("testio_connection.replace").is_empty(), "{audit:?}");

    // The allowed base URL itself, written as the entry was, still saves.
    let body = json!({ "token": f.token, "base_url": format!("http://127.0.0.1:{port}/customer/v2") });
    let response = f.app.put_connection(&f.owner, f.tenant, body).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn an_allowlist_entry_that_does_not_parse_stops_the_api_and_the_worker_at_start_up() {
    let db = tests::TestDatabase::migrated().await;
    for bad in ["https://api.test.io/,http://127.0.0.1:", "ftp://api.test.io/", "https://*.test.io/", " , "] {
        let mut settings = tests::app::test_settings(&db);
        settings.testio_allowed_base_urls = bad.to_owned();
        let err = api::startup::Application::build(settings).await.err().expect("the API started");
        let err = format!("{err:#}");
        assert!(err.contains("TESTIO_ALLOWED_BASE_URLS"), "{bad:?}: {err}");
        let entry = bad.rsplit(',').next().unwrap().trim();
        assert!(err.contains(entry), "{bad:?}: the entry is not named: {err}");

        let mut settings = worker_settings(&db);
        settings.allowed_base_urls = bad.to_owned();
        let err = worker::Worker::build(&settings, Default::default()).await.err().expect("the worker started");
        let err = format!("{err:#}");
        assert!(err.contains("TESTIO_ALLOWED_BASE_URLS") && err.contains(entry), "{bad:?}: {err}");
    }
}

#[tokio::test]
async fn a_worker_that_does_not_allow_the_stored_base_url_sends_nothing_and_stops_syncing_until_it_is_saved_again() {
    let f = SyncFixture::connected(TINY).await;
    let first = f.sync(false).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let requests = f.sim.requests();

    // The worker's list no longer names the simulator (say the operator narrowed it, or the API's was laxer).
    let mut settings = f.worker_settings();
    settings.allowed_base_urls = "https://api.test.io/".into();
    let worker = build_worker(&settings).await;
    let finished = worker.sync_tenant(entity::TenantId(f.tenant), false).await.unwrap();
    assert_eq!(f.sim.requests(), requests, "the worker called a base URL it does not allow");
    let run = finished.run.expect("no run was recorded");
    assert_eq!(run.status, entity::sync_runs::SyncStatus::Failed);
    assert!(run.error.as_deref().unwrap_or_default().contains("TESTIO_ALLOWED_BASE_URLS"), "{run:?}");
    assert_eq!(run.requests, 0);

    let connection: Value = f.app.get_connection(&f.owner, f.tenant).await.json().await.unwrap();
    assert_eq!(connection["status"], "base_url_not_allowed", "{connection}");
    let reason = connection["status_reason"].as_str().unwrap();
    assert!(reason.contains("TESTIO_ALLOWED_BASE_URLS") && reason.contains(&f.sim.base_url), "{reason}");
    assert_eq!(connection["next_sync_at"], Value::Null, "still scheduled: {connection}");
    assert_eq!(connection["last_run"]["id"], run.id.to_string());
    assert_eq!(connection["last_run"]["status"], "failed");
    assert!(connection["last_run"]["error"].as_str().unwrap().contains("TESTIO_ALLOWED_BASE_URLS"));
    let audit = f.app.audit_log(f.tenant).await;
    assert!(audit.has("testio_connection.base_url_not_allowed", "failure"), "{audit:?}");
    assert_eq!(f.mirror().await.tests.len(), 2, "the mirror is kept");
    let refused = f.app.post_sync_run(&f.owner, f.tenant, json!({})).await;
    assert_eq!(refused.status(), 409, "a run was queued for a connection that cannot sync");

    // Another sync by the same worker finds nothing to do and still sends nothing.
    let again = worker.sync_tenant(entity::TenantId(f.tenant), false).await.unwrap();
    assert!(again.run.is_none(), "{again:?}");
    assert_eq!(f.sim.requests(), requests);

    // Saving the connection again (the app allows the simulator) revives it; a worker that allows it syncs.
    f.sim.modify(&f.token, |a| {
        let product = *a.products.keys().next().unwrap();
        let end_at = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp() + 60, 0).unwrap();
        a.add_test(product, "running", end_at.fixed_offset());
    });
    assert_eq!(f.connect(f.tenant, &f.token).await.status(), 200);
    let connection: Value = f.app.get_connection(&f.owner, f.tenant).await.json().await.unwrap();
    assert_eq!(connection["status"], "active", "{connection}");
    assert_eq!(connection["status_reason"], Value::Null);
    assert!(connection["next_sync_at"].is_string(), "{connection}");
    let run = f.sync(false).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_same(&f.mirror().await, &f.truth());
}
