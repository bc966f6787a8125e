//! Sync fidelity (issue 11): every run either sees a change or says it could not, and an incremental run never costs
//! more than a full one.
//!
//! The guarantees under test, with the settings of [`settings`] (free plan interval 1 h, verify cycle 4 h: a quarter of
//! every list is re-verified per run):
//! - G1: one incremental run mirrors every new test and every change above the first quiet page, every change of an
//!   open test wherever it is, and bug changes of open, new, changed and recently ended tests.
//! - G2: `ceil(cycle / interval) + 1` incremental runs without further changes make the mirror equal TestIO.
//! - G3: an incremental run never makes more requests than a full run of the same account; a nothing-new run reads at
//!   most 2 list pages per product plus its verification slice; `requests` counts every HTTP request.
//! - G4: a `succeeded` run leaves nothing it read unmirrored, and `verified_through` never claims a freshness the mirror
//!   does not have.
//!
//! The accounts are the (1,200 tests) scaled down to 300 tests in 4 products, with lists of 8 pages of 10.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Timelike, Utc};
use serde_json::{Value, json};
use tests::sync::{Snapshot, SyncFixture, TestFields, assert_same};
use tests::testio_sim::{Account, Faults, History, Rng, Scattered, Served, Shape};

const PAGE: usize = 10;
const BATCH: usize = 15;
const INTERVAL_SECS: u64 = 3600;
const CYCLE_SECS: u64 = 4 * 3600;
const REVIEW_DAYS: i64 = 7;
/// Incremental runs within which the whole mirror is verified: `ceil(cycle / interval) + 1`.
const CYCLE_RUNS: usize = CYCLE_SECS.div_ceil(INTERVAL_SECS) as usize + 1;

/// Newest `end_at` of every product: three days from now, so that the open tests on top have not ended yet.
const NEWEST_IN_DAYS: i64 = 3;
/// Between neighbours of a product's list.
const SPACING_HOURS: i64 = 12;
/// List positions whose tests ended within the bug review window: `end_at >= now - REVIEW_DAYS`.
const LAST_POSITION_IN_REVIEW: usize = ((NEWEST_IN_DAYS + REVIEW_DAYS) * 24 / SPACING_HOURS) as usize;
/// From here on, tests ended well before the review window.
const OLD: usize = LAST_POSITION_IN_REVIEW + 2;
const OPEN_ON_TOP: usize = 10;
/// Every 9th test of a list below the top is `locked`: open tests spread through history, as the account had
/// them (413 open tests among 1,200).
const SPREAD: usize = 9;

fn now() -> DateTime<Utc> {
    Utc::now().with_nanosecond(0).unwrap()
}

/// 4 products of 75 tests (8 list pages of 10 each), 3 bugs per test, the 10 newest of each product open, and every
/// `open_every`-th test below them `locked` (0: none).
fn history(open_every: usize) -> History {
    History {
        shape: Shape { products: 4, tests_per_product: 75, bugs_per_test: 3 },
        newest_end: now() + Duration::days(NEWEST_IN_DAYS),
        spacing: Duration::hours(SPACING_HOURS),
        open_on_top: OPEN_ON_TOP,
        open_every,
    }
}

/// The worker settings of these tests (the defaults otherwise).
fn settings(f: &SyncFixture) -> worker::Settings {
    let mut s = f.worker_settings();
    s.page_size = PAGE;
    s.bug_batch_size = BATCH;
    s.plans.interval_free_secs = INTERVAL_SECS;
    s.verify_cycle_secs = CYCLE_SECS;
    s.bug_review_days = REVIEW_DAYS as u64;
    s.stop_after_quiet_pages = 1;
    s
}

/// Pages a product list of `len` tests has, the short or empty last page included.
fn list_pages(len: usize, page: usize) -> usize {
    len / page + 1
}

/// Pages of a product's list re-verified per run: `max(1, ceil(list_pages * interval / cycle))`.
fn slice_pages(len: usize, page: usize) -> usize {
    (list_pages(len, page) as u64 * INTERVAL_SECS).div_ceil(CYCLE_SECS).max(1) as usize
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str().map(|s| DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}")).with_timezone(&Utc))
}

/// One run as the API and the simulator saw it.
struct Run {
    view: Value,
    /// List page requests the simulator served during the run.
    lists: u64,
    /// Requests the simulator served during the run.
    requests: u64,
    served: Vec<Served>,
    /// The mirror right after the run.
    mirror: Snapshot,
    /// TestIO right after the run (and during it: tests change nothing while a run is under way).
    truth: Snapshot,
}

impl Run {
    fn requests(&self) -> i64 {
        self.view["requests"].as_i64().unwrap_or_else(|| panic!("no requests: {}", self.view))
    }

    fn succeeded(&self) -> bool {
        self.view["status"] == "succeeded"
    }

    fn started_at(&self) -> DateTime<Utc> {
        time(&self.view["started_at"]).unwrap_or_else(|| panic!("no started_at: {}", self.view))
    }
}

/// A tenant of a fixture, synced with [`settings`] (or others), its runs checked as they go.
struct Tenant<'a> {
    f: &'a SyncFixture,
    tenant: uuid::Uuid,
    token: String,
    settings: worker::Settings,
    /// Built from `settings` on first use.
    worker: tokio::sync::OnceCell<worker::Worker>,
    /// A label for failure messages (the property test's seed).
    label: String,
}

impl<'a> Tenant<'a> {
    fn of(f: &'a SyncFixture) -> Self {
        f.sim.record_served(true);
        Self {
            f,
            tenant: f.tenant,
            token: f.token.clone(),
            settings: settings(f),
            worker: Default::default(),
            label: String::new(),
        }
    }

    fn modify(&self, change: impl FnOnce(&mut Account)) {
        self.f.sim.modify(&self.token, change);
    }

