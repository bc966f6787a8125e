//! Faults under load. The database goes away and comes back while clients write (every connection reset, as in a
//! restart of Postgres): the API answers 503 meanwhile, recovers without a restart, and every write it acknowledged is
//! there afterwards. The API is killed with SIGKILL while clients write: no change is half-written (each audit row and
//! its change are there together or not at all), every acknowledged write is there, and a new process serves on.
//!
//! `scripts/faults` runs the same scenarios against release binaries and a real restart of Postgres.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};
use tests::proxy::TcpProxy;
use tests::{TestDatabase, spawn_app_with};

/// Acknowledged API keys (their ids) and every status seen, shared by the writers.
#[derive(Default)]
struct Ledger {
    acknowledged: Vec<String>,
    statuses: Vec<u16>,
}

/// Writers creating API keys on `tenant` through `base` for `run_for`, `writers` at a time.
async fn create_keys(base: String, token: String, tenant: uuid::Uuid, writers: usize, run_for: Duration) -> Ledger {
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let until = Instant::now() + run_for;
    let tasks = (0..writers).map(|w| {
        let (ledger, client, base, token) = (ledger.clone(), client.clone(), base.clone(), token.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while Instant::now() < until {
                n += 1;
                let sent = client
                    .post(format!("{base}/v1/tenants/{tenant}/api-keys"))
                    .bearer_auth(&token)
                    .json(&json!({"name": format!("w{w}-{n}"), "role": "viewer"}))
                    .send()
                    .await;
                let Ok(response) = sent else {
                    ledger.lock().unwrap().statuses.push(0);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                let mut ledger = ledger.lock().unwrap();
                ledger.statuses.push(status);
                if status == 201 {
                    ledger.acknowledged.push(body["api_key"]["id"].as_str().unwrap().to_owned());
                }
            }
        })
    });
    futures_util::future::join_all(tasks).await;
    Arc::try_unwrap(ledger).ok().unwrap().into_inner().unwrap()
}

async fn ids(db: &impl ConnectionTrait, sql: &str) -> Vec<String> {
    db.query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.try_get_by_index::<String>(0).unwrap())
        .collect()
}

/// Every API key has exactly one `api_key.create` audit row and every such row its key: nothing half-written.
async fn keys_and_their_audit_rows_match(db: &TestDatabase, tenant: uuid::Uuid) -> Vec<String> {
    let superuser = db.superuser().await;
    let mut keys =
        ids(superuser, &format!("SELECT id::text FROM api_keys WHERE tenant_id = '{tenant}' ORDER BY 1")).await;
    let mut audited = ids(
        superuser,
        &format!(
            "SELECT target_id FROM audit_logs WHERE tenant_id = '{tenant}' AND action = 'api_key.create' ORDER BY 1"
        ),
    )
    .await;
    keys.sort();
    audited.sort();
    assert_eq!(keys, audited, "a key without its audit row, or an audit row without its key");
    keys
}

#[tokio::test]
async fn a_database_restart_under_write_load_is_answered_503_and_loses_no_acknowledged_write() {
    use secrecy::ExposeSecret;
    let proxy = TcpProxy::to_postgres().await;
    let app = spawn_app_with(|s| {
        s.database_url = proxy.route(s.database_url.expose_secret()).into();
        s.database_max_connections = 6;
        s.database_acquire_timeout_ms = 500;
    })
    .await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;

    let load =
        tokio::spawn(create_keys(app.address.clone(), ann.access_token.clone(), tenant, 4, Duration::from_secs(4)));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    proxy.restore();
    let ledger = load.await.unwrap();

    let count = |s: u16| ledger.statuses.iter().filter(|x| **x == s).count();
    assert!(ledger.statuses.iter().all(|s| matches!(s, 201 | 503)), "only 201 and 503: {:?}", ledger.statuses);
    assert!(count(503) > 0, "the outage was never seen");
    let last_201 = ledger.statuses.iter().rposition(|s| *s == 201).unwrap();
    let first_503 = ledger.statuses.iter().position(|s| *s == 503).unwrap();
    assert!(last_201 > first_503, "no write succeeded after the database came back: the API did not recover");
    let stored = keys_and_their_audit_rows_match(&app.db, tenant).await;
    for id in &ledger.acknowledged {
        assert!(stored.contains(id), "the acknowledged key {id} is gone");
    }
    // A write whose COMMIT reached Postgres but whose answer was lost with the connection is there although it was
    // answered 503; never more of those than 503s.
    assert!(
        stored.len() - ledger.acknowledged.len() <= count(503),
        "{} stored, {} acknowledged",
        stored.len(),
        ledger.acknowledged.len()
    );
}

