//! The mirror equals the simulator's truth after syncs, changes and faults, and a sync touches only its own tenant.

use chrono::Duration;
use serde_json::json;
use tests::sync::{Snapshot, SyncFixture, assert_same};
use tests::testio_sim::{Account, Faults, Shape};

const SMALL: Shape = Shape { products: 2, tests_per_product: 60, bugs_per_test: 2 };

#[tokio::test]
async fn a_first_sync_mirrors_products_tests_and_bugs_exactly() {
    let f = SyncFixture::connected(SMALL).await;
    let run = f.sync(false).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["trigger"], "connection", "the sync took the run queued by connecting: {run}");
    assert_eq!(run["tests"]["new"], 120);
    assert_eq!(run["bugs"]["new"], 240);
    assert_same(&f.mirror().await, &f.truth());
}

#[tokio::test]
async fn the_read_entities_of_the_mirror_see_the_synced_rows() {
    let f = SyncFixture::connected(Shape { products: 2, tests_per_product: 3, bugs_per_test: 2 }).await;
    f.sync(false).await;
    let runtime = f.app.db.connect_runtime().await;
    let txn = entity::TenantTxn::begin(&runtime, entity::TenantId(f.tenant)).await.unwrap();
    let products = entity::mirror::products::all(&txn).await.unwrap();
    let tests = entity::mirror::tests::all(&txn).await.unwrap();
    let bugs = entity::mirror::bugs::all(&txn).await.unwrap();
    let read = Snapshot {
        products: products.iter().map(|p| (p.testio_id, p.name.clone())).collect(),
        tests: tests
            .iter()
            .map(|t| (t.testio_id, (t.product_id, t.status.clone(), t.title.clone(), t.end_at)))
            .collect(),
        bugs: bugs
            .iter()
            .map(|b| {
                let (status, severity) = (b.status.clone(), b.severity.clone());
                (b.testio_id, (b.test_id, status.unwrap_or_default(), severity.unwrap_or_default()))
            })
            .collect(),
    };
    assert_eq!(read, f.mirror().await);
    assert_same(&read, &f.truth());
    assert!(tests.iter().all(|t| t.bugs_synced_at.is_some() && t.raw["id"] == t.testio_id), "{tests:?}");
}

#[tokio::test]
async fn environment_credentials_are_not_stored() {
    let f = SyncFixture::connected(Shape { products: 1, tests_per_product: 3, bugs_per_test: 0 }).await;
    f.sync(false).await;
    let db = f.app.db.superuser().await;
    use sea_orm::ConnectionTrait;
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT count(*) AS n FROM testio_tests WHERE raw::text LIKE '%s3cret-env-password%' \
             OR raw->'test_environment' ? 'username' OR raw->'test_environment' ? 'password'",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get::<i64>("", "n").unwrap(), 0);
}

#[tokio::test]
async fn an_incremental_sync_with_nothing_new_costs_at_most_two_list_requests_per_product_and_its_slice() {
    let f = SyncFixture::connected(Shape { products: 3, tests_per_product: 400, bugs_per_test: 1 }).await;
    f.sync(false).await;
    let before = f.sim.list_requests();
    let run = f.sync(false).await;
    let lists = f.sim.list_requests() - before;
    // 400 tests are 9 pages of 50; at the default interval and cycle, the slice is one page a product.
    assert!(lists <= (2 + 1) * 3, "{lists} list requests: {run}");
    assert_eq!(run["list_pages_read"], lists, "{run}");
    assert_eq!(run["products_verified"], 3, "every product's slice was read: {run}");
    assert_eq!(run["tests"]["new"], 0);
    assert_eq!(run["tests"]["updated"], 0, "{run}");
    assert_same(&f.mirror().await, &f.truth());
}

