//! `GET stats` and the counters behind it (issue 12): per product and overall against the known data, exact after
//! every kind of write the sync makes (status and severity changes, deletions, a product removed with its tests, a test
//! moving to another product with its bugs), and the `sync` section's freshness.

use entity::mirror::{BugRow, TestRow};
use entity::{TenantId, TenantTxn};
use serde_json::{Value, json};
use tests::mirror::{KnownData, MirrorFixture, bug_row, ids, test_row, time, try_get};
use tests::sync::SyncFixture;
use tests::testio_sim::{Faults, Shape};

const STALE_REASONS: [&str; 6] =
    ["no_connection", "needs_token", "never_synced", "sync_overdue", "last_sync_failed", "open_gaps"];

/// The `sync` section's reasons, checked against the contract's vocabulary and `stale`.
#[track_caller]
fn stale_reasons(sync: &Value) -> Vec<String> {
    let reasons: Vec<String> = sync["stale_reasons"]
        .as_array()
        .unwrap_or_else(|| panic!("no stale_reasons in {sync}"))
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    for reason in &reasons {
        assert!(STALE_REASONS.contains(&reason.as_str()), "unknown stale reason {reason}: {sync}");
    }
    assert_eq!(sync["stale"], !reasons.is_empty(), "stale iff there is a reason: {sync}");
    reasons
}

/// `GET stats`, `GET products/{id}` of every product and `GET tests/{id}` of every test agree with `data`.
async fn assert_counts(f: &MirrorFixture, data: &KnownData, step: &str) {
    let stats = f.ok("stats").await;
    KnownData::summary(&data.tests, &data.bugs).assert_matches(&stats["overall"], &format!("{step}: overall"));
    let products = stats["products"].as_array().unwrap_or_else(|| panic!("{step}: no products in {stats}"));
    let mut listed: Vec<i64> = products.iter().map(|p| p["product_id"].as_i64().unwrap()).collect();
    listed.sort_unstable();
    let mut expected: Vec<i64> = data.products.iter().map(|p| p.testio_id).collect();
    expected.sort_unstable();
    assert_eq!(listed, expected, "{step}: the products of the stats (every product, with tests or not)");
    for p in &data.products {
        let view = products.iter().find(|v| v["product_id"] == p.testio_id).unwrap();
        assert_eq!(view["name"], p.name.as_str(), "{step}: {view}");
        let expected = KnownData::summary(data.tests_of(p.testio_id), data.bugs_of_product(p.testio_id));
        expected.assert_matches(view, &format!("{step}: stats of product {}", p.testio_id));
        let detail = f.ok(&format!("products/{}", p.testio_id)).await;
        expected.assert_matches(&detail, &format!("{step}: product {}", p.testio_id));
        let listed = f.ok("products?limit=200").await;
        let item = listed["items"].as_array().unwrap().iter().find(|i| i["id"] == p.testio_id).cloned();
        let item = item.unwrap_or_else(|| panic!("{step}: product {} not listed", p.testio_id));
        assert_eq!(
            (&item["tests_total"], &item["bugs_total"]),
            (&json!(expected.tests_total), &json!(expected.bugs_total)),
            "{step}: the product list's totals of {}",
            p.testio_id
        );
    }
    for t in &data.tests {
        let view = f.ok(&format!("tests/{}", t.testio_id)).await;
        assert_eq!(view["product_id"], t.product_id, "{step}: {view}");
        let bugs: Vec<&BugRow> = data.bugs.iter().filter(|b| b.test_id == t.testio_id).collect();
        let summary = &view["bugs"];
        KnownData::summary([], bugs.iter().copied()).assert_bugs(
            &summary["total"],
            &summary["by_severity"],
            &summary["by_status"],
            &summary["auto_accepted"],
            &summary["acceptance_rate"],
            &format!("{step}: test {}", t.testio_id),
        );
    }
    // Behind the API: the counters equal a count of the rows (every tenant), none negative, and every bug's product
    // is its test's.
    let db = &f.app.db;
    let differences = db.count(tests::mirror::COUNTERS_OFF_BY).await;
    assert_eq!(differences, 0, "{step}: testio_stat_counts differs from the rows");
    assert_eq!(db.count("SELECT count(*) FROM testio_stat_counts WHERE n < 0").await, 0, "{step}: negative counter");
    let strays = db
        .count(
            "SELECT count(*) FROM testio_bugs b JOIN testio_tests t
                 ON t.tenant_id = b.tenant_id AND t.testio_id = b.test_id WHERE t.product_id <> b.product_id",
        )
        .await;
    assert_eq!(strays, 0, "{step}: a bug's product_id is not its test's");
}