    fn read<R>(&self, read: impl FnOnce(&Account) -> R) -> R {
        self.f.sim.read(&self.token, read).expect("no account")
    }

    fn truth(&self) -> Snapshot {
        self.f.truth_of(&self.token)
    }

    async fn mirror(&self) -> Snapshot {
        Snapshot::of_mirror(&self.f.app.db, self.tenant).await
    }

    async fn verified_through(&self) -> Option<DateTime<Utc>> {
        let connection = self.f.connection_of(self.tenant).await;
        assert!(connection.get("verified_through").is_some(), "no verified_through in {connection}");
        time(&connection["verified_through"])
    }

    /// A run; checks what holds of every run: `requests` counts every HTTP request the simulator served (retries
    /// included), the run's page counters are there, and a `succeeded` run is honest (G4).
    async fn run(&self, full: bool) -> Run {
        self.f.sim.take_served();
        let (lists, requests) = (self.f.sim.list_requests(), self.f.sim.requests());
        let worker = self.worker.get_or_init(|| tests::sync::build_worker(&self.settings)).await;
        let view = self.f.sync_tenant_on(worker, self.tenant, full).await;
        let run = Run {
            lists: self.f.sim.list_requests() - lists,
            requests: self.f.sim.requests() - requests,
            served: self.f.sim.take_served(),
            view,
            mirror: self.mirror().await,
            truth: self.truth(),
        };
        let label = &self.label;
        assert_eq!(
            run.requests() as u64,
            run.requests,
            "{label}: the run's `requests` is not every HTTP request the simulator served: {}",
            run.view
        );
        for field in ["list_pages_read", "list_pages_total"] {
            assert!(run.view[field].is_i64(), "{label}: no {field} in {}", run.view);
        }
        assert!(run.view.get("verified_through").is_some(), "{label}: no verified_through in {}", run.view);
        if let Some(at) = time(&run.view["verified_through"]) {
            let finished = time(&run.view["finished_at"]).unwrap_or_else(|| panic!("{label}: {}", run.view));
            assert!(at <= finished, "{label}: verified through {at}, after the run finished: {}", run.view);
        }
        if run.succeeded() {
            let pages = run.served.iter().any(|s| matches!(s, Served::TestPage { .. }));
            assert!(pages || run.lists == 0, "{label}: the simulator recorded no list page of the run");
            assert_honest(&run, &run.mirror, &run.truth, label);
        }
        run
    }

    /// An incremental run that must succeed.
    async fn incremental(&self) -> Run {
        let run = self.run(false).await;
        assert!(run.succeeded(), "{}: {}", self.label, run.view);
        run
    }

    /// The first sync (it reads everything; the mirror must then equal TestIO) and then a full run, whose requests
    /// are the cost of a full run of the account before the changes a test makes.
    async fn first_sync_and_full_cost(&self) -> i64 {
        let first = self.incremental().await;
        assert_same(&self.mirror().await, &self.truth());
        assert!(first.requests() > 0);
        let full = self.run(true).await;
        assert!(full.succeeded(), "{}", full.view);
        assert_same(&self.mirror().await, &self.truth());
        full.requests()
    }

    /// G3 for `runs` made between a full run before the changes (`full_before` requests) and now: a full run of the
    /// account now (which also checks that a full run is exact) costs at least as much as each of them, or the one
    /// before did.
    ///
    /// Interpretation: a full run made at the moment of an incremental one would also confirm each test that vanished
    /// from the lists with one read (a 404) and retry each open gap; those requests, which the full runs made before
    /// and after cannot show, are allowed on top (`tests.deleted + gaps.resolved` of the incremental run).
    /// G2 and G3: a verify cycle of incremental runs makes the mirror equal TestIO, and none of them cost more than a
    /// full run.
    async fn assert_converges_within_a_cycle(&self, full_before: i64) {
        let mut runs = Vec::new();
        for _ in 0..CYCLE_RUNS {
            runs.push(self.incremental().await);
        }
        assert_same(&self.mirror().await, &self.truth());
        self.assert_never_dearer_than_full(full_before, &runs).await;
    }

    async fn assert_never_dearer_than_full(&self, full_before: i64, runs: &[Run]) {
        let full = self.run(true).await;
        assert!(full.succeeded(), "{}", full.view);
        assert_same(&self.mirror().await, &self.truth());
        assert_cheaper(&self.label, full_before.max(full.requests()), runs);
    }
}

/// G3: each of `runs` made at most `full` requests, plus the confirmations a full run at its moment would make too
/// (see [`Tenant::assert_never_dearer_than_full`]).
#[track_caller]
fn assert_cheaper(label: &str, full: i64, runs: &[Run]) {
    for (i, run) in runs.iter().enumerate() {
        let confirmations =
            run.view["tests"]["deleted"].as_i64().unwrap_or(0) + run.view["gaps"]["resolved"].as_i64().unwrap_or(0);
        assert!(
            run.requests() <= full + confirmations,
            "{label}: incremental run {i} made {} requests, a full run of the same account {full} (+ {confirmations} \
             confirmations of deleted tests and gaps): {}",
            run.requests(),
            run.view
        );
    }
}