#[tokio::test]
async fn changes_of_every_kind_are_mirrored_by_the_next_syncs() {
    let f = SyncFixture::connected(SMALL).await;
    f.sync(false).await;
    let truth = f.truth();
    let products: Vec<i64> = truth.products.keys().copied().collect();
    let mut tests_by_end: Vec<(i64, i64)> = Vec::new();
    f.sim.modify(&f.token, |a| {
        tests_by_end = a.tests_of(products[0]).iter().map(|t| (t.id, t.product_id)).collect();
    });
    let open = truth.tests.iter().find(|(_, t)| t.1 == "running" || t.1 == "waiting").map(|(id, _)| *id);
    f.sim.modify(&f.token, |a| {
        // A new test on top.
        let mut newest = a.tests[&tests_by_end[0].0].clone();
        newest.id = 9_000_001;
        newest.end_at += Duration::hours(1);
        newest.title = "Brand new".into();
        a.tests.insert(newest.id, newest);
        // A new test deep below known ones (an old end_at).
        let mut old = a.tests[&tests_by_end[50].0].clone();
        old.id = 9_000_002;
        old.end_at -= Duration::minutes(1);
        a.tests.insert(old.id, old);
        // A status change of an open test, a title change of a final one (caught by the reconcile).
        if let Some(open) = open {
            a.tests.get_mut(&open).unwrap().status = "archived";
        }
        // A test that moved: its end_at jumps to the top.
        a.tests.get_mut(&tests_by_end[40].0).unwrap().end_at += Duration::days(30);
        // A deleted test (with its bugs) and a deleted bug, a bug status change.
        let gone = tests_by_end[30].0;
        a.tests.remove(&gone);
        a.bugs.retain(|_, b| b.test_id != gone);
        let first_bug = *a.bugs.keys().next().unwrap();
        a.bugs.remove(&first_bug);
        let last_bug = *a.bugs.keys().last().unwrap();
        a.bugs.get_mut(&last_bug).unwrap().status = "accepted";
        // A deleted product.
        let last_product = *a.products.keys().last().unwrap();
        a.products.remove(&last_product);
        a.tests.retain(|_, t| t.product_id != last_product);
        let tests = a.tests.clone();
        a.bugs.retain(|_, b| tests.contains_key(&b.test_id));
    });
    let run = f.sync(false).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    // A full run catches the changes a cheap incremental scan cannot see (a deleted final test and its bugs).
    let run = f.sync(true).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_same(&f.mirror().await, &f.truth());
}

#[tokio::test]
async fn failing_pages_become_gaps_that_a_later_sync_fills() {
    let f = SyncFixture::connected(SMALL).await;
    let product = *f.truth().products.keys().next().unwrap();
    f.sim.set_faults(Faults {
        failing_test_offsets: [(product, 7), (product, 33)].into_iter().collect(),
        bug_batch_limit: Some(4),
        ..Default::default()
    });
    let run = f.sync(false).await;
    assert_eq!(run["status"], "partial", "{run}");
    assert_eq!(run["gaps"]["opened"], 2, "{run}");
    let mirror = f.mirror().await;
    assert_eq!(mirror.tests.len(), 118, "everything but the two unreadable offsets is stored");
    assert_eq!(mirror.bugs.len(), 236, "bug batches were split under the 524 limit");

    f.sim.set_faults(Faults::default());
    let run = f.sync(false).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["gaps"]["resolved"], 2, "{run}");
    assert_same(&f.mirror().await, &f.truth());
}

#[tokio::test]
async fn rate_limits_are_waited_out() {
    let f = SyncFixture::connected(Shape { products: 1, tests_per_product: 10, bugs_per_test: 1 }).await;
    f.sim.set_faults(Faults { rate_limited: Some((2, 1)), ..Default::default() });
    let started = std::time::Instant::now();
    let run = f.sync(false).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(2), "Retry-After was not honoured");
    assert_same(&f.mirror().await, &f.truth());
}

#[tokio::test]
async fn a_revoked_token_stops_the_tenant_until_a_new_one_is_saved_and_keeps_the_data() {
    let f = SyncFixture::connected(Shape { products: 1, tests_per_product: 10, bugs_per_test: 1 }).await;
    f.sync(false).await;
    f.sim.revoke(&f.token);
    let run = f.sync(false).await;
    assert_eq!(run["status"], "failed");
    assert!(run["error"].as_str().unwrap().contains("401"), "{run}");
    let connection: serde_json::Value = f.app.get_connection(&f.owner, f.tenant).await.json().await.unwrap();
    assert_eq!(connection["status"], "needs_token", "{connection}");
    assert_eq!(connection["next_sync_at"], serde_json::Value::Null);
    assert_eq!(f.mirror().await.tests.len(), 10, "the mirror is kept");
    let refused = f.app.post_sync_run(&f.owner, f.tenant, json!({})).await;
    assert_eq!(refused.status(), 409);
    assert!(f.app.audit_log(f.tenant).await.has("testio_connection.needs_token", "failure"));

    // The same account under a new token: syncing resumes.
    let mut account = Account::default();
    f.sim.modify(&f.token, |a| account = a.clone());
    f.sim.add_account("token-acme-0002", account);
    assert_eq!(f.connect(f.tenant, "token-acme-0002").await.status(), 200);
    let tokens_truth = f.truth_of("token-acme-0002");
    let run = f.sync(false).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_same(&f.mirror().await, &tokens_truth);
}