#[tokio::test]
async fn stats_count_the_known_data_per_product_and_overall_and_say_it_is_stale_without_a_connection() {
    let f = MirrorFixture::seeded().await;
    assert_counts(&f, &f.data, "seeded").await;
    let stats = f.ok("stats").await;
    let sync = &stats["sync"];
    assert_eq!(sync["connected"], false, "{sync}");
    for field in ["connection_status", "last_successful_sync_at", "last_sync_status", "verified_through"] {
        assert!(sync.get(field).is_some_and(Value::is_null), "{field} must be null without a connection: {sync}");
    }
    assert_eq!(sync["stale"], true, "{sync}");
    assert!(stale_reasons(sync).contains(&"no_connection".to_owned()), "{sync}");
    // The other tenant's statistics are its own.
    let theirs = f.ok_on(f.other, "stats").await;
    KnownData::summary(&f.other_data.tests, &f.other_data.bugs).assert_matches(&theirs["overall"], "other tenant");
    assert_eq!(theirs["products"].as_array().unwrap().len(), f.other_data.products.len());
}

/// `row` with `change` applied to its fields and to its `raw` (which the upsert compares).
fn changed_test(row: &TestRow, change: impl FnOnce(&mut TestRow)) -> TestRow {
    let mut row = row.clone();
    change(&mut row);
    let goal = row.raw["goal_text"].as_str().map(str::to_owned);
    let instructions = row.raw["instructions_text"].as_str().map(str::to_owned);
    test_row(
        row.testio_id,
        row.product_id,
        &row.title,
        row.status.as_str(),
        row.testing_type.as_deref(),
        row.start_at,
        row.end_at,
        goal.as_deref(),
        instructions.as_deref(),
    )
}

fn changed_bug(row: &BugRow, change: impl FnOnce(&mut BugRow)) -> BugRow {
    let mut row = row.clone();
    change(&mut row);
    bug_row(
        row.testio_id,
        row.test_id,
        &row.title,
        row.severity.as_deref(),
        row.status.as_deref(),
        row.auto_accepted,
        row.known,
        row.reported_at,
        row.raw["expected_result"].as_str().unwrap_or(""),
        row.raw["actual_result"].as_str().unwrap_or(""),
    )
}

/// Replaces rows of `data` by id.
fn replace_tests(data: &mut KnownData, rows: &[TestRow]) {
    for row in rows {
        let slot = data.tests.iter_mut().find(|t| t.testio_id == row.testio_id).unwrap();
        *slot = row.clone();
    }
}

fn replace_bugs(data: &mut KnownData, rows: &[BugRow]) {
    for row in rows {
        let slot = data.bugs.iter_mut().find(|b| b.testio_id == row.testio_id).unwrap();
        *slot = row.clone();
    }
}