/// G4: after a `succeeded` run (the account did not change during it), every test the run's list pages and test reads
/// returned is mirrored as returned, and every bug answer is mirrored exactly for the tests it was asked for (an answer
/// is complete for its tests: bugs missing from it are gone).
#[track_caller]
fn assert_honest(run: &Run, mirror: &Snapshot, truth: &Snapshot, label: &str) {
    type Bugs<'s> = BTreeMap<i64, BTreeMap<i64, &'s (i64, String, String)>>;
    fn by_test(s: &Snapshot) -> Bugs<'_> {
        let mut out: Bugs<'_> = BTreeMap::new();
        for (id, bug) in &s.bugs {
            out.entry(bug.0).or_default().insert(*id, bug);
        }
        out
    }
    let (mirror_bugs, truth_bugs) = (by_test(mirror), by_test(truth));
    let none = BTreeMap::new();
    let mut problems = Vec::new();
    let mut test = |id: &i64, how: &str| {
        let (m, t): (Option<&TestFields>, Option<&TestFields>) = (mirror.tests.get(id), truth.tests.get(id));
        if m != t {
            problems.push(format!("test {id} ({how}): mirror {m:?}, TestIO {t:?}"));
        }
    };
    let mut bug_problems = Vec::new();
    for served in &run.served {
        match served {
            Served::TestPage { product, tests } => tests.iter().for_each(|id| test(id, &format!("listed, {product}"))),
            Served::Test { id } => test(id, "read alone"),
            Served::Bugs { tests, bugs } => {
                for id in bugs {
                    if mirror.bugs.get(id) != truth.bugs.get(id) {
                        bug_problems.push(format!(
                            "bug {id} (in a bug answer): mirror {:?}, TestIO {:?}",
                            mirror.bugs.get(id),
                            truth.bugs.get(id)
                        ));
                    }
                }
                for t in tests {
                    let (m, tr) = (mirror_bugs.get(t).unwrap_or(&none), truth_bugs.get(t).unwrap_or(&none));
                    if m != tr {
                        bug_problems.push(format!(
                            "bugs of test {t} (asked for): mirror {:?}, TestIO {:?}",
                            m.keys().collect::<Vec<_>>(),
                            tr.keys().collect::<Vec<_>>()
                        ));
                    }
                }
            }
        }
    }
    problems.extend(bug_problems);
    problems.sort();
    problems.dedup();
    assert!(
        problems.is_empty(),
        "{label}: a succeeded run left {} things it read unmirrored (G4): {}\n{}",
        problems.len(),
        run.view,
        problems.iter().take(15).cloned().collect::<Vec<_>>().join("\n")
    );
}

/// The products of an account, ascending.
fn products(account: &Account) -> Vec<i64> {
    account.products.keys().copied().collect()
}

/// The first test at or below `position` of a product's list whose status is final.
fn closed_at_or_below(account: &Account, product: i64, position: usize) -> i64 {
    account.tests_of(product)[position..]
        .iter()
        .find(|t| matches!(t.status, "archived" | "cancelled"))
        .map(|t| t.id)
        .expect("no closed test below")
}

// ---------------------------------------------------------------------------------------------------------------
// The table, one row a test.
// ---------------------------------------------------------------------------------------------------------------

/// Row 1 (G1): 150 new tests (with bugs) interleaved by `end_at` with the known open tests on top of every product, and
/// status changes of some of those known tests, are all mirrored by the next run.
#[tokio::test]
async fn new_tests_interleaved_with_known_open_tests_on_top_are_mirrored_by_the_next_run() {
    let f = SyncFixture::with_account(Account::with_history(11, &history(SPREAD))).await;
    let t = Tenant::of(&f);
    let full_before = t.first_sync_and_full_cost().await;
    t.modify(|a| {
        for (p, product) in products(a).into_iter().enumerate() {
            let known: Vec<(i64, DateTime<chrono::FixedOffset>)> =
                a.tests_of(product)[..OPEN_ON_TOP].iter().map(|t| (t.id, t.end_at)).collect();
            let count = if p < 2 { 38 } else { 37 };
            for k in 0..count {
                // Below known test `k % 10`, above the next one (12 h further down).
                let end_at = known[k % OPEN_ON_TOP].1 - Duration::hours(1 + (k / OPEN_ON_TOP) as i64);
                let status = ["initialized", "waiting", "running"][k % 3];
                let id = a.add_test(product, status, end_at);
                for _ in 0..=(k % 3) {
                    a.add_bug(id, "forwarded");
                }
            }
            // Known open tests on top change too.
            a.set_test_status(known[4].0, "archived");
            a.set_test_title(known[7].0, "Renamed on top");
        }
    });
    assert_eq!(t.truth().tests.len(), 300 + 150);
    let run = t.incremental().await;
    assert_same(&t.mirror().await, &t.truth());
    assert_eq!(run.view["tests"]["new"], 150, "{}", run.view);
    t.assert_never_dearer_than_full(full_before, &[run]).await;
}

/// Row 2 (G2): 8 new tests (with bugs) inserted below known ones, deep in old history, are mirrored within one verify
/// cycle.
#[tokio::test]
async fn tests_inserted_below_known_ones_are_mirrored_within_one_verify_cycle() {
    let f = SyncFixture::with_account(Account::with_history(12, &history(SPREAD))).await;
    let t = Tenant::of(&f);
    let full_before = t.first_sync_and_full_cost().await;
    t.modify(|a| {
        let products = products(a);
        for (i, position) in [30, 47, 52, 61, 66, 70, 73, 40].into_iter().enumerate() {
            let id = a.insert_test_at(products[i % products.len()], position, "archived");
            for _ in 0..=(i % 4) {
                a.add_bug(id, "accepted");
            }
        }
    });
    t.assert_converges_within_a_cycle(full_before).await;
}

/// Row 3 (G2): `end_at` moved on 3 archived tests (in place, 5 places up, 10 places down) is mirrored within one
/// verify cycle.
#[tokio::test]
async fn end_at_moved_on_archived_tests_is_mirrored_within_one_verify_cycle() {
    let f = SyncFixture::with_account(Account::with_history(13, &history(SPREAD))).await;
    let t = Tenant::of(&f);
    let full_before = t.first_sync_and_full_cost().await;
    t.modify(|a| {
        let products = products(a);
        let moves = [
            (0, 31, Duration::minutes(-1)),
            (1, 40, Duration::hours(5 * SPACING_HOURS + 1)),
            (2, 48, -Duration::days(5)),
        ];
        for (p, position, by) in moves {
            let id = closed_at_or_below(a, products[p], position);
            let end_at = a.tests[&id].end_at + by;
            a.set_test_end_at(id, end_at);
        }
    });
    t.assert_converges_within_a_cycle(full_before).await;
}

