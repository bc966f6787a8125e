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
        let run: Value = f.app.get_sync_run(&f.owner, tenant, id).await.json().await.unwrap();
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
    let first = f.app.post_sync_run(&f.owner, f.tenant, json!({ "full": true })).await;
    assert_eq!(first.status(), 202);
    let location = first.headers()["location"].to_str().unwrap().to_owned();
    let first: Value = first.json().await.unwrap();
    assert_eq!(location, tests::app::sync_run_path(f.tenant, first["id"].as_str().unwrap()));
    assert_eq!(first["status"], "queued");
    assert_eq!(first["trigger"], "connection", "connecting already queued a run; asking again finds it");
    let again: Value = f.app.post_sync_run(&f.owner, f.tenant, json!({})).await.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);

    let stop = CancellationToken::new();
    let worker = worker::Worker::build(&f.worker_settings(), stop.clone()).await.unwrap();
    let handle = tokio::spawn(worker.run());
    let done = wait_for_run(&f, f.tenant, first["id"].as_str().unwrap(), "succeeded").await;
    assert_eq!(done["tests"]["new"], 3);
    assert!(done["duration_ms"].as_i64().unwrap() >= 0);

    // A new request now queues a new run, which the running worker picks up too.
    let next = f.app.post_sync_run(&f.owner, f.tenant, json!({})).await;
    let request_id = next.headers()["x-request-id"].to_str().unwrap().to_owned();
    let next: Value = next.json().await.unwrap();
    assert_ne!(next["id"], first["id"]);
    assert_eq!(next["trigger"], "api");
    wait_for_run(&f, f.tenant, next["id"].as_str().unwrap(), "succeeded").await;
    stop.cancel();
    handle.await.unwrap().unwrap();

    let list: Value = f.app.get_sync_runs(&f.owner, f.tenant, &[]).await.json().await.unwrap();
    let ids: Vec<&Value> = list.as_array().unwrap().iter().map(|r| &r["id"]).collect();
    assert_eq!(ids, [&next["id"], &first["id"]], "newest first");
    let before = next["id"].as_str().unwrap();
    let page: Value =
        f.app.get_sync_runs(&f.owner, f.tenant, &[("limit", "1"), ("before", before)]).await.json().await.unwrap();
    assert_eq!(page[0]["id"], first["id"]);
    assert_eq!(f.app.get_sync_runs(&f.owner, f.tenant, &[("limit", "0")]).await.status(), 400);
    let unknown = f.app.get_sync_run(&f.owner, f.tenant, uuid::Uuid::now_v7()).await;
    assert_eq!(unknown.status(), 404);
    // Every request is audited, by its request id: the two that found the queued run (`created: false`), and the one
    // that queued a new run.
    let audit = f.app.audit_log(f.tenant).await;
    let [joined, joined_again, requested] = audit.of("sync_run.request")[..] else {
        panic!("three sync_run.request rows expected: {audit:?}")
    };
    for row in [joined, joined_again] {
        assert_eq!(
            (row.target_id.as_deref(), &row.metadata["created"]),
            (first["id"].as_str(), &json!(false)),
            "{row:?}"
        );
    }
    assert_eq!((joined.metadata["full"].as_bool(), joined_again.metadata["full"].as_bool()), (Some(true), Some(false)));
    assert_eq!((requested.outcome.as_str(), requested.actor_id), ("success", Some(f.owner.id)), "{requested:?}");
    assert_eq!(requested.target_id.as_deref(), next["id"].as_str());
    assert_eq!(requested.metadata["created"], json!(true));
    assert_eq!(requested.request_id.as_deref(), Some(request_id.as_str()), "{requested:?}");
}

