//! A simulator of the TestIO Customer API v2 (see `shared/docs/testio-customer-api.md`), on a real socket, for the
//! sync worker's tests, its benchmark and the demo (the `testio-sim` binary serves one generated account).
//!
//! It honours what is known of the real API: `Authorization: Token <token>` per account, root-key envelopes,
//! `page`/`per_page` (default 25, only with `page`; without `page` the newest 150 tests), tests ordered by `end_at`
//! descending, bugs by `filter_test_cycle_ids`, 404 for foreign ids. Data comes from a seed and can be changed while
//! the server runs, through [`Simulator::modify`] and the mutators of [`Account`] (add, move, change and delete tests,
//! bugs and products; [`Account::evolve`] makes one step of plausible activity).
//!
//! Faults ([`Faults`], all off by default) can be injected:
//! - 500 at chosen offsets of a product's test list, for every page that contains the offset (even a page of one);
//! - 429 for the next N requests, with `Retry-After` in seconds or as an HTTP date;
//! - 524 on bug requests naming more test ids than a limit;
//! - a delay before every response, which does not hold up other requests (slow upstream, client timeouts);
//! - the next N successful JSON bodies cut in half: status 200 with invalid JSON (a dropped connection mid-body);
//! - per-id overrides of the JSON of a test or a bug, wherever that item is rendered: missing fields, wrong types or
//!   huge payloads for one item, without teaching the data model to hold them (a status or severity TestIO might add
//!   needs no override: the data model holds any word, see [`Account::set_test_status`]);
//! - revoked tokens (401).
//!
//! The successful answers can be recorded ([`Simulator::record_served`], [`Served`]), so that a test can tell what a
//! sync was shown.
//!
//! Accounts can be large (100,000 tests): lists are served from an index per account (tests per product in list order,
//! bugs per test) that is rebuilt on the first request after a change, not on every request.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use chrono::{DateTime, Duration, FixedOffset, TimeZone, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

/// Statuses a test can have; the last two are final. Written out here rather than taken from `testio::model`: the
/// simulator describes TestIO as documented, independently of what the product believes, so that a status the
/// product forgot shows up as a failing test instead of never being generated.
pub const TEST_STATUSES: [&str; 7] =
    ["initialized", "customer_finalized", "waiting", "running", "locked", "archived", "cancelled"];

#[derive(Debug, Clone)]
pub struct Product {
    pub id: i64,
    pub name: String,
    pub kind: &'static str,
}

#[derive(Debug, Clone)]
pub struct Test {
    pub id: i64,
    pub product_id: i64,
    pub title: String,
    pub status: &'static str,
    pub testing_type: &'static str,
    pub start_at: DateTime<FixedOffset>,
    pub end_at: DateTime<FixedOffset>,
}

#[derive(Debug, Clone)]
pub struct Bug {
    pub id: i64,
    pub test_id: i64,
    pub title: String,
    pub severity: &'static str,
    pub status: &'static str,
}

/// One TestIO customer account: what a token can see.
#[derive(Debug, Clone, Default)]
pub struct Account {
    pub products: BTreeMap<i64, Product>,
    pub tests: BTreeMap<i64, Test>,
    pub bugs: BTreeMap<i64, Bug>,
}

/// Sizes of a generated account.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub products: usize,
    pub tests_per_product: usize,
    pub bugs_per_test: usize,
}

/// What one [`Account::evolve`] step changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evolution {
    /// A new `initialized` test at the top of a product's list.
    pub new_test: Option<i64>,
    /// A test moved one status along the usual path, with its new status.
    pub advanced_test: Option<(i64, &'static str)>,
    /// A `forwarded` bug reported on the advanced test when it started running.
    pub new_bug: Option<i64>,
    /// A `forwarded` bug that became `accepted`.
    pub accepted_bug: Option<i64>,
}

/// A generated account with a realistic history (see [`Account::with_history`]): `end_at` spread evenly back from a
/// chosen instant, open tests on top and, optionally, spread through the history as real accounts have them (tests
/// stay `locked` for weeks while their bugs are reviewed).
#[derive(Debug, Clone, Copy)]
pub struct History {
    pub shape: Shape,
    /// `end_at` of every product's newest test (keep it to whole seconds: the mirror stores microseconds).
    pub newest_end: DateTime<Utc>,
    /// Between the `end_at` of neighbours in a product's list.
    pub spacing: Duration,
    /// The newest tests of every product that are open (`running`, `locked`, `waiting`, in turn).
    pub open_on_top: usize,
    /// Below those, every n-th test of a product's list is `locked`; 0: none.
    pub open_every: usize,
}