#[tokio::test]
async fn counters_stay_exact_through_updates_deletions_and_moves() {
    let f = MirrorFixture::seeded().await;
    let runtime = f.app.db.connect_runtime().await;
    let begin = || TenantTxn::begin(&runtime, TenantId(f.main));
    let mut data = f.data.clone();

    // Statuses, testing types, severities, auto-acceptance change (known and unknown words, to and from none).
    let tests = vec![
        changed_test(data.test(1001), |t| t.status = testio::model::Word::new("archived")),
        changed_test(data.test(1009), |t| t.status = testio::model::Word::new("running")),
        changed_test(data.test(1004), |t| t.status = testio::model::Word::new("brand_new_status")),
        changed_test(data.test(1012), |t| t.testing_type = Some("rapid".into())),
        changed_test(data.test(1002), |t| t.testing_type = None),
    ];
    let bugs = vec![
        changed_bug(data.bug(5000), |b| {
            b.severity = Some("critical".into());
            b.status = Some("accepted".into());
        }),
        changed_bug(data.bug(5003), |b| b.status = Some("rejected".into())),
        changed_bug(data.bug(5005), |b| b.status = None),
        changed_bug(data.bug(5006), |b| b.severity = None),
        changed_bug(data.bug(5007), |b| b.severity = Some("low".into())),
        changed_bug(data.bug(5001), |b| b.auto_accepted = Some(true)),
        changed_bug(data.bug(5009), |b| b.auto_accepted = None),
    ];
    let txn = begin().await.unwrap();
    let upserted = entity::mirror::upsert_tests(&txn, &tests).await.unwrap();
    assert_eq!(upserted.updated.len(), tests.len(), "every test changed");
    let upserted = entity::mirror::upsert_bugs(&txn, &bugs).await.unwrap();
    assert_eq!(upserted.updated.len(), bugs.len(), "every bug changed");
    txn.commit().await.unwrap();
    replace_tests(&mut data, &tests);
    replace_bugs(&mut data, &bugs);
    assert_counts(&f, &data, "after updates").await;

    // An unchanged re-write changes nothing.
    let txn = begin().await.unwrap();
    entity::mirror::upsert_tests(&txn, &data.tests).await.unwrap();
    entity::mirror::upsert_bugs(&txn, &data.bugs).await.unwrap();
    txn.commit().await.unwrap();
    assert_counts(&f, &data, "after an identical re-write").await;

    // A test deleted (its bugs go by cascade), the bugs of another deleted.
    let txn = begin().await.unwrap();
    entity::mirror::delete_tests(&txn, &[1003]).await.unwrap();
    entity::mirror::delete_bugs_except(&txn, &[1002], &[]).await.unwrap();
    txn.commit().await.unwrap();
    data.tests.retain(|t| t.testio_id != 1003);
    data.bugs.retain(|b| b.test_id != 1003 && b.test_id != 1002);
    assert_counts(&f, &data, "after deletions").await;

    // A test moves to another product: its bugs' product follows.
    let moved_bugs: Vec<i64> = data.bugs.iter().filter(|b| b.test_id == 1008).map(|b| b.testio_id).collect();
    assert!(!moved_bugs.is_empty());
    let moved = changed_test(data.test(1008), |t| t.product_id = 101);
    let txn = begin().await.unwrap();
    entity::mirror::upsert_tests(&txn, std::slice::from_ref(&moved)).await.unwrap();
    txn.commit().await.unwrap();
    replace_tests(&mut data, &[moved]);
    assert_counts(&f, &data, "after a test moved to another product").await;
    for bug in &moved_bugs {
        assert_eq!(f.ok(&format!("bugs/{bug}")).await["product_id"], 101, "bug {bug} followed its test");
    }
    let of_101 = ids(&f.ok("bugs?product_id=101&limit=200").await);
    assert!(moved_bugs.iter().all(|b| of_101.contains(b)), "the moved bugs are listed under their new product");
    let of_102 = ids(&f.ok("bugs?product_id=102&limit=200").await);
    assert!(moved_bugs.iter().all(|b| !of_102.contains(b)), "the moved bugs left their old product");

    // A product removed with its tests and bugs; a new product with a test and bugs.
    let txn = begin().await.unwrap();
    entity::mirror::delete_products_except(&txn, &[101, 102, 104]).await.unwrap();
    txn.commit().await.unwrap();
    let gone: Vec<i64> = data.tests_of(103).iter().map(|t| t.testio_id).collect();
    data.products.retain(|p| p.testio_id != 103);
    data.bugs.retain(|b| !gone.contains(&b.test_id));
    data.tests.retain(|t| t.product_id != 103);
    assert_counts(&f, &data, "after a product was removed").await;
    assert_eq!(f.app.get_mirror(&f.owner, f.main, "products/103").await.status(), 404);
    let counters_of_103 =
        f.app.db.count("SELECT count(*) FROM testio_stat_counts WHERE product_id = 103 AND n <> 0").await;
    assert_eq!(counters_of_103, 0, "the removed product's counters went with it");

    let fresh = KnownData {
        products: KnownData::main().products.into_iter().filter(|p| p.testio_id == 103).collect(),
        tests: vec![test_row(1100, 103, "Back again", "running", Some("focused"), None, None, None, None)],
        bugs: vec![
            bug_row(5100, 1100, "New bug", Some("high"), Some("accepted"), Some(true), None, None, "", ""),
            bug_row(5101, 1100, "Newer bug", Some("visual"), Some("rejected"), Some(false), Some(true), None, "", ""),
        ],
    };
    fresh.write(&f.app.db, f.main).await;
    data.products.extend(fresh.products);
    data.tests.extend(fresh.tests);
    data.bugs.extend(fresh.bugs);
    assert_counts(&f, &data, "after a product came back").await;

    // The other tenant, with the same TestIO ids, was never touched.
    let theirs = f.ok_on(f.other, "stats").await;
    KnownData::summary(&f.other_data.tests, &f.other_data.bugs).assert_matches(&theirs["overall"], "other tenant");
    runtime.close().await.unwrap();
}