/// Row 4 (G2): bug statuses changed (14), bugs added (20) and bugs deleted (3) on archived and cancelled tests that
/// ended before the review window are mirrored within one verify cycle.
#[tokio::test]
async fn bug_changes_on_closed_tests_older_than_the_review_window_are_mirrored_within_one_verify_cycle() {
    let f = SyncFixture::with_account(Account::with_history(14, &history(SPREAD))).await;
    let t = Tenant::of(&f);
    let full_before = t.first_sync_and_full_cost().await;
    let (closed, statuses) = t.read(|a| {
        let mut closed = Vec::new();
        for product in products(a) {
            closed.extend(
                a.tests_of(product)[OLD..]
                    .iter()
                    .filter(|t| matches!(t.status, "archived" | "cancelled"))
                    .map(|t| t.id),
            );
        }
        let cancelled = closed.iter().filter(|id| a.tests[id].status == "cancelled").count();
        assert!(cancelled > 0, "the account has no cancelled test to change");
        (closed, a.bugs.values().map(|b| (b.id, b.test_id, b.status)).collect::<Vec<_>>())
    });
    t.modify(|a| {
        // Spread over the whole old history: every 13th closed test.
        let chosen: Vec<i64> = closed.iter().step_by(13).copied().collect();
        let mut changed = 0;
        for (bug, test, status) in &statuses {
            if changed < 14 && chosen.contains(test) {
                a.set_bug_status(*bug, if *status == "accepted" { "rejected" } else { "accepted" });
                changed += 1;
            }
        }
        assert_eq!(changed, 14);
        for i in 0..20 {
            a.add_bug(closed[(i * 7 + 3) % closed.len()], "forwarded");
        }
        for (bug, _, _) in statuses.iter().filter(|(_, test, _)| closed.contains(test)).skip(100).step_by(97).take(3) {
            a.delete_bug(*bug);
        }
    });
    t.assert_converges_within_a_cycle(full_before).await;
}

/// Row 4b (G2): deleted tests, closed ones deep in history, an open one deep in history and one on top, leave the
/// mirror within one verify cycle, with their bugs.
#[tokio::test]
async fn deleted_tests_leave_the_mirror_within_one_verify_cycle() {
    let f = SyncFixture::with_account(Account::with_history(15, &history(SPREAD))).await;
    let t = Tenant::of(&f);
    let full_before = t.first_sync_and_full_cost().await;
    t.modify(|a| {
        let products = products(a);
        let gone = [
            closed_at_or_below(a, products[0], 33),
            closed_at_or_below(a, products[1], 57),
            closed_at_or_below(a, products[3], 74),
            a.test_at(products[2], 4 * SPREAD).unwrap(),
            a.test_at(products[3], 2).unwrap(),
        ];
        assert_eq!(a.tests[&gone[3]].status, "locked");
        for id in gone {
            a.delete_test(id);
        }
    });
    t.assert_converges_within_a_cycle(full_before).await;
}

/// G1: status, title and `end_at` changes of open tests wherever they are in history are mirrored by the next run.
#[tokio::test]
async fn changes_of_open_tests_anywhere_in_history_are_mirrored_by_the_next_run() {
    let f = SyncFixture::with_account(Account::with_history(16, &history(SPREAD))).await;
    let t = Tenant::of(&f);
    let full_before = t.first_sync_and_full_cost().await;
    t.modify(|a| {
        let products = products(a);
        let deep = |a: &Account, p: usize, k: usize| a.test_at(products[p], k * SPREAD).unwrap();
        let (d1, d2, d3, d4, d5) = (deep(a, 0, 3), deep(a, 1, 5), deep(a, 2, 7), deep(a, 3, 8), deep(a, 0, 6));
        for id in [d1, d2, d3, d4, d5] {
            assert_eq!(a.tests[&id].status, "locked", "test {id} should be open");
        }
        a.set_test_status(d1, "archived");
        a.set_test_status(d2, "cancelled");
        a.set_test_title(d3, "Renamed while locked");
        // Moved a little (stays in place) and a lot (five places up, still deep).
        let end_at = a.tests[&d4].end_at - Duration::minutes(30);
        a.set_test_end_at(d4, end_at);
        let end_at = a.tests[&d5].end_at + Duration::hours(5 * SPACING_HOURS + 1);
        a.set_test_end_at(d5, end_at);
        // And on top.
        let top = a.test_at(products[1], 1).unwrap();
        a.set_test_status(top, "archived");
    });
    let run = t.incremental().await;
    assert_same(&t.mirror().await, &t.truth());
    t.assert_never_dearer_than_full(full_before, &[run]).await;
}