/// What one [`Account::scatter`] step changed: the changes a cheap newest-first scan does not see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scattered {
    /// A new `archived` test at `position` of its product's list, below known ones, with one bug.
    InsertedBelow { test: i64, position: usize },
    /// The `end_at` of an `archived` or `cancelled` test moved (it may change places in its list).
    MovedClosed { test: i64 },
    /// A bug of a closed test changed status.
    ClosedBugStatus { bug: i64 },
    /// A new bug on a closed test.
    BugOnClosed { bug: i64 },
    /// A test was deleted with its bugs.
    DeletedTest { test: i64 },
    /// A bug was deleted.
    DeletedBug { bug: i64 },
    /// An open test moved one status along (or, when it cannot, got a new title).
    OpenTestChanged { test: i64 },
    /// Nothing to change of the kind drawn.
    Nothing,
}

/// A successful answer as the simulator sent it (recorded while [`Simulator::record_served`] is on; truncated bodies
/// are not recorded, and items replaced by a fault override are left out, since they were not sent as they are).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    /// A page of a product's test list: the tests it listed.
    TestPage { product: i64, tests: Vec<i64> },
    /// One test.
    Test { id: i64 },
    /// A bug answer: the tests asked for (without those that have an overridden bug in the answer: their answer was
    /// not sent as it is) and the bugs sent.
    Bugs { tests: Vec<i64>, bugs: Vec<i64> },
}

/// A small deterministic generator (splitmix64), so that a seed always produces the same account (and the fidelity
/// property test the same case).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True `percent` times in 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// The next status on TestIO's usual path, `None` for final statuses (and unknown ones, which the simulator cannot
/// place on the path).
fn next_status(status: &str) -> Option<&'static str> {
    match status {
        "initialized" => Some("customer_finalized"),
        "customer_finalized" => Some("waiting"),
        "waiting" => Some("running"),
        "running" => Some("locked"),
        "locked" => Some("archived"),
        _ => None,
    }
}

/// The id after the largest one in `map`. Deleting the item with the largest id lets that id come back, which the
/// real API would not do; no test needs that distinction, and avoiding it would take hidden state in `Account`.
fn next_id<V>(map: &BTreeMap<i64, V>) -> i64 {
    map.last_key_value().map_or(1, |(id, _)| id + 1)
}