#[tokio::test]
async fn a_sync_never_touches_another_tenants_mirror() {
    let f = SyncFixture::connected(SMALL).await;
    let other_tenant = f.app.create_tenant(&f.owner, "globex").await;
    f.sim.add_account(
        "token-globex-01",
        Account::generate(2, Shape { products: 1, tests_per_product: 5, bugs_per_test: 1 }),
    );
    assert_eq!(f.connect(other_tenant, "token-globex-01").await.status(), 200);
    f.sync_tenant(other_tenant, false).await;
    let other_before = tests::sync::Snapshot::of_mirror(&f.app.db, other_tenant).await;

    f.sync(false).await;
    f.sim.modify(&f.token, |a| {
        a.products.clear();
        a.tests.clear();
        a.bugs.clear();
    });
    let run = f.sync(true).await;
    assert_eq!(run["tests"]["deleted"], 120, "{run}");
    assert_eq!(f.mirror().await.sizes(), (0, 0, 0));
    assert_eq!(tests::sync::Snapshot::of_mirror(&f.app.db, other_tenant).await, other_before);
    assert_same(&other_before, &f.truth_of("token-globex-01"));
}

#[tokio::test]
async fn truncated_responses_are_retried() {
    let f = SyncFixture::connected(Shape { products: 2, tests_per_product: 30, bugs_per_test: 1 }).await;
    f.sim.set_faults(Faults { truncate_responses: 3, ..Default::default() });
    let run = f.sync(false).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_same(&f.mirror().await, &f.truth());
}

#[tokio::test]
async fn malformed_items_become_gaps_and_the_rest_of_the_sync_goes_on() {
    let f = SyncFixture::connected(Shape { products: 1, tests_per_product: 20, bugs_per_test: 2 }).await;
    f.sync(false).await;
    let before = f.mirror().await;
    let truth = f.truth();
    let test_ids: Vec<i64> = truth.tests.keys().copied().collect();
    let bug_ids: Vec<i64> = truth.bugs.keys().copied().collect();
    let mut test_overrides = std::collections::HashMap::new();
    let mut bug_overrides = std::collections::HashMap::new();
    let valid = |id: i64| {
        let mut out = serde_json::Value::Null;
        f.sim.modify(&f.token, |a| {
            let t = &a.tests[&id];
            out = json!({ "id": id, "title": t.title, "status": t.status, "end_at": t.end_at.to_rfc3339(),
                          "start_at": t.start_at.to_rfc3339(), "product": { "id": t.product_id } });
        });
        out
    };
    // A status that is not a word (an unknown word is no gap: see `words_testio_adds_are_mirrored_as_sent`).
    let mut status_not_a_word = valid(test_ids[0]);
    status_not_a_word["status"] = json!({ "name": "teleported" });
    let mut wrong_type = valid(test_ids[1]);
    wrong_type["end_at"] = json!(12345);
    let mut huge = valid(test_ids[2]);
    huge["instructions_text"] = json!("x".repeat(300 * 1024));
    let mut missing_title = valid(test_ids[3]);
    missing_title.as_object_mut().unwrap().remove("title");
    test_overrides.extend([
        (test_ids[0], status_not_a_word),
        (test_ids[1], wrong_type),
        (test_ids[2], huge),
        (test_ids[3], missing_title),
    ]);
    bug_overrides
        .insert(bug_ids[5], json!({ "id": bug_ids[5], "title": 7, "test": { "id": truth.bugs[&bug_ids[5]].0 } }));
    // Meanwhile real changes happen to other items; they must still be mirrored.
    f.sim.modify(&f.token, |a| {
        a.tests.get_mut(&test_ids[10]).unwrap().title = "Renamed".into();
    });
    f.sim.set_faults(Faults { test_overrides, bug_overrides, ..Default::default() });

    let run = f.sync(true).await;
    assert_eq!(run["status"], "partial", "{run}");
    assert_eq!(run["gaps"]["opened"], 5, "{run}");
    let mirror = f.mirror().await;
    for id in &test_ids[..4] {
        assert_eq!(mirror.tests[id], before.tests[id], "an unreadable test kept its mirrored row");
    }
    assert_eq!(mirror.bugs[&bug_ids[5]], before.bugs[&bug_ids[5]]);
    assert_eq!(mirror.tests[&test_ids[10]].2, "Renamed");

    f.sim.set_faults(Faults::default());
    let run = f.sync(false).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["gaps"]["resolved"], 5, "{run}");
    assert_same(&f.mirror().await, &f.truth());
}