/// G1: bug changes (status, new, deleted) of open tests (on top and deep in history), of closed tests ended within the
/// review window, and of an old closed test that changed (moved to the top of its list) are mirrored by the next run.
#[tokio::test]
async fn bug_changes_of_open_changed_and_recently_ended_tests_are_mirrored_by_the_next_run() {
    let f = SyncFixture::with_account(Account::with_history(17, &history(SPREAD))).await;
    let t = Tenant::of(&f);
    let full_before = t.first_sync_and_full_cost().await;
    t.modify(|a| {
        let products = products(a);
        let bugs_of = |a: &Account, test: i64| -> Vec<i64> {
            a.bugs.values().filter(|b| b.test_id == test).map(|b| b.id).collect()
        };
        let flip = |a: &mut Account, bug: i64| {
            let status = if a.bugs[&bug].status == "accepted" { "rejected" } else { "accepted" };
            a.set_bug_status(bug, status);
        };
        for (p, &product) in products.iter().enumerate() {
            // Open on top, open deep in history, closed but ended within the review window.
            let top = a.test_at(product, p % 3).unwrap();
            let deep = a.test_at(product, (3 + p) * SPREAD).unwrap();
            let recent = closed_at_or_below(a, product, OPEN_ON_TOP + 2 * p);
            assert!(a.position_of(recent).unwrap() <= LAST_POSITION_IN_REVIEW, "test {recent} is not recent");
            assert_eq!(a.tests[&deep].status, "locked");
            for test in [top, deep, recent] {
                let bugs = bugs_of(a, test);
                flip(a, bugs[0]);
                a.delete_bug(bugs[1]);
                a.add_bug(test, "forwarded");
            }
        }
        // An old closed test that changed: its `end_at` moved it to the top of its list, and its bugs changed.
        let changed = closed_at_or_below(a, products[1], OLD + 20);
        let top = a.tests_of(products[1])[0].end_at;
        a.set_test_end_at(changed, top + Duration::hours(1));
        let bugs = bugs_of(a, changed);
        flip(a, bugs[2]);
        a.add_bug(changed, "forwarded");
    });
    let run = t.incremental().await;
    assert_same(&t.mirror().await, &t.truth());
    t.assert_never_dearer_than_full(full_before, &[run]).await;
}

/// G1 with `stop_after_quiet_pages = 2`: a new test (with a bug) behind one quiet page, and a change of a closed test
/// there, are seen by the next run.
#[tokio::test]
async fn with_two_quiet_pages_a_change_behind_one_quiet_page_is_mirrored_by_the_next_run() {
    let f = SyncFixture::with_account(Account::with_history(22, &history(0))).await;
    let mut t = Tenant::of(&f);
    t.settings.stop_after_quiet_pages = 2;
    let full_before = t.first_sync_and_full_cost().await;
    t.modify(|a| {
        for product in products(a) {
            // Page 1 (positions 0-9) stays quiet; page 2 changes.
            let id = a.insert_test_at(product, PAGE + 3, "archived");
            a.add_bug(id, "forwarded");
            let closed = closed_at_or_below(a, product, PAGE + 6);
            a.set_test_title(closed, "Renamed behind a quiet page");
        }
    });
    let run = t.incremental().await;
    assert_same(&t.mirror().await, &t.truth());
    t.assert_never_dearer_than_full(full_before, &[run]).await;
}

/// Row 5 (G3): a run with nothing new reads at most 2 list pages per product plus its verification slice, reads bugs
/// only of open and recently ended tests and of its slice, costs less than a full run, and says what it read.
#[tokio::test]
async fn a_run_with_nothing_new_reads_two_pages_a_product_and_its_slice_and_costs_less_than_a_full_run() {
    // Open tests on top only: the list pages holding open tests are the first two.
    let f = SyncFixture::with_account(Account::with_history(18, &history(0))).await;
    let t = Tenant::of(&f);
    let full = t.first_sync_and_full_cost().await;
    let truth = t.truth();
    let lens: Vec<usize> = t.read(|a| products(a).iter().map(|p| a.tests_of(*p).len()).collect());
    let slices: usize = lens.iter().map(|n| slice_pages(*n, PAGE)).sum();
    let min_total: usize = lens.iter().map(|n| n.div_ceil(PAGE)).sum();
    let max_total: usize = lens.iter().map(|n| list_pages(*n, PAGE)).sum();
    // Bugs read every run: open tests and tests ended within the window (on top here), plus the slice's tests.
    let review_from = now() - Duration::days(REVIEW_DAYS);
    let every_run = truth.tests.values().filter(|v| v.3.is_some_and(|end| end >= review_from)).count()
        + truth.tests.values().filter(|v| !matches!(v.1.as_str(), "archived" | "cancelled")).count();
    let bug_batches = (every_run + slices * PAGE).div_ceil(BATCH) + lens.len();
    for i in 0..CYCLE_RUNS {
        let run = t.incremental().await;
        let bound = 2 * lens.len() + slices;
        assert!(run.lists as usize <= bound, "run {i}: {} list requests > {bound}: {}", run.lists, run.view);
        assert_eq!(run.view["list_pages_read"], run.lists, "run {i}: {}", run.view);
        let total = run.view["list_pages_total"].as_u64().unwrap() as usize;
        assert!((min_total..=max_total).contains(&total), "run {i}: list_pages_total {total}: {}", run.view);
        let requests = run.requests();
        assert!(requests < full, "run {i}: {requests} requests, a full run {full}: {}", run.view);
        let most = 1 + bound + bug_batches;
        assert!(requests as usize <= most, "run {i}: {requests} requests > {most}: {}", run.view);
        assert_eq!(run.view["tests"]["updated"], 0, "{}", run.view);
        assert_eq!(run.view["bugs"]["updated"], 0, "{}", run.view);
    }
    assert_same(&t.mirror().await, &t.truth());
}

/// Row 5 with open tests spread through history (every 9th test, so every list page holds one): refreshing them from
/// their list pages must still never cost more than a full run.
///
/// Interpretation: G1 promises changes of open tests anywhere after one run, so the pages that hold open tests are read
/// every run; the "2 pages + slice" bound of G3 then applies to accounts whose open tests are on top (the test above),
/// and here only "never dearer than full" is asserted.
#[tokio::test]
async fn a_run_with_nothing_new_never_costs_more_than_a_full_run_when_open_tests_are_everywhere() {
    let f = SyncFixture::with_account(Account::with_history(19, &history(SPREAD))).await;
    let t = Tenant::of(&f);
    let full = t.first_sync_and_full_cost().await;
    let full_lists: usize = t.read(|a| products(a).iter().map(|p| list_pages(a.tests_of(*p).len(), PAGE)).sum());
    for i in 0..3 {
        let run = t.incremental().await;
        assert!(run.requests() <= full, "run {i}: {} requests, a full run {full}: {}", run.requests(), run.view);
        assert!(run.lists as usize <= full_lists, "run {i}: {} list pages > {full_lists}: {}", run.lists, run.view);
        assert_eq!(run.view["list_pages_read"], run.lists, "run {i}: {}", run.view);
    }
}

