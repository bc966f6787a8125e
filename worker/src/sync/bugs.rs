//! Bugs, read by batches of test ids. Requests of one tenant run `tenant_concurrency` at a time; their results are
//! written as they arrive, about `WRITE_ROWS` bugs a transaction. A batch that times out (524) or comes back unreadable is split
//! in half until it succeeds or is a single test, which then becomes a gap.

use std::collections::HashSet;

use entity::mirror;
use entity::sync::{Gap, GapKey};
use futures_util::StreamExt;
use futures_util::stream;
use serde_json::Value;

use super::{Job, Source, SyncError, batches, rows};
use testio::client::{FetchError, envelope_list};

/// The answer for one batch of test ids (after any splitting).
struct Batch {
    tests: Vec<i64>,
    result: Result<Vec<Value>, FetchError>,
}

/// A 524 (the gateway gave up on a large batch) or any failure a smaller batch may avoid, including a 403/404 that
/// one test of the batch may cause.
fn should_split(e: &FetchError) -> bool {
    matches!(
        e,
        FetchError::Status(500..=599)
            | FetchError::Malformed(_)
            | FetchError::Transport(_)
            | FetchError::TooLarge(_)
            | FetchError::NotFound(_)
    )
}

/// Fetches the bugs of `tests`, splitting on failure.
async fn fetch(source: Source, tests: Vec<i64>) -> Vec<Batch> {
    let mut out = Vec::new();
    let mut pending = vec![tests];
    while let Some(tests) = pending.pop() {
        let ids = tests.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        let result = source.get("bugs", &[("filter_test_cycle_ids", ids)]).await.and_then(|b| envelope_list(b, "bugs"));
        match result {
            Err(e) if should_split(&e) && tests.len() > 1 => {
                let (a, b) = tests.split_at(tests.len() / 2);
                pending.push(b.to_vec());
                pending.push(a.to_vec());
            }
            result => out.push(Batch { tests, result }),
        }
    }
    out
}

pub(super) async fn sync(job: &mut Job<'_>, tests: Vec<i64>) -> Result<(), SyncError> {
    let source = job.source.clone();
    let mut answers = stream::iter(batches(&tests, job.settings.bug_batch_size))
        .map(|batch| fetch(source.clone(), batch))
        .buffer_unordered(job.settings.tenant_concurrency.max(1));
    // Answers are written together, up to WRITE_ROWS bugs a transaction: fewer round trips, same result, since the
    // union of complete answers is a complete answer for the union of their tests.
    let mut tests_pending: Vec<i64> = Vec::new();
    let mut items_pending: Vec<Value> = Vec::new();
    while let Some(batches) = answers.next().await {
        for batch in batches {
            match batch.result {
                Ok(items) => {
                    tests_pending.extend(&batch.tests);
                    items_pending.extend(items);
                }
                Err(e @ (FetchError::Unauthorized | FetchError::Cancelled)) => return Err(SyncError::from_fetch(e)),
                Err(e) => {
                    job.bug_gaps = true;
                    let gaps: Vec<Gap> = batch.tests.iter().map(|t| Gap::bugs(*t, e.to_string())).collect();
                    let txn = job.begin().await?;
                    job.gaps(&txn, &gaps, []).await?;
                    job.commit(txn).await?;
                }
            }
        }
        if items_pending.len() >= WRITE_ROWS || tests_pending.len() >= WRITE_ROWS / 10 {
            store(job, &std::mem::take(&mut tests_pending), std::mem::take(&mut items_pending)).await?;
        }
    }
    if !tests_pending.is_empty() {
        store(job, &tests_pending, items_pending).await?;
    }
    Ok(())
}

/// Bugs written per transaction (about).
const WRITE_ROWS: usize = 2000;

/// Stores a complete answer for `tests`: upserts what parses, deletes their mirrored bugs the answer no longer has,
/// and marks the tests read. A bug that does not parse keeps its mirrored row and holds its test open for a retry.
async fn store(job: &mut Job<'_>, tests: &[i64], items: Vec<Value>) -> Result<(), SyncError> {
    let asked: HashSet<i64> = tests.iter().copied().collect();
    let mut rows = Vec::with_capacity(items.len());
    let mut keep = Vec::new();
    let mut gaps = Vec::new();
    let mut unsure: HashSet<i64> = HashSet::new();
    let mut whole_batch_unsure = false;
    for item in &items {
        match rows::bug(item) {
            Ok(row) if asked.contains(&row.test_id) => {
                keep.push(row.testio_id);
                rows.push(row);
            }
            Ok(row) => {
                keep.push(row.testio_id);
                gaps.push(Gap::bug(
                    row.test_id,
                    Some(row.testio_id),
                    "belongs to a test that was not asked for".into(),
                ));
            }
            Err(invalid) => {
                keep.extend(invalid.id);
                let test = item.get("test").and_then(|t| t.get("id")).and_then(Value::as_i64);
                match test.filter(|t| asked.contains(t)) {
                    Some(test) => {
                        unsure.insert(test);
                        gaps.push(Gap::bug(test, invalid.id, invalid.reason));
                    }
                    None => {
                        whole_batch_unsure = true;
                        gaps.push(Gap::bug(0, invalid.id, invalid.reason));
                    }
                }
            }
        }
    }
    let complete: Vec<i64> =
        if whole_batch_unsure { Vec::new() } else { tests.iter().copied().filter(|t| !unsure.contains(t)).collect() };
    let mut resolved: Vec<String> = complete.iter().map(|&test_id| GapKey::Bugs { test_id }.to_string()).collect();
    resolved.extend(rows.iter().map(|r| GapKey::Bug { test_id: r.test_id, bug_id: Some(r.testio_id) }.to_string()));

    job.bug_gaps |= !gaps.is_empty();
    let txn = job.begin().await?;
    let upserted = mirror::upsert_bugs(&txn, &rows).await?;
    let deleted = mirror::delete_bugs_except(&txn, &complete, &keep).await?;
    mirror::mark_bugs_synced(&txn, &complete).await?;
    job.gaps(&txn, &gaps, resolved).await?;
    job.counts.bugs_new += upserted.new.len() as i32;
    job.counts.bugs_updated += upserted.updated.len() as i32;
    job.counts.bugs_deleted += deleted.len() as i32;
    job.commit(txn).await
}
