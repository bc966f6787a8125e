//! Cursor paging of the query API (issue 12) while a sync writes: a client walking `GET tests` page by page, sorted by
//! keys the changes leave alone (title, end_at, start_at), sees every test that existed before the walk exactly once,
//! never a test twice, and the pages in order, while TestIO's data changes (new tests on top and deep in the lists,
//! statuses moving on, bugs coming and going) and incremental and full syncs run concurrently.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::Value;
use tests::mirror::{query, try_get};
use tests::sync::SyncFixture;
use tests::testio_sim::Shape;

/// (title, start_at, end_at) of each mirrored test, read as the superuser.
async fn keys(f: &SyncFixture) -> BTreeMap<i64, (String, Option<DateTime<Utc>>, Option<DateTime<Utc>>)> {
    let rows = f
        .app
        .db
        .superuser()
        .await
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT testio_id, title, start_at, end_at FROM testio_tests WHERE tenant_id = $1",
            [f.tenant.into()],
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            let id: i64 = r.try_get("", "testio_id").unwrap();
            (
                id,
                (r.try_get("", "title").unwrap(), r.try_get("", "start_at").unwrap(), r.try_get("", "end_at").unwrap()),
            )
        })
        .collect()
}

/// Walks `tests?pairs` through `next_cursor`, pausing between pages so that syncs land in the middle of the walk.
async fn walk(f: &SyncFixture, pairs: &[(&str, &str)], limit: usize) -> Vec<Value> {
    let limit_text = limit.to_string();
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut all = pairs.to_vec();
        all.push(("limit", &limit_text));
        if let Some(cursor) = &cursor {
            all.push(("cursor", cursor));
        }
        let path = query("tests", &all);
        let page = try_get(&f.app, &f.owner, f.tenant, &path).await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let page_items = page["items"].as_array().unwrap();
        assert!(page_items.len() <= limit, "GET {path}: {} items", page_items.len());
        items.extend(page_items.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// A sort key of the walk, from the keys read as the superuser (a missing timestamp is +infinity).
fn key_of(sort: &str, k: &(String, Option<DateTime<Utc>>, Option<DateTime<Utc>>)) -> (bool, String) {
    let time = |t: &Option<DateTime<Utc>>| match t {
        None => (true, String::new()),
        Some(t) => (false, format!("{:020}", t.timestamp_micros() + 10_i64.pow(17))),
    };
    match sort.trim_start_matches('-') {
        "title" => (false, k.0.clone()),
        "start_at" => time(&k.1),
        "end_at" => time(&k.2),
        other => panic!("no sort {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_paging_while_syncs_write_sees_every_unchanged_test_once() {
    let f = Arc::new(SyncFixture::connected(Shape { products: 3, tests_per_product: 100, bugs_per_test: 1 }).await);
    let first = f.sync(false).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let before = keys(&f).await;
    assert_eq!(before.len(), 300);
    let products: Vec<i64> = f.truth().products.keys().copied().collect();

    // The writer: TestIO changes, then a sync (every third one full), until the walks are done.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn({
        let (f, stop, products) = (f.clone(), stop.clone(), products.clone());
        async move {
            let worker = tests::sync::build_worker(&f.worker_settings()).await;
            let mut runs = Vec::new();
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                f.sim.modify(&f.token, |a| {
                    for step in 0..3 {
                        a.evolve(round * 10 + step);
                    }
                    let product = products[(round as usize) % products.len()];
                    a.insert_test_at(product, 20 + (round as usize * 7) % 60, "archived");
                });
                let run = f.sync_tenant_on(&worker, f.tenant, round.is_multiple_of(3)).await;
                runs.push(run["status"].as_str().unwrap_or("").to_owned());
            }
            runs
        }
    });

    let walked = std::time::Instant::now();
    let mut seen_by_walk = Vec::new();
    let walks: [(&[(&str, &str)], usize); 4] = [
        (&[("sort", "title")], 10),
        (&[("sort", "-end_at")], 12),
        (&[("sort", "start_at"), ("product_id", "10000002")], 4),
        (&[("sort", "-title"), ("product_id", "10000001,10000003")], 8),
    ];
    let mut failures = Vec::new();
    for (pairs, limit) in walks {
        let items = walk(&f, pairs, limit).await;
        let ids: Vec<i64> = items.iter().map(|i| i["id"].as_i64().unwrap()).collect();
        seen_by_walk.push((pairs, limit, ids));
    }
    stop.store(true, Ordering::Relaxed);
    let runs = writer.await.unwrap();
    eprintln!("{} syncs during the walks ({:?} after the first sync)", runs.len(), walked.elapsed());
    let after = keys(&f).await;

    for (pairs, limit, ids) in &seen_by_walk {
        let what = format!("tests?{pairs:?} at limit {limit}");
        let sort = pairs[0].1;
        let product_filter: Option<Vec<i64>> = pairs
            .iter()
            .find(|(k, _)| *k == "product_id")
            .map(|(_, v)| v.split(',').map(|p| p.parse().unwrap()).collect());
        let mut counts: HashMap<i64, usize> = HashMap::new();
        for id in ids {
            *counts.entry(*id).or_default() += 1;
        }
        let twice: Vec<i64> = counts.iter().filter(|(_, n)| **n > 1).map(|(id, _)| *id).collect();
        if !twice.is_empty() {
            failures.push(format!("{what}: seen more than once: {twice:?}"));
        }
        // Every test of the filter that existed before the walk, with the same key after it, was seen.
        let truth = f.truth();
        let in_filter =
            |id: &i64| product_filter.as_ref().is_none_or(|ps| truth.tests.get(id).is_some_and(|t| ps.contains(&t.0)));
        let missed: Vec<i64> = before
            .iter()
            .filter(|(id, k)| after.get(id) == Some(k) && in_filter(id))
            .map(|(id, _)| *id)
            .filter(|id| !counts.contains_key(id))
            .collect();
        if !missed.is_empty() {
            failures
                .push(format!("{what}: {} tests that existed throughout were never seen: {missed:?}", missed.len()));
        }
        let ghosts: Vec<i64> = ids.iter().filter(|id| !after.contains_key(id)).copied().collect();
        if !ghosts.is_empty() {
            failures.push(format!("{what}: seen but not in the mirror: {ghosts:?}"));
        }
        // The walk is in order (the keys did not change).
        let keyed: Vec<((bool, String), i64)> =
            ids.iter().filter_map(|id| after.get(id).map(|k| (key_of(sort, k), *id))).collect();
        let mut sorted = keyed.clone();
        sorted.sort();
        if sort.starts_with('-') {
            sorted.reverse();
        }
        if keyed != sorted {
            failures.push(format!("{what}: the pages are out of order"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The walks did run while the data changed.
    assert!(runs.len() >= 2, "only {} syncs ran during the walks: {runs:?}", runs.len());
    assert!(runs.iter().all(|s| s == "succeeded"), "{runs:?}");
    assert!(after.len() > before.len(), "no new test was mirrored during the walks");
    assert_eq!(
        after.iter().filter(|(id, k)| before.get(id) == Some(k)).count(),
        before.len(),
        "the walks' keys were left alone by the changes"
    );
}
