//! Sync runs through the API, and workers running the scheduling loop: requested runs are not duplicated, every due
//! tenant is synced, and no tenant is synced by two workers at once.

use std::time::Duration;

use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use tests::sync::{SyncFixture, assert_same};
use tests::testio_sim::{Account, Shape};
use tokio_util::sync::CancellationToken;

const TINY: Shape = Shape { products: 1, tests_per_product: 3, bugs_per_test: 1 };

async fn wait_for_run(f: &SyncFixture, tenant: uuid::Uuid, id: &str, status: &str) -> Value {
    for _ in 0..200 {
        let run: Value = f
            .app
            .get_as(&format!("/v1/tenants/{tenant}/sync-runs/{id}"), &f.owner.access_token)
            .await
            .json()
            .await
            .unwrap();
        if run["status"] == status {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {id} never became {status}");
}

#[tokio::test]
async fn a_requested_run_is_queued_once_and_picked_up_by_a_worker() {
    let f = SyncFixture::connected(TINY).await;
    let runs = format!("/v1/tenants/{}/sync-runs", f.tenant);
    let first = f.app.post_as(&runs, &f.owner.access_token, json!({ "full": true })).await;
    assert_eq!(first.status(), 202);
    let location = first.headers()["location"].to_str().unwrap().to_owned();
    let first: Value = first.json().await.unwrap();
    assert_eq!(location, format!("{runs}/{}", first["id"].as_str().unwrap()));
    assert_eq!(first["status"], "queued");
    assert_eq!(first["trigger"], "connection", "connecting already queued a run; asking again finds it");
    let again: Value = f.app.post_as(&runs, &f.owner.access_token, json!({})).await.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);

    let stop = CancellationToken::new();
    let worker = worker::Worker::build(&f.worker_settings(), stop.clone()).await.unwrap();
    let handle = tokio::spawn(worker.run());
    let done = wait_for_run(&f, f.tenant, first["id"].as_str().unwrap(), "succeeded").await;
    assert_eq!(done["tests"]["new"], 3);
    assert!(done["duration_ms"].as_i64().unwrap() >= 0);

    // A new request now queues a new run, which the running worker picks up too.
    let next: Value = f.app.post_as(&runs, &f.owner.access_token, json!({})).await.json().await.unwrap();
    assert_ne!(next["id"], first["id"]);
    assert_eq!(next["trigger"], "api");
    wait_for_run(&f, f.tenant, next["id"].as_str().unwrap(), "succeeded").await;
    stop.cancel();
    handle.await.unwrap().unwrap();

    let list: Value = f.app.get_as(&runs, &f.owner.access_token).await.json().await.unwrap();
    let ids: Vec<&Value> = list.as_array().unwrap().iter().map(|r| &r["id"]).collect();
    assert_eq!(ids, [&next["id"], &first["id"]], "newest first");
    let page: Value = f
        .app
        .get_as(&format!("{runs}?limit=1&before={}", next["id"].as_str().unwrap()), &f.owner.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page[0]["id"], first["id"]);
    assert_eq!(f.app.get_as(&format!("{runs}?limit=0"), &f.owner.access_token).await.status(), 400);
    let unknown = f.app.get_as(&format!("{runs}/{}", uuid::Uuid::now_v7()), &f.owner.access_token).await;
    assert_eq!(unknown.status(), 404);
    let audit = f.app.audit_actions(f.tenant).await;
    assert!(audit.contains(&("sync_run.request".into(), "success".into())), "{audit:?}");
}

#[tokio::test]
async fn viewers_see_runs_but_cannot_request_them() {
    let f = SyncFixture::connected(TINY).await;
    let viewer = f.app.add_member(&f.owner, f.tenant, "viewer@example.com", "viewer").await;
    let runs = format!("/v1/tenants/{}/sync-runs", f.tenant);
    assert_eq!(f.app.post_as(&runs, &viewer.access_token, json!({})).await.status(), 403);
    assert_eq!(f.app.get_as(&runs, &viewer.access_token).await.status(), 200);
}

#[tokio::test]
async fn three_workers_sync_every_tenant_and_never_one_tenant_twice_at_once() {
    let f = SyncFixture::connected(TINY).await;
    let mut tenants = vec![(f.tenant, f.token.clone())];
    for i in 0..11 {
        let tenant = f.app.create_tenant(&f.owner, &format!("tenant-{i}")).await;
        let token = format!("token-tenant-{i:04}");
        f.sim.add_account(&token, Account::generate(10 + i, TINY));
        assert_eq!(f.connect(tenant, &token).await.status(), 200);
        tenants.push((tenant, token));
    }
    // Slow answers, so that every worker is up before the work is done.
    f.sim.set_faults(tests::testio_sim::Faults { delay: Some(Duration::from_millis(25)), ..Default::default() });
    let stop = CancellationToken::new();
    let mut handles = Vec::new();
    for n in 0..3 {
        let mut settings = f.worker_settings();
        settings.name = Some(format!("worker-{n}"));
        settings.concurrency = 2;
        let worker = worker::Worker::build(&settings, stop.clone()).await.unwrap();
        handles.push(tokio::spawn(worker.run()));
    }
    let db = f.app.db.connect_superuser().await;
    let count = |sql: &'static str| {
        let db = db.clone();
        async move {
            let row = db.query_one_raw(sea_orm::Statement::from_string(sea_orm::DbBackend::Postgres, sql)).await;
            row.unwrap().unwrap().try_get::<i64>("", "n").unwrap()
        }
    };
    for _ in 0..400 {
        if count("SELECT count(DISTINCT tenant_id) AS n FROM sync_runs WHERE status = 'succeeded'").await == 12 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    for h in handles {
        h.await.unwrap().unwrap();
    }
    assert_eq!(count("SELECT count(DISTINCT tenant_id) AS n FROM sync_runs WHERE status = 'succeeded'").await, 12);
    let overlapping = count(
        "SELECT count(*) AS n FROM sync_runs a JOIN sync_runs b
           ON a.tenant_id = b.tenant_id AND a.id < b.id
          AND a.started_at < b.finished_at AND b.started_at < a.finished_at",
    )
    .await;
    assert_eq!(overlapping, 0, "two runs of one tenant overlapped");
    let workers = count("SELECT count(DISTINCT worker) AS n FROM sync_runs WHERE status = 'succeeded'").await;
    assert!(workers >= 2, "the work was not shared: {workers} worker(s)");
    let busiest = count(
        "SELECT max(c) AS n FROM (SELECT count(*) AS c FROM sync_runs a JOIN sync_runs b
            ON a.worker = b.worker AND b.started_at <= a.started_at AND b.finished_at > a.started_at
         GROUP BY a.id) x",
    )
    .await;
    assert!(busiest <= 2, "a worker ran {busiest} syncs at once with WORKER_CONCURRENCY=2");
    for (tenant, token) in &tenants {
        assert_same(&tests::sync::Snapshot::of_mirror(&f.app.db, *tenant).await, &f.truth_of(token));
    }
}

#[tokio::test]
async fn the_next_sync_is_due_after_the_interval_of_the_tenants_plan() {
    let f = SyncFixture::connected(TINY).await;
    let db = f.app.db.connect_superuser().await;
    let tenant = entity::TenantId(f.tenant);
    for (plan, secs) in [("free", 3600), ("pro", 900), ("enterprise", 300)] {
        db.execute_unprepared(&format!("UPDATE tenants SET plan = '{plan}' WHERE id = '{}'", f.tenant)).await.unwrap();
        let before = chrono::Utc::now();
        assert_eq!(f.sync(false).await["status"], "succeeded");
        let due = entity::sync_schedule::due_at(&db, tenant).await.unwrap().unwrap();
        let wait = (due - before).num_seconds();
        assert!((secs - 5..=secs + 5).contains(&wait), "{plan}: next sync in {wait} s, expected {secs} s");
    }
}