impl Account {
    /// A realistic account from `seed`. Ids are unique across accounts made from different seeds (test ids are global
    /// at TestIO), and `end_at` is spread so that orderings are unambiguous.
    pub fn generate(seed: u64, shape: Shape) -> Self {
        let mut rng = Rng(seed);
        let base = (seed % 1000) as i64 * 10_000_000;
        let mut account = Account::default();
        let utc = FixedOffset::east_opt(0).unwrap_or_else(|| unreachable!());
        let offsets =
            [FixedOffset::east_opt(2 * 3600).unwrap_or(utc), utc, FixedOffset::west_opt(5 * 3600).unwrap_or(utc)];
        let epoch = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).single().unwrap_or_default();
        for p in 0..shape.products {
            let product_id = base + 1 + p as i64;
            let kinds = ["website", "mobile_app_ios", "mobile_app_android", "streaming_app"];
            account.products.insert(
                product_id,
                Product { id: product_id, name: format!("Product {product_id}"), kind: rng.pick(&kinds) },
            );
            for t in 0..shape.tests_per_product {
                let test_id = base + 1_000_000 + (p * shape.tests_per_product + t) as i64;
                let end = epoch - Duration::minutes((p * shape.tests_per_product + t) as i64 * 37 + 1);
                let offset = rng.pick(&offsets);
                let status = if t < 3 {
                    rng.pick(&TEST_STATUSES[..5])
                } else {
                    rng.pick(&["archived", "archived", "cancelled"])
                };
                account.tests.insert(
                    test_id,
                    Test {
                        id: test_id,
                        product_id,
                        title: format!("Exploratory test {test_id}"),
                        status,
                        testing_type: rng.pick(&["coverage", "focused", "rapid", "usability", "custom"]),
                        start_at: (end - Duration::hours(48)).with_timezone(&offset),
                        end_at: end.with_timezone(&offset),
                    },
                );
                for b in 0..shape.bugs_per_test {
                    let bug_id =
                        base + 5_000_000 + ((p * shape.tests_per_product + t) * shape.bugs_per_test + b) as i64;
                    account.bugs.insert(
                        bug_id,
                        Bug {
                            id: bug_id,
                            test_id,
                            title: format!("Bug {bug_id}"),
                            severity: rng.pick(&["low", "high", "critical", "visual", "content"]),
                            status: rng.pick(&["forwarded", "accepted", "rejected"]),
                        },
                    );
                }
            }
        }
        account
    }

    /// A product's tests in the order the API lists them: `end_at` descending, then id descending. Sorts on every
    /// call: for assertions, not for serving.
    pub fn tests_of(&self, product_id: i64) -> Vec<&Test> {
        let mut tests: Vec<&Test> = self.tests.values().filter(|t| t.product_id == product_id).collect();
        tests.sort_by(|a, b| b.end_at.cmp(&a.end_at).then(b.id.cmp(&a.id)));
        tests
    }

    /// Adds a product of kind `website` and returns its id, larger than any product id of the account.
    pub fn add_product(&mut self, name: &str) -> i64 {
        let id = next_id(&self.products);
        self.products.insert(id, Product { id, name: name.to_owned(), kind: "website" });
        id
    }

    /// Deletes a product with its tests and their bugs.
    ///
    /// # Panics
    /// If the account has no such product: a test that names a wrong id should fail where it does so.
    #[track_caller]
    pub fn delete_product(&mut self, id: i64) {
        if self.products.remove(&id).is_none() {
            panic!("no product {id} in the account");
        }
        let gone: HashSet<i64> = self.tests.values().filter(|t| t.product_id == id).map(|t| t.id).collect();
        self.tests.retain(|test_id, _| !gone.contains(test_id));
        self.bugs.retain(|_, b| !gone.contains(&b.test_id));
    }

    /// Adds a test to a product and returns its id, larger than any test id of the account. It starts 48 hours before
    /// `end_at`, and its place in the product's list follows from `end_at`.
    ///
    /// # Panics
    /// If the account has no such product.
    #[track_caller]
    pub fn add_test(&mut self, product_id: i64, status: &'static str, end_at: DateTime<FixedOffset>) -> i64 {
        if !self.products.contains_key(&product_id) {
            panic!("no product {product_id} in the account");
        }
        let id = next_id(&self.tests);
        self.tests.insert(
            id,
            Test {
                id,
                product_id,
                title: format!("Exploratory test {id}"),
                status,
                testing_type: "coverage",
                start_at: end_at - Duration::hours(48),
                end_at,
            },
        );
        id
    }

    #[track_caller]
    fn test_mut(&mut self, id: i64) -> &mut Test {
        match self.tests.get_mut(&id) {
            Some(test) => test,
            None => panic!("no test {id} in the account"),
        }
    }

    #[track_caller]
    fn bug_mut(&mut self, id: i64) -> &mut Bug {
        match self.bugs.get_mut(&id) {
            Some(bug) => bug,
            None => panic!("no bug {id} in the account"),
        }
    }

    /// Changes a test's status; any string goes, so that tests can also use statuses TestIO might add.
    ///
    /// # Panics
    /// If the account has no such test.
    #[track_caller]
    pub fn set_test_status(&mut self, id: i64, status: &'static str) {
        self.test_mut(id).status = status;
    }

    /// Changes a test's `end_at` (its start stays), which moves it in its product's list.
    ///
    /// # Panics
    /// If the account has no such test.
    #[track_caller]
    pub fn set_test_end_at(&mut self, id: i64, end_at: DateTime<FixedOffset>) {
        self.test_mut(id).end_at = end_at;
    }

    /// Deletes a test with its bugs.
    ///
    /// # Panics
    /// If the account has no such test.
    #[track_caller]
    pub fn delete_test(&mut self, id: i64) {
        if self.tests.remove(&id).is_none() {
            panic!("no test {id} in the account");
        }
        self.bugs.retain(|_, b| b.test_id != id);
    }

    /// Adds a bug of severity `high` to a test and returns its id, larger than any bug id of the account.
    ///
    /// # Panics
    /// If the account has no such test.
    #[track_caller]
    pub fn add_bug(&mut self, test_id: i64, status: &'static str) -> i64 {
        if !self.tests.contains_key(&test_id) {
            panic!("no test {test_id} in the account");
        }
        let id = next_id(&self.bugs);
        self.bugs.insert(id, Bug { id, test_id, title: format!("Bug {id}"), severity: "high", status });
        id
    }

    /// Changes a bug's status (`forwarded`, `accepted`, `rejected`, or anything else).
    ///
    /// # Panics
    /// If the account has no such bug.
    #[track_caller]
    pub fn set_bug_status(&mut self, id: i64, status: &'static str) {
        self.bug_mut(id).status = status;
    }

    /// Changes a bug's severity (`low`, `high`, `critical`, `visual`, `content`, `custom`, or anything else, such as a
    /// severity TestIO might add).
    ///
    /// # Panics
    /// If the account has no such bug.
    #[track_caller]
    pub fn set_bug_severity(&mut self, id: i64, severity: &'static str) {
        self.bug_mut(id).severity = severity;
    }

    /// Deletes a bug.
    ///
    /// # Panics
    /// If the account has no such bug.
    #[track_caller]
    pub fn delete_bug(&mut self, id: i64) {
        if self.bugs.remove(&id).is_none() {
            panic!("no bug {id} in the account");
        }
    }

    /// One step of plausible activity, chosen by `seed`, so that a running demo shows change: a new `initialized` test
    /// at the top of a random product, another non-final test one status further (with a new `forwarded` bug when it
    /// starts running), and a random `forwarded` bug accepted. Steps that find nothing to change are skipped.
    pub fn evolve(&mut self, seed: u64) -> Evolution {
        let mut rng = Rng(seed);
        let mut step = Evolution::default();
        let products: Vec<i64> = self.products.keys().copied().collect();
        if !products.is_empty() {
            let product = rng.pick(&products);
            let top = self.tests.values().filter(|t| t.product_id == product).map(|t| t.end_at).max();
            let end_at = top.map_or_else(|| Utc::now().fixed_offset(), |end| end + Duration::hours(1));
            step.new_test = Some(self.add_test(product, "initialized", end_at));
        }
        let open: Vec<i64> = self
            .tests
            .values()
            .filter(|t| Some(t.id) != step.new_test && next_status(t.status).is_some())
            .map(|t| t.id)
            .collect();
        if !open.is_empty() {
            let id = rng.pick(&open);
            if let Some(status) = self.tests.get(&id).and_then(|t| next_status(t.status)) {
                self.set_test_status(id, status);
                step.advanced_test = Some((id, status));
                if status == "running" {
                    step.new_bug = Some(self.add_bug(id, "forwarded"));
                }
            }
        }
        let forwarded: Vec<i64> = self
            .bugs
            .values()
            .filter(|b| b.status == "forwarded" && Some(b.id) != step.new_bug)
            .map(|b| b.id)
            .collect();
        if !forwarded.is_empty() {
            let id = rng.pick(&forwarded);
            self.set_bug_status(id, "accepted");
            step.accepted_bug = Some(id);
        }
        step
    }
}

