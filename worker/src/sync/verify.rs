//! Keeping the mirror honest between full runs.
//!
//! - **Rolling verification**: each run re-lists a slice of every product's list (whose history is read), starting
//!   where the last slice ended (a boundary `end_at`, found again in the list through the mirror's count of tests
//!   ending after it), so that the whole list is re-read once per `verify_cycle`. Tests the slice shows (new ones
//!   below known ones, moved ones) are stored; mirrored tests that should have been in the slice's span but were not
//!   are read one by one (moved, or a 404: deleted); the bugs of the slice's tests are read again.
//! - **What it proves**: a pass runs from the top of a list to its end over several runs. If none of its slices left
//!   a gap, every change TestIO made before the pass started is now mirrored: the product's `verified_through`.
//! - **Open tests** the run did not see are refreshed through the pages where the mirror places them.
//! - **The plan**: before scanning, the requests of this incremental run are estimated; if a full run would cost
//!   fewer, the run is a full one.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::mirror;
use entity::sync::{Verification, save_verification, tenant_verification, verifications};
use entity::{TenantTxn, sync};

use super::{Job, SyncError};

/// A page of a product's list read by this run without a gap: its tests with their `end_at`, in list order.
#[derive(Debug, Clone)]
pub(crate) struct Page {
    pub tests: Vec<(i64, Option<DateTime<Utc>>)>,
    /// The list ended on this page.
    pub ended: bool,
}

/// A product's verification state to save at the end of the run: `next` if the bugs of its slice were read without a
/// gap, `if_bug_gap` otherwise (the pass is then not clean).
pub(crate) struct Pending {
    product: i64,
    next: Verification,
    if_bug_gap: Verification,
}

/// Pages before the estimated one tried, at most, to find the boundary again; past that the pass restarts from the
/// top rather than walk a list whose mirror is far off.
const MAX_STEPS_BACK: usize = 4;