#[tokio::test]
async fn words_testio_adds_are_mirrored_as_sent() {
    let f = SyncFixture::connected(Shape { products: 1, tests_per_product: 10, bugs_per_test: 2 }).await;
    f.sync(false).await;
    let truth = f.truth();
    let open = |t: &tests::sync::TestFields| !["archived", "cancelled"].contains(&t.1.as_str());
    let test = truth.tests.iter().find(|(_, t)| open(t)).map(|(id, _)| *id).expect("an open test");
    let bug = truth.bugs.iter().find(|(_, b)| b.0 == test).map(|(id, _)| *id).expect("a bug of it");
    let other_bug = truth.bugs.iter().find(|(id, b)| b.0 == test && **id != bug).map(|(id, _)| *id).unwrap();
    f.sim.modify(&f.token, |a| {
        a.set_test_status(test, "paused");
        a.set_bug_severity(bug, "blocker");
        a.set_bug_status(bug, "in_review");
        a.set_bug_status(other_bug, "duplicate");
    });

    let run = f.sync(false).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["gaps"]["opened"], 0, "{run}");
    let mirror = f.mirror().await;
    assert_eq!(mirror.tests[&test].1, "paused");
    assert_eq!(mirror.bugs[&bug], (test, "in_review".to_owned(), "blocker".to_owned()));
    assert_eq!(mirror.bugs[&other_bug].1, "duplicate");
    assert_same(&mirror, &f.truth());
    let runtime = f.app.db.connect_runtime().await;
    let txn = entity::TenantTxn::begin(&runtime, entity::TenantId(f.tenant)).await.unwrap();
    assert!(entity::sync::open_gaps(&txn).await.unwrap().is_empty());
    assert!(
        entity::mirror::open_tests(&txn).await.unwrap().contains(&test),
        "a status we do not know is not final: the test is still read every run"
    );
    let row = entity::mirror::tests::all(&txn).await.unwrap().into_iter().find(|t| t.testio_id == test).unwrap();
    assert_eq!((row.status.as_str(), row.raw["status"].as_str()), ("paused", Some("paused")));
    drop(txn);

    // The next run finds nothing wrong with those words either, and still follows the paused test.
    f.sim.modify(&f.token, |a| a.set_test_title(test, "Renamed while paused"));
    let run = f.sync(false).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["gaps"]["opened"], 0, "{run}");
    assert_eq!(f.mirror().await.tests[&test].2, "Renamed while paused");

    // Back to words we know.
    f.sim.modify(&f.token, |a| {
        a.set_test_status(test, "running");
        a.set_bug_severity(bug, "critical");
        a.set_bug_status(bug, "accepted");
    });
    let run = f.sync(false).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let mirror = f.mirror().await;
    assert_eq!(mirror.tests[&test].1, "running");
    assert_eq!(mirror.bugs[&bug], (test, "accepted".to_owned(), "critical".to_owned()));
    assert_same(&mirror, &f.truth());
}