impl Account {
    /// An account of `history.shape` from `seed` (ids, titles, bugs as [`Account::generate`] makes them) whose
    /// products' lists end at `history.newest_end` and go back `history.spacing` per test, with open tests on top and
    /// spread through the history as `history` says; every other test is `archived` or `cancelled`.
    pub fn with_history(seed: u64, history: &History) -> Self {
        let mut account = Self::generate(seed, history.shape);
        let products: Vec<i64> = account.products.keys().copied().collect();
        let newest = history.newest_end.with_nanosecond_zero();
        for product in products {
            let ids: Vec<i64> = account.tests_of(product).iter().map(|t| t.id).collect();
            for (i, id) in ids.into_iter().enumerate() {
                let test = account.test_mut(id);
                let offset = *test.end_at.offset();
                let end = newest - history.spacing * i32::try_from(i).unwrap_or(i32::MAX);
                test.end_at = end.with_timezone(&offset);
                test.start_at = (end - Duration::hours(48)).with_timezone(&offset);
                test.status = if i < history.open_on_top {
                    ["running", "locked", "waiting"][i % 3]
                } else if history.open_every > 0 && i % history.open_every == 0 {
                    "locked"
                } else if next_status(test.status).is_some() {
                    "archived"
                } else {
                    test.status
                };
            }
        }
        account
    }

    /// The id of the test at `position` (0: the newest) of a product's list, if the list is that long.
    pub fn test_at(&self, product_id: i64, position: usize) -> Option<i64> {
        self.tests_of(product_id).get(position).map(|t| t.id)
    }

    /// Where a test is in its product's list (0: the newest).
    pub fn position_of(&self, test_id: i64) -> Option<usize> {
        let product = self.tests.get(&test_id)?.product_id;
        self.tests_of(product).iter().position(|t| t.id == test_id)
    }

    /// Adds a test that the product's list shows at `position` (0: on top; past the end: last), its `end_at` between
    /// those of its neighbours (in whole seconds), and returns its id.
    ///
    /// # Panics
    /// If the account has no such product.
    #[track_caller]
    pub fn insert_test_at(&mut self, product_id: i64, position: usize, status: &'static str) -> i64 {
        let list: Vec<DateTime<FixedOffset>> = self.tests_of(product_id).iter().map(|t| t.end_at).collect();
        let position = position.min(list.len());
        let end_at = if list.is_empty() {
            Utc::now().with_nanosecond_zero().fixed_offset()
        } else if position == 0 {
            list[0] + Duration::minutes(1)
        } else if position == list.len() {
            list[position - 1] - Duration::minutes(1)
        } else {
            let (above, below) = (list[position - 1], list[position]);
            below + Duration::seconds((above - below).num_seconds() / 2)
        };
        self.add_test(product_id, status, end_at)
    }

    /// Changes a test's title.
    ///
    /// # Panics
    /// If the account has no such test.
    #[track_caller]
    pub fn set_test_title(&mut self, id: i64, title: impl Into<String>) {
        self.test_mut(id).title = title.into();
    }