/// G3: `requests` of a run counts every HTTP request, retries of 429s, of truncated bodies and split bug batches
/// included (the same count as the simulator's; checked by [`Tenant::run`]).
#[tokio::test]
async fn requests_count_every_http_request_retries_included() {
    let f = SyncFixture::with_account(Account::with_history(20, &history(0))).await;
    let t = Tenant::of(&f);
    t.incremental().await;
    // At most one 429 and one truncated body fall on one request: within the default 4 attempts.
    f.sim.set_faults(Faults {
        rate_limited: Some((1, 0)),
        truncate_responses: 1,
        bug_batch_limit: Some(4),
        ..Default::default()
    });
    t.modify(|a| {
        a.evolve(7);
    });
    let run = t.incremental().await;
    assert!(run.requests > 3, "the faults cost retries: {}", run.view);
    f.sim.set_faults(Faults::default());
    assert_same(&t.mirror().await, &t.truth());
}

/// G4: `verified_through` is null until a whole verification pass completed, never claims a time after a change the
/// mirror does not have yet, and reaches the start of a pass's first run once that pass completed.
///
/// Interpretation: a first sync reads every list in full, so it may or may not count as a pass; either way what it
/// claims must be true (it is checked like every other claim). A change made at `T` and not yet mirrored caps the
/// claim at `T`.
#[tokio::test]
async fn verified_through_never_claims_a_freshness_the_mirror_does_not_have() {
    let f = SyncFixture::with_account(Account::with_history(21, &history(0))).await;
    let t = Tenant::of(&f);
    assert_eq!(t.verified_through().await, None, "nothing was verified before the first sync");
    let first = t.incremental().await;
    let claimed = t.verified_through().await;
    assert_eq!(time(&first.view["verified_through"]), claimed, "the run shows the connection's value: {}", first.view);
    if let Some(at) = claimed {
        let finished = time(&first.view["finished_at"]).unwrap();
        assert!(at <= finished, "verified through {at}, after the run that verified it finished ({finished})");
    }

    // Changes deep in old history, which only the verification finds.
    t.modify(|a| {
        let products = products(a);
        let id = a.insert_test_at(products[1], 55, "archived");
        a.add_bug(id, "forwarded");
        let old = closed_at_or_below(a, products[2], 60);
        let end_at = a.tests[&old].end_at - Duration::hours(3);
        a.set_test_end_at(old, end_at);
    });
    let changed_at = Utc::now();
    // G2 within CYCLE_RUNS runs; the claim reaches the first of them once a pass that started there completed: a
    // pass takes at most CYCLE_RUNS runs, and the one under way when they began may end in their middle, so within
    // 2 * CYCLE_RUNS - 1 runs.
    let mut runs = Vec::new();
    let mut claimed = None;
    for i in 0..2 * CYCLE_RUNS - 1 {
        let run = t.incremental().await;
        claimed = t.verified_through().await;
        assert_eq!(time(&run.view["verified_through"]), claimed, "run {i}: {}", run.view);
        let exact = run.mirror == run.truth;
        if let Some(at) = claimed {
            assert!(
                exact || at <= changed_at,
                "run {i}: verified through {at}, but a change made at {changed_at} is not mirrored yet: {}",
                run.view
            );
        }
        runs.push(run);
        if i + 1 == CYCLE_RUNS {
            assert_same(&t.mirror().await, &t.truth());
        }
        if i + 1 >= CYCLE_RUNS && claimed.is_some_and(|at| at >= runs[0].started_at()) {
            break;
        }
    }
    let claimed = claimed.expect("whole verification passes completed, but verified_through is null");
    let pass_start = runs[0].started_at();
    assert!(
        claimed >= pass_start,
        "verified through {claimed} after {} runs, but every list was re-read since the first run after the change \
         ({pass_start})",
        runs.len()
    );

    // A change on top, mirrored by the next run: the claim may stay or move on, but must not pass an unmirrored change.
    t.modify(|a| {
        let product = products(a)[0];
        let top = a.test_at(product, 0).unwrap();
        a.set_test_status(top, "archived");
    });
    let run = t.incremental().await;
    assert_same(&t.mirror().await, &t.truth());
    // Interpretation: the claim never goes back (each pass starts after the one before).
    let later = t.verified_through().await;
    assert!(
        later.is_some_and(|at| at >= claimed),
        "verified_through went back from {claimed} to {later:?}: {}",
        run.view
    );
}

// ---------------------------------------------------------------------------------------------------------------
// The property test.
// ---------------------------------------------------------------------------------------------------------------

/// Faults for one run, drawn from `rng`: none (a third of the time), or one or two of 500 pages, 429s, 524s on bug
/// batches, truncated bodies, a malformed test or bug, slow answers.
fn random_faults(rng: &mut Rng, account: &Account) -> (Faults, Vec<&'static str>) {
    let mut faults = Faults::default();
    let mut kinds = Vec::new();
    if rng.chance(33) {
        return (faults, kinds);
    }
    let products = products(account);
    let tests: Vec<i64> = account.tests.keys().copied().collect();
    let bugs: Vec<i64> = account.bugs.keys().copied().collect();
    for _ in 0..1 + rng.below(2) {
        match rng.below(7) {
            0 if !products.is_empty() => {
                let product = products[rng.below(products.len() as u64) as usize];
                let len = account.tests_of(product).len().max(1);
                faults.failing_test_offsets.insert((product, rng.below(len as u64) as usize));
                kinds.push("500 page");
            }
            1 => {
                faults.rate_limited = Some((1 + rng.below(3) as u32, 0));
                kinds.push("429");
            }
            2 => {
                faults.bug_batch_limit = Some(1 + rng.below(4) as usize);
                kinds.push("524");
            }
            3 => {
                faults.truncate_responses = 1 + rng.below(3) as u32;
                kinds.push("truncated");
            }
            4 if !tests.is_empty() => {
                let id = tests[rng.below(tests.len() as u64) as usize];
                faults.test_overrides.insert(id, json!({ "id": id, "status": 42, "end_at": "yesterday" }));
                kinds.push("malformed test");
            }
            5 if !bugs.is_empty() => {
                let id = bugs[rng.below(bugs.len() as u64) as usize];
                let test = account.bugs[&id].test_id;
                faults.bug_overrides.insert(id, json!({ "id": id, "title": 7, "test": { "id": test } }));
                kinds.push("malformed bug");
            }
            6 => {
                faults.delay = Some(std::time::Duration::from_millis(3));
                kinds.push("delay");
            }
            _ => {}
        }
    }
    (faults, kinds)
}