#[tokio::test]
async fn viewers_see_runs_but_cannot_request_them() {
    let f = SyncFixture::connected(TINY).await;
    let viewer = f.app.add_member(&f.owner, f.tenant, "viewer@example.com", "viewer").await;
    // The run queued by connecting is done, so that a run queued by the viewer's request would be a new one.
    assert_eq!(f.sync(false).await["status"], "succeeded");
    let runs: Value = f.app.get_sync_runs(&f.owner, f.tenant, &[]).await.json().await.unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
    let audit_rows = f.app.audit_log(f.tenant).await.len();

    let refused = f.app.post_sync_run(&viewer, f.tenant, json!({ "full": true })).await;
    assert_eq!(refused.status(), 403);
    assert_eq!(refused.json::<Value>().await.unwrap()["code"], "forbidden");
    let seen = f.app.get_sync_runs(&viewer, f.tenant, &[]).await;
    assert_eq!(seen.status(), 200);
    assert_eq!(seen.json::<Value>().await.unwrap(), runs, "the viewer sees the runs, and the refusal queued none");
    let one = f.app.get_sync_run(&viewer, f.tenant, runs[0]["id"].as_str().unwrap()).await;
    assert_eq!(one.status(), 200);
    assert_eq!(one.json::<Value>().await.unwrap()["status"], "succeeded");
    let queued = format!("SELECT count(*) FROM sync_runs WHERE tenant_id = '{}' AND status = 'queued'", f.tenant);
    assert_eq!(f.app.db.count(&queued).await, 0, "the refused request queued a run");
    assert_eq!(f.app.audit_log(f.tenant).await.len(), audit_rows, "the refused request was audited as done");
}

#[tokio::test]
async fn three_workers_sync_every_tenant_and_never_one_tenant_twice_at_once() {
    let f = SyncFixture::connected(TINY).await;
    let db = &f.app.db;
    let mut tenants = vec![(f.tenant, f.token.clone())];
    for i in 0..11 {
        let tenant = f.app.create_tenant(&f.owner, &format!("tenant-{i}")).await;
        let token = format!("token-tenant-{i:04}");
        f.sim.add_account(&token, Account::generate(10 + i, TINY));
        assert_eq!(f.connect(tenant, &token).await.status(), 200);
        tenants.push((tenant, token));
    }
    // Slow answers, so that a sync takes several of them; every worker is built before any starts, so that each
    // finds due tenants at its first look (one worker runs at most two at once: it cannot take them all).
    f.sim.set_faults(tests::testio_sim::Faults { delay: Some(Duration::from_millis(25)), ..Default::default() });
    let stop = CancellationToken::new();
    let mut workers = Vec::new();
    for n in 0..3 {
        let mut settings = f.worker_settings();
        settings.name = Some(format!("worker-{n}"));
        settings.concurrency = 2;
        workers.push(worker::Worker::build(&settings, stop.clone()).await.unwrap());
    }
    let handles: Vec<_> = workers.into_iter().map(|worker| tokio::spawn(worker.run())).collect();
    db.wait_until_count("SELECT count(DISTINCT worker) FROM sync_runs", 3).await;
    let succeeded = "SELECT count(DISTINCT tenant_id) FROM sync_runs WHERE status = 'succeeded'";
    db.wait_until_count(succeeded, 12).await;
    stop.cancel();
    for h in handles {
        h.await.unwrap().unwrap();
    }
    assert_eq!(db.count(succeeded).await, 12);
    let overlapping = tests::sync::overlapping_runs(db).await;
    assert_eq!(overlapping, 0, "two runs of one tenant overlapped");
    let workers = db.count("SELECT count(DISTINCT worker) FROM sync_runs WHERE status = 'succeeded'").await;
    assert_eq!(workers, 3, "the work was not shared");
    let busiest = db
        .count(
            "SELECT max(c) FROM (SELECT count(*) AS c FROM sync_runs a JOIN sync_runs b
                ON a.worker = b.worker AND b.started_at <= a.started_at AND b.finished_at > a.started_at
             GROUP BY a.id) x",
        )
        .await;
    assert!(busiest <= 2, "a worker ran {busiest} syncs at once with WORKER_CONCURRENCY=2");
    for (tenant, token) in &tenants {
        assert_same(&tests::sync::Snapshot::of_mirror(db, *tenant).await, &f.truth_of(token));
    }
}

#[tokio::test]
async fn the_next_sync_is_due_after_the_interval_of_the_tenants_plan() {
    let f = SyncFixture::connected(TINY).await;
    let db = f.app.db.superuser().await;
    let tenant = entity::TenantId(f.tenant);
    for (plan, secs) in [("free", 3600), ("pro", 900), ("enterprise", 300)] {
        db.execute_unprepared(&format!("UPDATE tenants SET plan = '{plan}' WHERE id = '{}'", f.tenant)).await.unwrap();
        let before = chrono::Utc::now();
        assert_eq!(f.sync(false).await["status"], "succeeded");
        let due = entity::sync::schedule::due_at(db, tenant).await.unwrap().unwrap();
        let wait = (due - before).num_seconds();
        assert!((secs - 5..=secs + 5).contains(&wait), "{plan}: next sync in {wait} s, expected {secs} s");
    }
}