    /// One random change of the kinds a newest-first scan that stops at known tests misses, chosen by `seed`: a test
    /// inserted below known ones, a closed test's `end_at` moved, a closed test's bug changed or added, a test or a
    /// bug deleted, an open test changed wherever it is. Kinds that find nothing to change give
    /// [`Scattered::Nothing`].
    pub fn scatter(&mut self, seed: u64) -> Scattered {
        let mut rng = Rng(seed);
        let closed: Vec<i64> = self.tests.values().filter(|t| next_status(t.status).is_none()).map(|t| t.id).collect();
        let closed_bugs: Vec<i64> = self
            .bugs
            .values()
            .filter(|b| self.tests.get(&b.test_id).is_some_and(|t| next_status(t.status).is_none()))
            .map(|b| b.id)
            .collect();
        let products: Vec<i64> = self.products.keys().copied().collect();
        match rng.below(7) {
            0 if !products.is_empty() => {
                let product = rng.pick(&products);
                let len = self.tests.values().filter(|t| t.product_id == product).count();
                if len < 2 {
                    return Scattered::Nothing;
                }
                let position = 1 + rng.below(len as u64) as usize;
                let test = self.insert_test_at(product, position, "archived");
                self.add_bug(test, "forwarded");
                Scattered::InsertedBelow { test, position }
            }
            1 if !closed.is_empty() => {
                let test = rng.pick(&closed);
                let minutes = rng.below(6 * 24 * 60) as i64 - 3 * 24 * 60;
                let end_at = self.tests[&test].end_at + Duration::minutes(if minutes == 0 { 1 } else { minutes });
                self.set_test_end_at(test, end_at);
                Scattered::MovedClosed { test }
            }
            2 if !closed_bugs.is_empty() => {
                let bug = rng.pick(&closed_bugs);
                let status = match self.bugs[&bug].status {
                    "accepted" => "rejected",
                    _ => "accepted",
                };
                self.set_bug_status(bug, status);
                Scattered::ClosedBugStatus { bug }
            }
            3 if !closed.is_empty() => {
                let test = rng.pick(&closed);
                Scattered::BugOnClosed { bug: self.add_bug(test, "forwarded") }
            }
            4 if !closed.is_empty() => {
                let test = rng.pick(&closed);
                self.delete_test(test);
                Scattered::DeletedTest { test }
            }
            5 if !self.bugs.is_empty() => {
                let ids: Vec<i64> = self.bugs.keys().copied().collect();
                let bug = rng.pick(&ids);
                self.delete_bug(bug);
                Scattered::DeletedBug { bug }
            }
            6 => {
                let open: Vec<i64> =
                    self.tests.values().filter(|t| next_status(t.status).is_some()).map(|t| t.id).collect();
                if open.is_empty() {
                    return Scattered::Nothing;
                }
                let test = rng.pick(&open);
                match next_status(self.tests[&test].status) {
                    Some(status) if rng.below(2) == 0 => self.set_test_status(test, status),
                    _ => self.set_test_title(test, format!("Renamed {test} ({seed})")),
                }
                Scattered::OpenTestChanged { test }
            }
            _ => Scattered::Nothing,
        }
    }
}

/// Whole seconds of an instant (the mirror keeps microseconds; whole seconds compare equal on both sides).
trait NanosecondZero {
    fn with_nanosecond_zero(self) -> Self;
}

impl<Tz: TimeZone> NanosecondZero for DateTime<Tz> {
    fn with_nanosecond_zero(self) -> Self {
        let nanos = i64::from(self.timestamp_subsec_nanos());
        self - Duration::nanoseconds(nanos)
    }
}

/// Injected faults; all are off by default.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// `(product id, offset)`: a page of that product's test list containing the offset answers 500.
    pub failing_test_offsets: HashSet<(i64, usize)>,
    /// The next N requests answer 429 with this `Retry-After` (seconds).
    pub rate_limited: Option<(u32, u64)>,
    /// `rate_limited` sends `Retry-After` as an HTTP date (now plus the seconds, rounded up to a whole second so that
    /// a client waiting until then waits at least that long) instead of a number of seconds.
    pub retry_after_http_date: bool,
    /// A bug request naming more test ids than this answers 524.
    pub bug_batch_limit: Option<usize>,
    /// Every response, errors included, is sent this much later. Other requests are served meanwhile, as a slow
    /// upstream would, so that concurrency and client timeouts can be tested.
    pub delay: Option<std::time::Duration>,
    /// The next N otherwise successful JSON responses have their body cut in half: status 200, invalid JSON.
    pub truncate_responses: u32,
    /// The JSON sent instead of the test with this id, in list pages and single GETs. The test keeps the place its
    /// real data gives it in lists.
    pub test_overrides: HashMap<i64, Value>,
    /// The JSON sent instead of the bug with this id in bug lists.
    pub bug_overrides: HashMap<i64, Value>,
    /// The JSON sent instead of the product with this id in the product list.
    pub product_overrides: HashMap<i64, Value>,
}

/// Lookups derived from an account, so that a request costs its page rather than the whole account.
#[derive(Debug, Default)]
struct Index {
    /// Test ids per product, in list order: `end_at` descending, then id descending.
    tests_by_product: HashMap<i64, Vec<i64>>,
    /// Bug ids per test, ascending.
    bugs_by_test: HashMap<i64, Vec<i64>>,
}