async fn stats(f: &SyncFixture) -> Value {
    try_get(&f.app, &f.owner, f.tenant, "stats").await.unwrap()
}

#[tokio::test]
async fn the_sync_section_says_when_the_data_is_fresh_and_why_it_is_stale() {
    let f = SyncFixture::connected(Shape { products: 2, tests_per_product: 5, bugs_per_test: 2 }).await;
    // Connected, never synced.
    let before = stats(&f).await;
    let sync = &before["sync"];
    assert_eq!((&sync["connected"], &sync["connection_status"]), (&json!(true), &json!("active")), "{sync}");
    assert!(sync["last_successful_sync_at"].is_null(), "{sync}");
    assert!(stale_reasons(sync).contains(&"never_synced".to_owned()), "{sync}");
    assert_eq!(before["overall"]["tests_total"], 0);

    // After a successful sync: the counts are TestIO's, the run is named, nothing says the data is out of date.
    let run = f.sync(false).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let after = stats(&f).await;
    let sync = &after["sync"];
    assert_eq!(after["overall"]["tests_total"], 10, "{after}");
    assert_eq!(after["overall"]["bugs_total"], 20, "{after}");
    assert_eq!(sync["last_sync_status"], "succeeded", "{sync}");
    let finished = time(&run["finished_at"]).unwrap();
    let last = time(&sync["last_successful_sync_at"]).unwrap_or_else(|| panic!("no last_successful_sync_at: {sync}"));
    assert!((last - finished).num_seconds().abs() <= 1, "last_successful_sync_at {last} is not the run's {finished}");
    let reasons = stale_reasons(sync);
    for reason in ["no_connection", "needs_token", "never_synced", "last_sync_failed"] {
        assert!(!reasons.contains(&reason.to_owned()), "{reason} after a successful sync: {sync}");
    }
    assert_eq!(sync["verified_through"], run["verified_through"], "{sync}");

    // A malformed bug: the run is partial and leaves a gap open, which makes the data stale until a sync reads it.
    let (bug, test) = f.truth().bugs.iter().next().map(|(id, b)| (*id, b.0)).unwrap();
    let malformed = json!({ "id": bug, "title": 7, "test": { "id": test } });
    f.sim.set_faults(Faults { bug_overrides: [(bug, malformed)].into_iter().collect(), ..Default::default() });
    let partial = f.sync(true).await;
    assert_eq!(partial["status"], "partial", "{partial}");
    let gapped = stats(&f).await;
    assert!(stale_reasons(&gapped["sync"]).contains(&"open_gaps".to_owned()), "{}", gapped["sync"]);
    assert!(
        gapped["sync"]["verified_through"].is_null(),
        "nothing is verified while a gap is open: {}",
        gapped["sync"]
    );
    f.sim.set_faults(Faults::default());
    let healed = f.sync(false).await;
    assert_eq!(healed["status"], "succeeded", "{healed}");
    let healed = stats(&f).await;
    assert!(!stale_reasons(&healed["sync"]).contains(&"open_gaps".to_owned()), "{}", healed["sync"]);
    let last = time(&healed["sync"]["last_successful_sync_at"]).unwrap();

    // The token is refused: the data is kept, and stale.
    f.sim.revoke(&f.token);
    let failed = f.sync(false).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let refused = stats(&f).await;
    let sync = &refused["sync"];
    assert_eq!(sync["connection_status"], "needs_token", "{sync}");
    assert_eq!(sync["last_sync_status"], "failed", "{sync}");
    assert_eq!(time(&sync["last_successful_sync_at"]), Some(last), "{sync}");
    assert_eq!(sync["stale"], true, "{sync}");
    let reasons = stale_reasons(sync);
    assert!(reasons.contains(&"needs_token".to_owned()), "{sync}");
    assert!(reasons.contains(&"last_sync_failed".to_owned()), "{sync}");
    assert_eq!(refused["overall"]["tests_total"], 10, "the data is kept");

    // Disconnected: no connection.
    assert_eq!(f.app.delete_connection(&f.owner, f.tenant).await.status(), 204);
    let gone = stats(&f).await;
    assert_eq!(gone["sync"]["connected"], false, "{gone}");
    assert!(stale_reasons(&gone["sync"]).contains(&"no_connection".to_owned()), "{gone}");
}