/// One case: a small random account, a first sync, 3 to 5 rounds of random changes (scattered ones and top activity)
/// each followed by an incremental run under random faults, then the faults cleared and `CYCLE_RUNS` incremental
/// runs: the mirror must then equal TestIO, no run may ever claim a `verified_through` past an unmirrored change, every
/// `succeeded` run must be honest (checked by [`Tenant::run`]), and the clean runs must cost no more than a full run.
async fn property_case(f: &SyncFixture, case: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let label = format!("case {case}, seed {seed:#x} (FIDELITY_SEED={seed:#x} FIDELITY_CASES=1 reproduces it)");
    let history = History {
        shape: Shape { products: 2, tests_per_product: 15 + rng.below(20) as usize, bugs_per_test: 2 },
        newest_end: now() + Duration::days(2),
        spacing: Duration::hours(SPACING_HOURS),
        open_on_top: 3,
        open_every: [0, 7][rng.below(2) as usize],
    };
    let token = format!("token-fidelity-{case:04}");
    let account = Account::with_history(seed, &history);
    let tenant = f.add_tenant(&format!("fidelity-{case}"), &token, account).await;
    let mut t = Tenant { f, tenant, token, settings: settings(f), worker: Default::default(), label: label.clone() };
    t.settings.page_size = [3, 4, 5, 7][rng.below(4) as usize];
    t.settings.bug_batch_size = [2, 5, 15][rng.below(3) as usize];
    t.settings.max_attempts = 4;
    let mut log = vec![format!("{history:?}, page {}, batch {}", t.settings.page_size, t.settings.bug_batch_size)];

    let first = t.incremental().await;
    assert_same(&t.mirror().await, &t.truth());
    log.push(format!("first sync: {}", first.view["status"]));
    let mut changed_at: Option<DateTime<Utc>> = None;
    let check_claim = |run: &Run, claimed: Option<DateTime<Utc>>, exact: bool, changed_at: Option<DateTime<Utc>>| {
        if let (Some(at), Some(changed)) = (claimed, changed_at) {
            assert!(
                exact || at <= changed,
                "{label}: verified through {at}, but a change made at {changed} is not mirrored: {}",
                run.view
            );
        }
    };
    let rounds = 3 + rng.below(3);
    for round in 0..rounds {
        let mut changes = Vec::new();
        t.modify(|a| {
            for _ in 0..1 + rng.below(4) {
                let step = rng.next_u64();
                if rng.chance(30) {
                    changes.push(format!("{:?}", a.evolve(step)));
                } else {
                    let scattered = a.scatter(step);
                    if scattered != Scattered::Nothing {
                        changes.push(format!("{scattered:?}"));
                    }
                }
            }
        });
        changed_at = Some(Utc::now());
        let (faults, kinds) = t.read(|a| random_faults(&mut rng, a));
        f.sim.set_faults(faults);
        let run = t.run(false).await;
        f.sim.set_faults(Faults::default());
        log.push(format!(
            "round {round}: {changes:?}; faults {kinds:?}: {} ({} requests)",
            run.view["status"], run.requests
        ));
        let exact = run.mirror == run.truth;
        let claimed = t.verified_through().await;
        assert_eq!(
            time(&run.view["verified_through"]),
            claimed,
            "{label}: the run does not show the connection's verified_through (the tenant's value when the run \
             ended): {}",
            run.view
        );
        check_claim(&run, claimed, exact, changed_at);
        if exact {
            changed_at = None;
        }
    }

    // G2 within CYCLE_RUNS clean runs; then the claim must reach the first of them within 2 * CYCLE_RUNS - 1 (a pass
    // takes at most CYCLE_RUNS runs, and the one under way when they began may end in their middle).
    let mut runs = Vec::new();
    let mut claimed = None;
    for i in 0..2 * CYCLE_RUNS - 1 {
        let run = t.run(false).await;
        log.push(format!("clean run {i}: {} ({} requests)", run.view["status"], run.requests));
        assert!(run.succeeded(), "{label}: a run without faults did not succeed: {}\n{}", run.view, log.join("\n"));
        let exact = run.mirror == run.truth;
        claimed = t.verified_through().await;
        assert_eq!(
            time(&run.view["verified_through"]),
            claimed,
            "{label}: the run does not show the connection's verified_through (the tenant's value when the run \
             ended): {}",
            run.view
        );
        check_claim(&run, claimed, exact, changed_at);
        runs.push(run);
        if i + 1 == CYCLE_RUNS {
            let (mirror, truth) = (t.mirror().await, t.truth());
            if mirror != truth {
                eprintln!("{label}: history of the case:\n{}", log.join("\n"));
            }
            assert_same(&mirror, &truth);
        }
        if i + 1 >= CYCLE_RUNS && claimed.is_some_and(|at| at >= runs[0].started_at()) {
            break;
        }
    }
    let pass_start = runs[0].started_at();
    assert!(
        claimed.is_some_and(|at| at >= pass_start),
        "{label}: verified through {claimed:?} after {} clean runs, the first of which started at {pass_start}\n{}",
        runs.len(),
        log.join("\n")
    );
    let full = t.run(true).await;
    assert!(full.succeeded(), "{label}: {}", full.view);
    assert_same(&t.mirror().await, &t.truth());
    assert_cheaper(&label, full.requests(), &runs);
}