impl Index {
    fn build(account: &Account) -> Self {
        let mut keyed: HashMap<i64, Vec<(i64, u32, i64)>> = HashMap::new();
        for t in account.tests.values() {
            // The instant as plain integers: much cheaper to compare than `DateTime<FixedOffset>`, same order.
            let key = (t.end_at.timestamp(), t.end_at.timestamp_subsec_nanos(), t.id);
            keyed.entry(t.product_id).or_default().push(key);
        }
        let tests_by_product = keyed
            .into_iter()
            .map(|(product, mut keys)| {
                keys.sort_unstable_by(|a, b| b.cmp(a));
                (product, keys.into_iter().map(|(_, _, id)| id).collect())
            })
            .collect();
        let mut bugs_by_test: HashMap<i64, Vec<i64>> = HashMap::new();
        for b in account.bugs.values() {
            bugs_by_test.entry(b.test_id).or_default().push(b.id);
        }
        Self { tests_by_product, bugs_by_test }
    }
}

struct Entry {
    account: Account,
    /// `None` after any change: `modify` hands out the public maps, so the index cannot follow changes one by one and
    /// is rebuilt on the next request instead.
    index: Option<Index>,
}

#[derive(Default)]
struct State {
    accounts: HashMap<String, Entry>,
    revoked: HashSet<String>,
    faults: Faults,
    requests: u64,
    list_requests: u64,
    /// `Some` while answers are recorded.
    served: Option<Vec<Served>>,
}

/// A running simulator.
pub struct Simulator {
    /// Base URL to configure clients with, ending in `/customer/v2/`.
    pub base_url: String,
    state: Arc<Mutex<State>>,
    handle: ServerHandle,
}