#[tokio::test]
async fn a_testio_too_slow_to_answer_fails_the_run_and_loses_nothing() {
    let f = SyncFixture::connected(Shape { products: 1, tests_per_product: 10, bugs_per_test: 1 }).await;
    f.sync(false).await;
    let before = f.mirror().await;
    f.sim.set_faults(Faults { delay: Some(std::time::Duration::from_millis(1500)), ..Default::default() });
    let mut settings = f.worker_settings();
    settings.request_timeout_secs = 1;
    settings.max_attempts = 2;
    let worker = tests::sync::build_worker(&settings).await;
    let finished = worker.sync_tenant(entity::TenantId(f.tenant), false).await.unwrap();
    let run = finished.run.unwrap();
    assert_eq!(run.status, entity::sync_runs::SyncStatus::Failed);
    assert!(run.error.as_deref().unwrap_or_default().contains("timed out"), "{:?}", run.error);
    assert_eq!(f.mirror().await, before, "nothing mirrored was lost");

    f.sim.set_faults(Faults::default());
    assert_eq!(f.sync(false).await["status"], "succeeded");
}

#[tokio::test]
async fn a_reset_drops_the_tenants_mirror_and_rebuilds_it() {
    let f = SyncFixture::connected(Shape { products: 2, tests_per_product: 10, bugs_per_test: 1 }).await;
    f.sync(false).await;
    let worker = tests::sync::build_worker(&f.worker_settings()).await;
    let (dropped, finished) = worker.reset_tenant(entity::TenantId(f.tenant)).await.unwrap();
    assert_eq!((dropped.products, dropped.tests, dropped.bugs), (2, 20, 20));
    let run = finished.run.unwrap();
    assert!(run.full_sync);
    assert_eq!(run.tests_new, 20, "everything was read again");
    assert_same(&f.mirror().await, &f.truth());
    assert!(f.app.audit_log(f.tenant).await.has("mirror.reset", "success"));
}

#[tokio::test]
async fn a_page_that_fails_entirely_stops_that_products_scan_instead_of_walking_it_item_by_item() {
    let f = SyncFixture::connected(Shape { products: 2, tests_per_product: 300, bugs_per_test: 0 }).await;
    let product = *f.truth().products.keys().next().unwrap();
    f.sim.set_faults(Faults { failing_test_offsets: (50..100).map(|o| (product, o)).collect(), ..Default::default() });
    let lists_before = f.sim.list_requests();
    let run = f.sync(false).await;
    assert_eq!(run["status"], "partial", "{run}");
    let lists = f.sim.list_requests() - lists_before;
    assert!(lists < 150, "{lists} list requests: the broken page was walked item by item and beyond");
    let mirror = f.mirror().await;
    let other = mirror.tests.values().filter(|t| t.0 != product).count();
    assert_eq!(other, 300, "the other product was synced in full");

    f.sim.set_faults(Faults::default());
    let run = f.sync(false).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_same(&f.mirror().await, &f.truth());
}

#[tokio::test]
async fn a_product_list_that_cannot_be_trusted_deletes_nothing() {
    let f = SyncFixture::connected(Shape { products: 2, tests_per_product: 5, bugs_per_test: 1 }).await;
    f.sync(false).await;
    let before = f.mirror().await;
    let products: Vec<i64> = before.products.keys().copied().collect();
    // One product comes without a usable id: the list may be missing anything, so nothing is deleted.
    f.sim.set_faults(Faults {
        product_overrides: [(products[0], json!({ "id": "not-a-number", "name": "x" }))].into_iter().collect(),
        ..Default::default()
    });
    f.sim.modify(&f.token, |a| {
        a.products.remove(&products[1]);
        a.tests.retain(|_, t| t.product_id != products[1]);
    });
    let run = f.sync(false).await;
    assert_eq!(run["status"], "partial", "{run}");
    let mirror = f.mirror().await;
    assert_eq!(mirror.products.len(), 2, "no product was deleted on the strength of that list");
    let kept = mirror.tests.values().filter(|t| t.0 == products[0]).count();
    assert_eq!(kept, 5, "the unreadable product's tests are kept");
    // (Open tests of the removed product answered 404 one by one: those deletions are TestIO's own word.)

    // An empty list outside a full run deletes nothing either; a full run believes it.
    f.sim.set_faults(Faults::default());
    f.sim.modify(&f.token, |a| {
        a.products.clear();
        a.tests.clear();
        a.bugs.clear();
    });
    f.sync(false).await;
    assert_eq!(f.mirror().await.products.len(), 2, "an empty list outside a full run deletes no product");
    f.sync(true).await;
    assert_same(&f.mirror().await, &f.truth());
}