/// Random changes and faults over many runs converge within one verify cycle, and `succeeded` runs are honest.
/// `FIDELITY_SEED` and `FIDELITY_CASES` choose the cases (default: a fixed seed, 20 cases, 4 at a time).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_changes_and_faults_converge_within_one_verify_cycle_and_succeeded_runs_are_honest() {
    let base = std::env::var("FIDELITY_SEED")
        .ok()
        .map(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).expect("FIDELITY_SEED: hex"))
        .unwrap_or(0x5eed_f1de_1175);
    let cases: usize = std::env::var("FIDELITY_CASES").ok().map_or(20, |s| s.parse().expect("FIDELITY_CASES"));
    eprintln!("property test: FIDELITY_SEED={base:#x}, {cases} cases");
    const LANES: usize = 4;
    let mut lanes = tokio::task::JoinSet::new();
    for lane in 0..LANES.min(cases) {
        lanes.spawn(async move {
            // One app and simulator per lane (faults are simulator-wide), a tenant per case.
            let f = std::sync::Arc::new(SyncFixture::with_account(Account::default()).await);
            f.sim.record_served(true);
            let mut failed = Vec::new();
            for case in (lane..cases).step_by(LANES) {
                let seed = if cases == 1 { base } else { base ^ (case as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) };
                let fixture = f.clone();
                if tokio::spawn(async move { property_case(&fixture, case, seed).await }).await.is_err() {
                    f.sim.set_faults(Faults::default());
                    failed.push(format!("case {case} (FIDELITY_SEED={seed:#x} FIDELITY_CASES=1)"));
                }
            }
            failed
        });
    }
    let mut failed = Vec::new();
    while let Some(lane) = lanes.join_next().await {
        failed.extend(lane.expect("a lane panicked outside its cases"));
    }
    assert!(
        failed.is_empty(),
        "{} of {cases} cases failed (their panics are above):\n{}",
        failed.len(),
        failed.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------------------------
// The simulator's additions these tests rely on.
// ---------------------------------------------------------------------------------------------------------------

/// `with_history`, `insert_test_at`, `scatter` and the record of served answers do what the tests above assume.
#[tokio::test]
async fn the_simulators_history_insertions_and_record_of_answers_behave() {
    let mut account = Account::with_history(23, &history(SPREAD));
    let product = products(&account)[0];
    let list = account.tests_of(product);
    assert_eq!(list.len(), 75);
    for (i, test) in list.iter().enumerate() {
        let open = !matches!(test.status, "archived" | "cancelled");
        assert_eq!(open, i < OPEN_ON_TOP || i % SPREAD == 0, "position {i}: {}", test.status);
        let expected = history(SPREAD).newest_end - Duration::hours(SPACING_HOURS * i as i64);
        assert!((test.end_at.with_timezone(&Utc) - expected).num_seconds().abs() <= 5, "position {i}");
    }
    for position in [0, 1, 40, 74, 75, 500] {
        let id = account.insert_test_at(product, position, "archived");
        assert_eq!(account.position_of(id), Some(position.min(account.tests_of(product).len() - 1)), "{position}");
    }
    let before = account.clone();
    let changes: Vec<Scattered> = (0..40).map(|seed| account.scatter(seed)).collect();
    assert!(changes.iter().filter(|c| **c != Scattered::Nothing).count() > 30, "{changes:?}");
    assert_ne!(Snapshot::of_account(&account), Snapshot::of_account(&before));

    let sim = tests::testio_sim::Simulator::start().await;
    sim.add_account("token-sim-0001", account.clone());
    let get = |path: String| {
        reqwest::Client::new()
            .get(format!("{}{path}", sim.base_url))
            .header("Authorization", "Token token-sim-0001")
            .send()
    };
    get(format!("products/{product}/exploratory_tests?page=1&per_page=5")).await.unwrap();
    assert!(sim.take_served().is_empty(), "nothing is recorded until asked");
    sim.record_served(true);
    let first: Vec<i64> = account.tests_of(product)[..5].iter().map(|t| t.id).collect();
    get(format!("products/{product}/exploratory_tests?page=1&per_page=5")).await.unwrap();
    let overridden = first[1];
    sim.set_faults(Faults {
        test_overrides: [(overridden, json!({ "id": overridden }))].into_iter().collect(),
        ..Default::default()
    });
    get(format!("products/{product}/exploratory_tests?page=1&per_page=5")).await.unwrap();
    sim.set_faults(Faults { truncate_responses: 1, ..Default::default() });
    get(format!("products/{product}/exploratory_tests?page=1&per_page=5")).await.unwrap();
    sim.set_faults(Faults::default());
    let bug_test = *account.bugs.values().next().map(|b| &b.test_id).unwrap();
    get(format!("bugs?filter_test_cycle_ids={bug_test},1")).await.unwrap();
    get(format!("exploratory_tests/{}", first[0])).await.unwrap();
    let bugs: Vec<i64> = account.bugs.values().filter(|b| b.test_id == bug_test).map(|b| b.id).collect();
    let without: Vec<i64> = first.iter().copied().filter(|id| *id != overridden).collect();
    assert_eq!(
        sim.take_served(),
        [
            Served::TestPage { product, tests: first.clone() },
            Served::TestPage { product, tests: without },
            Served::Bugs { tests: vec![1, bug_test], bugs },
            Served::Test { id: first[0] },
        ]
    );
    assert!(sim.take_served().is_empty(), "taken once");
    sim.stop().await;
}