impl Simulator {
    /// Starts a simulator on a free port of 127.0.0.1.
    pub async fn start() -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("cannot bind the simulator")
    }

    /// Starts a simulator on `addr` (port 0: a free port). When `addr` is a wildcard address, `base_url` names the
    /// loopback address instead, which a client on the same machine can reach.
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(State::default()));
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new().app_data(data.clone()).service(
                web::scope("/customer/v2")
                    .route("/products", web::get().to(products))
                    .route("/products/{id}", web::get().to(product))
                    .route("/products/{id}/exploratory_tests", web::get().to(product_tests))
                    .route("/exploratory_tests/{id}", web::get().to(one_test))
                    .route("/bugs", web::get().to(bugs)),
            )
        })
        .workers(1)
        .disable_signals()
        .bind(addr)?;
        let mut bound = server.addrs().first().copied().ok_or_else(|| std::io::Error::other("bound to no address"))?;
        if bound.ip().is_unspecified() {
            bound.set_ip(match bound {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(Self { base_url: format!("http://{bound}/customer/v2/"), state, handle })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds (or replaces) the account reachable with `token`.
    pub fn add_account(&self, token: &str, account: Account) {
        self.lock().accounts.insert(token.to_owned(), Entry { account, index: None });
    }

    /// Changes an account's data while the server runs.
    pub fn modify(&self, token: &str, change: impl FnOnce(&mut Account)) {
        if let Some(entry) = self.lock().accounts.get_mut(token) {
            change(&mut entry.account);
            entry.index = None;
        }
    }

    /// Reads an account's data (for expectations) without marking it changed; `None` for an unknown token.
    pub fn read<R>(&self, token: &str, read: impl FnOnce(&Account) -> R) -> Option<R> {
        self.lock().accounts.get(token).map(|entry| read(&entry.account))
    }

    /// From now on `token` gets 401.
    pub fn revoke(&self, token: &str) {
        self.lock().revoked.insert(token.to_owned());
    }

    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    /// Requests served so far (faulty ones included).
    pub fn requests(&self) -> u64 {
        self.lock().requests
    }

    /// Requests of products' test lists served so far (faulty ones included).
    pub fn list_requests(&self) -> u64 {
        self.lock().list_requests
    }

    /// Starts (`true`, with an empty record) or stops recording the successful answers; see [`Served`].
    pub fn record_served(&self, on: bool) {
        self.lock().served = on.then(Vec::new);
    }

    /// The answers recorded since the last call (or since recording started); empty while not recording.
    pub fn take_served(&self) -> Vec<Served> {
        self.lock().served.as_mut().map(std::mem::take).unwrap_or_default()
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

type Shared = web::Data<Mutex<State>>;

/// What a handler sees of the state: the caller's account, its index and the faults.
#[derive(Clone, Copy)]
struct View<'a> {
    account: &'a Account,
    index: &'a Index,
    faults: &'a Faults,
}

/// The errors a handler can answer with.
enum Refusal {
    NotFound,
    /// The injected 500 of a list page.
    PageFails,
    /// The injected 524 of a bug request naming too many tests.
    BatchTooLarge,
}

impl Refusal {
    fn response(self) -> HttpResponse {
        match self {
            Refusal::NotFound => HttpResponse::NotFound().json(json!({ "error": "not found" })),
            Refusal::PageFails => HttpResponse::InternalServerError().json(json!({ "error": "internal server error" })),
            Refusal::BatchTooLarge => {
                HttpResponse::build(StatusCode::from_u16(524).unwrap_or_default()).body("A timeout occurred")
            }
        }
    }
}

/// A handler's answer: the JSON body of a 200, or a refusal.
type Answer = Result<Value, Refusal>;

/// Answers with `f` run on the caller's account under the lock (no copy of the account per request), then waits out
/// the `delay` fault after releasing the lock, so that a delay does not serialise requests.
async fn serve(req: &HttpRequest, state: &Shared, f: impl FnOnce(View<'_>) -> Answer) -> HttpResponse {
    let (response, delay) = {
        let mut guard = state.lock().unwrap_or_else(|e| e.into_inner());
        let response = answer(req, &mut guard, f);
        (response, guard.faults.delay)
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    response
}

/// Authenticates, applies the request-wide faults, runs `f`, and applies the body faults to its success.
fn answer(req: &HttpRequest, s: &mut State, f: impl FnOnce(View<'_>) -> Answer) -> HttpResponse {
    s.requests += 1;
    if let Some((left, secs)) = s.faults.rate_limited {
        s.faults.rate_limited = (left > 1).then_some((left - 1, secs));
        let retry_after = if s.faults.retry_after_http_date { http_date_in(secs) } else { None };
        return HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", retry_after.unwrap_or_else(|| secs.to_string())))
            .finish();
    }
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Token "))
        .unwrap_or_default();
    if s.revoked.contains(token) {
        return unauthorized();
    }
    let Some(entry) = s.accounts.get_mut(token) else {
        return unauthorized();
    };
    let index = entry.index.get_or_insert_with(|| Index::build(&entry.account));
    let body = match f(View { account: &entry.account, index, faults: &s.faults }) {
        Ok(body) => body,
        Err(refusal) => return refusal.response(),
    };
    let served = s.served.is_some().then(|| served(req, &body, &entry.account, &s.faults)).flatten();
    let Ok(mut bytes) = serde_json::to_vec(&body) else {
        return HttpResponse::InternalServerError().finish();
    };
    if s.faults.truncate_responses > 0 {
        s.faults.truncate_responses -= 1;
        bytes.truncate(bytes.len() / 2);
    } else if let (Some(record), Some(served)) = (s.served.as_mut(), served) {
        record.push(served);
    }
    HttpResponse::Ok().content_type("application/json").body(bytes)
}

/// What a successful answer to `req` sent, for the record of [`Served`] answers.
fn served(req: &HttpRequest, body: &Value, account: &Account, faults: &Faults) -> Option<Served> {
    let ids = |key: &str| -> Vec<i64> {
        body[key].as_array().map(|items| items.iter().filter_map(|i| i["id"].as_i64()).collect()).unwrap_or_default()
    };
    let path = req.path().trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').collect();
    match segments[..] {
        [.., "products", product, "exploratory_tests"] => {
            let tests = ids("exploratory_tests").into_iter().filter(|id| !faults.test_overrides.contains_key(id));
            Some(Served::TestPage { product: product.parse().ok()?, tests: tests.collect() })
        }
        [.., "exploratory_tests", id] => {
            let id: i64 = id.parse().ok()?;
            (!faults.test_overrides.contains_key(&id)).then_some(Served::Test { id })
        }
        [.., "bugs"] => {
            let filter = web::Query::<BugFilter>::from_query(req.query_string()).ok()?;
            let asked = filter.filter_test_cycle_ids.as_deref().unwrap_or_default().split(',');
            let spoiled: HashSet<i64> =
                faults.bug_overrides.keys().filter_map(|bug| account.bugs.get(bug).map(|b| b.test_id)).collect();
            let mut tests: Vec<i64> =
                asked.filter_map(|s| s.trim().parse().ok()).filter(|t| !spoiled.contains(t)).collect();
            tests.sort_unstable();
            tests.dedup();
            let bugs = ids("bugs").into_iter().filter(|id| !faults.bug_overrides.contains_key(id)).collect();
            Some(Served::Bugs { tests, bugs })
        }
        _ => None,
    }
}

/// `secs` from now as an HTTP date (IMF-fixdate), rounded up to the next whole second; `None` if out of range.
fn http_date_in(secs: u64) -> Option<String> {
    let now = Utc::now();
    let round_up = i64::from(now.timestamp_subsec_nanos() > 0);
    let at = now.timestamp().checked_add(round_up)?.checked_add(i64::try_from(secs).ok()?)?;
    Some(DateTime::from_timestamp(at, 0)?.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
}

fn unauthorized() -> HttpResponse {
    HttpResponse::Unauthorized().json(json!({ "error": "invalid token" }))
}

fn product_json(p: &Product) -> Value {
    json!({ "id": p.id, "name": p.name, "description": null, "type": p.kind, "default_section_id": null,
            "sections": [] })
}

impl View<'_> {
    fn test_json(&self, t: &Test) -> Value {
        if let Some(replacement) = self.faults.test_overrides.get(&t.id) {
            return replacement.clone();
        }
        let product = self.account.products.get(&t.product_id);
        json!({
            "id": t.id, "title": t.title, "test_title": t.title, "status": t.status, "testing_type": t.testing_type,
            "start_at": t.start_at.to_rfc3339(), "end_at": t.end_at.to_rfc3339(),
            "goal_text": "Find bugs", "instructions_text": null, "out_of_scope_text": null,
            "product": { "id": t.product_id, "name": product.map(|p| p.name.clone()) },
            "test_environment": { "id": t.id, "title": "Staging", "url": "https://staging.example.com",
                                  "username": "tester", "password": "s3cret-env-password" },
            "features": [], "requirements": [], "review_status": null,
        })
    }

    fn bug_json(&self, b: &Bug) -> Value {
        if let Some(replacement) = self.faults.bug_overrides.get(&b.id) {
            return replacement.clone();
        }
        let test = self.account.tests.get(&b.test_id);
        json!({
            "id": b.id, "title": b.title, "severity": b.severity, "status": b.status, "auto_accepted": false,
            "known": false, "reported_at": test.map(|t| t.start_at.to_rfc3339()),
            "test": { "id": b.test_id, "title": test.map(|t| t.title.clone()) },
            "feature": null, "author": { "name": "Tester" }, "steps": ["Open the page", "Click"],
            "expected_result": "It works", "actual_result": "It does not", "devices": [], "attachments": [],
            "comments": [], "exported_at": null, "external_idx": null,
        })
    }
}

async fn products(req: HttpRequest, state: Shared) -> HttpResponse {
    serve(&req, &state, |v| {
        let products: Vec<Value> = v
            .account
            .products
            .values()
            .map(|p| v.faults.product_overrides.get(&p.id).cloned().unwrap_or_else(|| product_json(p)))
            .collect();
        Ok(json!({ "products": products }))
    })
    .await
}

async fn product(req: HttpRequest, state: Shared, id: web::Path<i64>) -> HttpResponse {
    serve(&req, &state, |v| match v.account.products.get(&id) {
        Some(p) => Ok(json!({ "product": product_json(p) })),
        None => Err(Refusal::NotFound),
    })
    .await
}

#[derive(Deserialize)]
struct Paging {
    page: Option<usize>,
    per_page: Option<usize>,
}

async fn product_tests(
    req: HttpRequest,
    state: Shared,
    id: web::Path<i64>,
    paging: web::Query<Paging>,
) -> HttpResponse {
    let id = id.into_inner();
    state.lock().unwrap_or_else(|e| e.into_inner()).list_requests += 1;
    serve(&req, &state, |v| list_tests(v, id, &paging)).await
}

fn list_tests(v: View<'_>, id: i64, paging: &Paging) -> Answer {
    if !v.account.products.contains_key(&id) {
        return Err(Refusal::NotFound);
    }
    let tests = v.index.tests_by_product.get(&id).map_or(&[][..], Vec::as_slice);
    let range = match paging.page {
        // Without `page`, `per_page` is ignored and only the newest 150 come back.
        None => 0..tests.len().min(150),
        Some(page) => {
            let per_page = paging.per_page.unwrap_or(25).max(1);
            let start = page.saturating_sub(1).saturating_mul(per_page);
            start.min(tests.len())..start.saturating_add(per_page).min(tests.len())
        }
    };
    if v.faults.failing_test_offsets.iter().any(|(p, offset)| *p == id && range.contains(offset)) {
        return Err(Refusal::PageFails);
    }
    let page: Vec<Value> =
        tests[range].iter().filter_map(|id| v.account.tests.get(id)).map(|t| v.test_json(t)).collect();
    Ok(json!({ "exploratory_tests": page }))
}

async fn one_test(req: HttpRequest, state: Shared, id: web::Path<i64>) -> HttpResponse {
    serve(&req, &state, |v| match v.account.tests.get(&id) {
        Some(t) => Ok(json!({ "exploratory_test": v.test_json(t) })),
        None => Err(Refusal::NotFound),
    })
    .await
}

#[derive(Deserialize)]
struct BugFilter {
    filter_test_cycle_ids: Option<String>,
}

async fn bugs(req: HttpRequest, state: Shared, filter: web::Query<BugFilter>) -> HttpResponse {
    serve(&req, &state, |v| list_bugs(v, &filter)).await
}

fn list_bugs(v: View<'_>, filter: &BugFilter) -> Answer {
    let ids: HashSet<i64> = filter
        .filter_test_cycle_ids
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    if v.faults.bug_batch_limit.is_some_and(|limit| ids.len() > limit) {
        return Err(Refusal::BatchTooLarge);
    }
    let mut found: Vec<i64> = ids.iter().filter_map(|id| v.index.bugs_by_test.get(id)).flatten().copied().collect();
    found.sort_unstable();
    let bugs: Vec<Value> = found.iter().filter_map(|id| v.account.bugs.get(id)).map(|b| v.bug_json(b)).collect();
    Ok(json!({ "bugs": bugs }))
}