impl Job<'_> {
    /// Pages of a list of `tests` tests: what a full scan reads (the last one short, or empty).
    fn list_pages(&self, tests: i64) -> usize {
        usize::try_from(tests).unwrap_or_default() / self.settings.page_size.max(1) + 1
    }

    /// Pages of a list of `tests` tests that one run verifies, so that the list is re-read once per cycle at this
    /// sync interval.
    fn slice_pages(&self, tests: i64, interval: Duration) -> usize {
        let cycle = self.settings.verify_cycle.as_secs_f64().max(1.0);
        let share = (interval.as_secs_f64() / cycle).min(1.0);
        ((self.list_pages(tests) as f64 * share).ceil() as usize).max(1)
    }

    /// Tests that ended after this have their bugs read every run.
    pub(super) fn review_since(&self) -> DateTime<Utc> {
        let window = chrono::Duration::from_std(self.settings.bug_review).unwrap_or(chrono::Duration::days(30));
        self.started.checked_sub_signed(window).unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// Whether a full run costs fewer requests than this incremental one would, by the mirror's counts: a full run
    /// reads every list page and the bugs of every test; an incremental one reads the top of each list, the
    /// verification slices, the pages of the open tests, and the bugs of the tests that need them.
    pub(super) async fn full_is_cheaper(&self, interval: Duration) -> Result<bool, SyncError> {
        let txn = self.begin().await?;
        let counts = mirror::counts_by_product(&txn).await?;
        let verified = verifications(&txn).await?;
        let open = mirror::open_tests_placed(&txn).await?;
        let needing = mirror::tests_needing_bugs(&txn, self.review_since()).await?.len();
        txn.commit().await?;
        let page = self.settings.page_size.max(1);
        let batch = self.settings.bug_batch_size.max(1);
        let tests_of = |p: &i64| counts.get(p).copied().unwrap_or_default();
        let all_tests: usize = self.products.iter().map(|p| usize::try_from(tests_of(p)).unwrap_or_default()).sum();
        let full = self.all_list_pages(&counts) + all_tests.div_ceil(batch);
        let top = self.products.len() * (self.settings.stop_after_quiet_pages.max(1) + 1);
        let slices: usize = self
            .products
            .iter()
            .filter(|p| verified.contains_key(p))
            .map(|p| self.slice_pages(tests_of(p), interval))
            .sum();
        let open_pages: BTreeSet<(i64, i64)> = open
            .iter()
            .filter(|t| self.products.contains(&t.product_id))
            .map(|t| (t.product_id, t.ending_after / page as i64))
            .collect();
        let bugs = (needing + slices * page).min(all_tests).div_ceil(batch);
        let incremental = top + slices + open_pages.len() + bugs;
        tracing::debug!(full, incremental, "planned the run");
        Ok(incremental > full)
    }

    /// A page of a product's list: from this run's reads, or fetched and stored now. `None` when it left a gap.
    async fn page(&mut self, product: i64, index: usize) -> Result<Option<Page>, SyncError> {
        if let Some(page) = self.pages.get(&(product, index)) {
            return Ok(Some(page.clone()));
        }
        if self.failed_pages.contains(&(product, index)) {
            return Ok(None);
        }
        let size = self.settings.page_size.max(1);
        let range = self.fetch_range(product, index * size, size).await?;
        self.store_range(product, index * size, range, None).await?;
        let page = self.pages.get(&(product, index)).cloned();
        if page.is_none() {
            self.failed_pages.insert((product, index));
        }
        Ok(page)
    }

    /// One slice of every verifiable product (see the module).
    pub(super) async fn verify_slices(&mut self, interval: Duration) -> Result<(), SyncError> {
        let txn = self.begin().await?;
        let states = verifications(&txn).await?;
        let counts = mirror::counts_by_product(&txn).await?;
        txn.commit().await?;
        let mut products: Vec<i64> = states.keys().copied().filter(|p| self.products.contains(p)).collect();
        products.sort_unstable();
        for product in products {
            let pages = self.slice_pages(counts.get(&product).copied().unwrap_or_default(), interval);
            let state = states.get(&product).copied().unwrap_or_default();
            self.verify_slice(product, state, pages).await?;
        }
        Ok(())
    }

    async fn verify_slice(&mut self, product: i64, state: Verification, pages: usize) -> Result<(), SyncError> {
        let size = self.settings.page_size.max(1);
        // A continuing slice starts on the page holding the first test after the boundary, as the mirror places it,
        // and must not start below that test: the test the mirror knows next below the boundary (or one TestIO has
        // inserted between them) has to open the page, or tests between the two would go unverified. While it does
        // not (the mirror counts tests above that TestIO no longer lists), the slice steps back a page.
        let (mut first, expected_first) = match state.boundary {
            None => (0, None),
            Some(boundary) => {
                let txn = self.begin().await?;
                let through =
                    mirror::count_ending_after(&txn, product, boundary - chrono::Duration::microseconds(1)).await?;
                let next = mirror::latest_end_before(&txn, product, boundary).await?;
                txn.commit().await?;
                (usize::try_from(through).unwrap_or_default() / size, Some(next.unwrap_or(boundary)))
            }
        };
        // Pages this slice fetched (those of the step back included): only they count towards its size.
        let mut fresh: HashSet<usize> = HashSet::new();
        let mut steps = 0;
        let restart = loop {
            let Some(expected) = expected_first else { break false };
            if first == 0 {
                break false;
            }
            if !self.pages.contains_key(&(product, first)) {
                fresh.insert(first);
            }
            let Some(page) = self.page(product, first).await? else { break false };
            let late = page.tests.first().is_none_or(|(_, end)| end.is_some_and(|end| end < expected));
            if !late {
                break false;
            }
            if steps == MAX_STEPS_BACK {
                break true;
            }
            steps += 1;
            first -= 1;
        };
        if restart {
            tracing::warn!(product, "the verification boundary is far from where the mirror places it; restarting");
            let state = Verification { boundary: None, pass_started_at: None, clean: true, ..state };
            let txn = self.begin().await?;
            save_verification(&txn, product, &state).await?;
            return self.commit(txn).await;
        }

        // `pages` pages beyond those this run already read (the top of the list, usually).
        let mut read: Vec<(i64, Option<DateTime<Utc>>)> = Vec::new();
        let (mut clean, mut ended) = (true, false);
        // Progress: fresh pages that reach below the boundary. A page that does not (usually the one the last slice
        // ended on) is overlap, up to a few of them.
        let (mut progress, mut overlap) = (0, 0);
        for index in first.. {
            let cached = self.pages.contains_key(&(product, index));
            if !cached && progress >= pages {
                break;
            }
            if !cached {
                fresh.insert(index);
            }
            match self.page(product, index).await? {
                Some(page) => {
                    let reaches_below = state.boundary.is_none_or(|boundary| {
                        page.tests.last().and_then(|(_, end)| *end).is_none_or(|end| end < boundary)
                    });
                    if fresh.contains(&index) {
                        if reaches_below || overlap == MAX_STEPS_BACK {
                            progress += 1;
                        } else {
                            overlap += 1;
                        }
                    }
                    read.extend(page.tests);
                    if page.ended {
                        ended = true;
                        break;
                    }
                }
                None => {
                    clean = false;
                    break;
                }
            }
        }
        let ends = read.iter().filter_map(|(_, end)| *end);
        let (highest, lowest) = (ends.clone().max(), ends.min());
        // A new pass owes nothing to the one before it.
        let state = if state.boundary.is_none() { Verification { clean: true, ..state } } else { state };
        if !clean && read.is_empty() {
            let state = Verification { clean: false, ..state };
            self.pending.push(Pending { product, next: state, if_bug_gap: state });
            return Ok(());
        }
        // Mirrored tests that the pages read must have shown, since they end strictly inside the span they cover (at
        // the top of the list, above it too; at its end, below it too), but did not: moved or deleted. A slice that
        // continues a pass covers everything below the boundary (the last slice covered what is above it).
        let above = match state.boundary {
            None if first == 0 => None,
            None => highest,
            Some(boundary) => Some(highest.map_or(boundary, |h| h.max(boundary))),
        };
        let below = if ended && clean { None } else { lowest };
        let txn = self.begin().await?;
        let mut inside = mirror::ids_ending_between(&txn, product, below, above).await?;
        if ended && clean {
            // Tests without an `end_at` have no known place in the list: each completed pass reads them once more.
            inside.extend(mirror::ids_without_end_at(&txn, product).await?);
        }
        txn.commit().await?;
        let missing: Vec<i64> = inside.into_iter().filter(|id| !self.seen_tests.contains(id)).collect();
        for id in missing {
            if !self.refresh_test(id).await? {
                clean = false;
            }
        }
        self.bug_candidates.extend(read.iter().map(|(id, _)| *id));

        let clean = clean && !self.unclean.contains(&product);
        self.counts.products_verified += i32::from(clean);
        let pass_started_at = state.pass_started_at.filter(|_| state.boundary.is_some()).or(Some(self.started));
        // The boundary only moves down: a slice that read nothing below it leaves it where it was.
        let boundary = match (lowest, state.boundary) {
            (Some(lowest), Some(boundary)) => Some(lowest.min(boundary)),
            (lowest, boundary) => lowest.or(boundary),
        };
        let (next, if_bug_gap) = if ended && clean {
            let verified_through = if state.clean { pass_started_at } else { state.verified_through };
            let next_pass = Verification { boundary: None, pass_started_at: None, clean: true, verified_through };
            (next_pass, Verification { verified_through: state.verified_through, ..next_pass })
        } else {
            let next = Verification {
                boundary,
                pass_started_at,
                clean: state.clean && clean,
                verified_through: state.verified_through,
            };
            (next, Verification { clean: false, ..next })
        };
        self.pending.push(Pending { product, next, if_bug_gap });
        Ok(())
    }

    /// Saves the verification states of this run's slices, now that their bugs are read.
    pub(super) async fn save_verifications(&mut self) -> Result<(), SyncError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let txn = self.begin().await?;
        for pending in std::mem::take(&mut self.pending) {
            let state = if self.bug_gaps { pending.if_bug_gap } else { pending.next };
            save_verification(&txn, pending.product, &state).await?;
        }
        self.commit(txn).await
    }

    /// A full run read the whole lists of `products` and every test's bugs: those it read without a gap are verified
    /// as of its start.
    pub(super) async fn verified_by_full_scan(&mut self, products: &[i64]) -> Result<(), SyncError> {
        if self.bug_gaps {
            return Ok(());
        }
        let txn = self.begin().await?;
        for product in products.iter().filter(|p| !self.unclean.contains(p)) {
            self.counts.products_verified += 1;
            let state = Verification {
                boundary: None,
                pass_started_at: None,
                clean: true,
                verified_through: Some(self.started),
            };
            save_verification(&txn, *product, &state).await?;
        }
        self.commit(txn).await
    }

    /// Open tests this run did not see, read through the pages where the mirror places them; those not there are
    /// read one by one.
    pub(super) async fn refresh_open_tests(&mut self) -> Result<(), SyncError> {
        let txn = self.begin().await?;
        let open = mirror::open_tests_placed(&txn).await?;
        txn.commit().await?;
        let size = self.settings.page_size.max(1) as i64;
        let unseen: Vec<_> = open.into_iter().filter(|t| !self.seen_tests.contains(&t.testio_id)).collect();
        let pages: BTreeSet<(i64, usize)> = unseen
            .iter()
            .filter(|t| self.products.contains(&t.product_id))
            .map(|t| (t.product_id, usize::try_from(t.ending_after / size).unwrap_or_default()))
            .collect();
        for (product, index) in pages {
            self.page(product, index).await?;
        }
        let missing: Vec<i64> = unseen.iter().map(|t| t.testio_id).filter(|id| !self.seen_tests.contains(id)).collect();
        for id in missing {
            self.refresh_test(id).await?;
        }
        Ok(())
    }

    /// Pages of all the lists, as far as the mirror knows them.
    pub(super) async fn list_pages_total(&self, txn: &TenantTxn) -> Result<i32, SyncError> {
        let counts = mirror::counts_by_product(txn).await?;
        Ok(i32::try_from(self.all_list_pages(&counts)).unwrap_or(i32::MAX))
    }

    /// Pages of the listed products' lists, given their test counts: what a full run reads.
    fn all_list_pages(&self, counts: &HashMap<i64, i64>) -> usize {
        self.products.iter().map(|p| self.list_pages(counts.get(p).copied().unwrap_or_default())).sum()
    }

    /// How far the tenant's whole mirror is verified: the oldest of its products' `verified_through`, `None` while one
    /// of them has none or a gap is open. A tenant without products is verified as of this run.
    pub(super) async fn verified_through(
        &self,
        txn: &TenantTxn,
        open_gaps: usize,
    ) -> Result<Option<DateTime<Utc>>, SyncError> {
        let state: sync::TenantVerification = tenant_verification(txn).await?;
        // An open gap is something the mirror may not have: no time can be vouched for until it is read.
        Ok(match state {
            _ if open_gaps > 0 => None,
            _ if state.products == 0 => Some(self.started),
            _ if state.all_verified => state.oldest,
            _ => None,
        })
    }
}