const CHILD_MODE: &str = "TESTIO_HUB_CHILD_API";

/// Not a test of its own: the API in a child process, killed by the parent. Skipped unless the parent sets the
/// environment.
#[tokio::test]
#[ignore = "run as a child process by the fault tests"]
async fn child_api_process() {
    let Ok(port) = std::env::var(CHILD_MODE) else { return };
    let mut settings = tests::app::test_settings_for(&std::env::var("CHILD_DATABASE_URL").unwrap());
    settings.port = port.parse().unwrap();
    settings.database_max_connections = 6;
    let app = api::startup::Application::build(settings).await.unwrap();
    app.run_until_stopped().await.unwrap();
}

fn spawn_api(db: &TestDatabase, port: u16) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["faults::child_api_process", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_MODE, port.to_string())
        .env("CHILD_DATABASE_URL", db.runtime_url())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn wait_live(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("{base}/livez")).await.map(|r| r.status() != 200).unwrap_or(true) {
        assert!(Instant::now() < deadline, "the API process did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_api_killed_under_write_load_leaves_no_half_written_change_and_a_new_process_serves_on() {
    // The users and the tenant are made by an in-process app on the database, which the child then serves.
    let app = spawn_app_with(|_| {}).await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = spawn_api(&app.db, port);
    wait_live(&base).await;

    // Concurrent key creations, and renames one after another (each names the one before: a chain).
    let keys = tokio::spawn(create_keys(base.clone(), ann.access_token.clone(), tenant, 4, Duration::from_secs(3)));
    let renames = {
        let (base, token) = (base.clone(), ann.access_token.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut acknowledged = Vec::new();
            for n in 0.. {
                let name = format!("name-{n}");
                let sent = client
                    .patch(format!("{base}/v1/tenants/{tenant}"))
                    .bearer_auth(&token)
                    .json(&json!({ "name": name }))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 200 => acknowledged.push(name),
                    _ => break,
                }
            }
            acknowledged
        })
    };
    tokio::time::sleep(Duration::from_millis(1200)).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let ledger = keys.await.unwrap();
    let renamed = renames.await.unwrap();
    assert!(!ledger.acknowledged.is_empty() && !renamed.is_empty(), "no load reached the API before the kill");

    let stored = keys_and_their_audit_rows_match(&app.db, tenant).await;
    for id in &ledger.acknowledged {
        assert!(stored.contains(id), "the acknowledged key {id} is gone");
    }
    // The renames: every audit row's `from` is the previous row's `to`, and the last `to` is the tenant's name. A
    // rename killed before its commit is in neither place; one that committed is in both.
    let superuser = app.db.superuser().await;
    let chain = superuser
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            format!(
                "SELECT metadata FROM audit_logs WHERE tenant_id = '{tenant}' AND action = 'tenant.update'
                  ORDER BY created_at, id"
            ),
        ))
        .await
        .unwrap();
    let mut name = "acme".to_owned();
    for row in &chain {
        let metadata: Value = row.try_get_by_index(0).unwrap();
        assert_eq!(metadata["name"]["from"], name.as_str(), "a rename without its audit row");
        name = metadata["name"]["to"].as_str().unwrap().to_owned();
    }
    let current = ids(superuser, &format!("SELECT name FROM tenants WHERE id = '{tenant}'")).await;
    assert_eq!(current, [name.clone()], "the tenant's name is not the last audited one");
    assert!(chain.len() >= renamed.len(), "an acknowledged rename is gone");

    // A new process serves on the same data.
    let mut again = spawn_api(&app.db, port);
    wait_live(&base).await;
    let me = reqwest::Client::new()
        .get(format!("{base}/v1/tenants/{tenant}"))
        .bearer_auth(&ann.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    assert_eq!(me.json::<Value>().await.unwrap()["name"], name.as_str());
    again.kill().unwrap();
    again.wait().unwrap();
}
