//! One sync of one tenant's mirror. The steps, in order:
//!
//! 1. **Products**: the complete list, in one response. Products gone from it are deleted with their tests and bugs.
//! 2. **Plan**: an incremental run whose estimated requests exceed a full run's does the full run instead.
//! 3. **Tests, per product**: a newest-first scan (the API lists tests by `end_at` descending) that stops only after
//!    `stop_after_quiet_pages` consecutive pages in which every test was already mirrored and unchanged, then the
//!    **backfill**: a cursor per product that walks towards the oldest test, at most `max_pages_per_product` pages per
//!    run and resumed by the next run (scheduled at once while a backfill is pending), so history of any depth is
//!    eventually read. A page that fails (500, unreadable body) is fetched again in halves down to single items; an
//!    item that still fails is recorded as a gap and retried by later runs.
//! 4. **Verification** (see [`verify`]): every product whose history is read re-lists a slice of its list from a
//!    persistent boundary, sized so that the whole list is re-read once per `verify_cycle`; mirrored tests that the
//!    slice shows to be gone from their place are read one by one (a 404 deletes them). A pass that reaches the end
//!    of the list without a gap moves the product's `verified_through` to the time the pass started.
//! 5. **Open tests** that no page of this run showed are refreshed through the pages where the mirror places them
//!    (one request per page, not per test); only those not found there are read one by one.
//! 6. **Full run** (`{"full": true}`, or when cheaper): every product's whole list, then every mirrored test not seen
//!    is read one by one (moved or deleted), and every test's bugs.
//! 7. **Bugs** of new, changed, open and recently ended tests, of the tests of the verified slice and of gap-listed
//!    tests, in batches of `bug_batch_size` test ids, split in half on 524 or an unreadable body. A batch answer is
//!    complete for its tests, so their bugs missing from it are deleted.
//!
//! Every write is one short [`TenantTxn`] per page or batch that also renews (and so fences) the worker's lease; no
//! transaction is open while an HTTP request is. A crash loses at most the page in flight, which the next run reads
//! again: upserts make a re-read harmless. `requests` counts every HTTP request, retries included.

mod bugs;
mod rows;
mod tests_scan;
mod verify;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

use entity::mirror::{self, RowCounts};
use entity::sync::gaps::{self, Gap, GapKey, GapKind, OpenGap};
use entity::sync::{BackfillProgress, schedule};
use entity::sync_runs::Counts;
use entity::{TenantId, TenantTxn, testio_connections};
use sea_orm::{DatabaseConnection, DbErr};
use serde_json::Value;
use uuid::Uuid;

use testio::client::{Endpoint, FetchError, TestioClient, envelope_item, envelope_list};

/// Tunables of the algorithm.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// `per_page` of test list requests.
    pub page_size: usize,
    /// Consecutive pages of known, unchanged tests after which the newest-first scan stops.
    pub stop_after_quiet_pages: usize,
    /// Pages of one product read per run by the backfill; the rest waits for the next run.
    pub max_pages_per_product: usize,
    /// Test ids per bug request.
    pub bug_batch_size: usize,
    /// Bug requests of one tenant in flight at once.
    pub tenant_concurrency: usize,
    /// Time in which the rolling verification re-reads every product's whole list.
    pub verify_cycle: Duration,
    /// Tests that ended this recently have their bugs read every run (customers accept and reject bugs then).
    pub bug_review: Duration,
    /// Lease length; renewed on every write.
    pub lease_secs: i64,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            page_size: 50,
            stop_after_quiet_pages: 1,
            max_pages_per_product: 500,
            bug_batch_size: 15,
            tenant_concurrency: 2,
            verify_cycle: Duration::from_secs(24 * 3600),
            bug_review: Duration::from_secs(30 * 24 * 3600),
            lease_secs: 300,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("TestIO refused the token (401)")]
    Unauthorized,
    #[error("another worker took over this tenant")]
    LeaseLost,
    #[error("the worker is shutting down")]
    Cancelled,
    #[error("Failed to read from TestIO: {0}")]
    Source(FetchError),
    #[error("Failed to write the mirror: {0}")]
    Database(#[from] DbErr),
}

impl SyncError {
    fn from_fetch(e: FetchError) -> Self {
        match e {
            FetchError::Unauthorized => Self::Unauthorized,
            FetchError::Cancelled => Self::Cancelled,
            other => Self::Source(other),
        }
    }
}

/// What storing a page of tests found.
pub(crate) struct Stored {
    /// Every test was parsed and stored (none became a gap).
    clean: bool,
    /// Every test was parsed, already mirrored, and unchanged.
    quiet: bool,
    /// The stored tests and their `end_at`, in list order.
    placed: Vec<(i64, Option<DateTime<Utc>>)>,
}

/// How a run ended.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub counts: Counts,
    /// Some product's history is not fully read yet: sync again soon.
    pub backfill_pending: bool,
    /// Gaps still open at the end.
    pub open_gaps: usize,
}

/// The TestIO side of a job: cheap to clone into concurrent requests, which all add to one request count.
#[derive(Clone)]
pub struct Source {
    client: TestioClient,
    endpoint: Endpoint,
    requests: Arc<AtomicU32>,
}

impl Source {
    pub fn new(client: TestioClient, endpoint: Endpoint) -> Self {
        Self { client, endpoint, requests: Arc::default() }
    }

    /// HTTP requests made so far, retries included.
    fn requests(&self) -> i32 {
        i32::try_from(self.requests.load(Ordering::Relaxed)).unwrap_or(i32::MAX)
    }

    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, FetchError> {
        self.client.get_counted(&self.endpoint, path, query, &self.requests).await
    }

    async fn test_page(&self, product: i64, page: usize, per_page: usize) -> Result<Vec<Value>, FetchError> {
        let body = self
            .get(
                &format!("products/{product}/exploratory_tests"),
                &[("page", page.to_string()), ("per_page", per_page.to_string())],
            )
            .await?;
        envelope_list(body, "exploratory_tests")
    }

    /// One test; `Ok(None)` when TestIO no longer knows it.
    async fn test(&self, id: i64) -> Result<Option<Value>, FetchError> {
        match self.get(&format!("exploratory_tests/{id}"), &[]).await {
            Ok(body) => envelope_item(body, "exploratory_test").map(Some),
            // 404 only: a 403 may be a token with fewer rights, which must not delete anything.
            Err(FetchError::NotFound(404)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// One run of one tenant.
pub struct Job<'a> {
    db: &'a DatabaseConnection,
    source: Source,
    tenant: TenantId,
    worker: &'a str,
    settings: &'a SyncSettings,
    run_id: Uuid,
    counts: Counts,
    /// Products listed by this run (and parsed): tests of other products cannot be stored.
    products: HashSet<i64>,
    /// Tests this run read from TestIO, stored or recorded as gaps.
    seen_tests: HashSet<i64>,
    /// Tests whose bugs this run must read, besides those the database selects.
    bug_candidates: HashSet<i64>,
    /// Keys of the gaps open when the run started: a page or item read successfully closes its gap.
    open_gap_keys: HashSet<String>,
    backfill_pending: bool,
    /// Pages of product lists this run read without a gap, by (product, page index).
    pages: HashMap<(i64, usize), verify::Page>,
    /// Products of which some page or test left a gap in this run.
    unclean: HashSet<i64>,
    /// Pages of product lists that left a gap in this run: not fetched again by it.
    failed_pages: HashSet<(i64, usize)>,
    /// Verification states to save once the bugs of the slices are read (see [`verify::Pending`]).
    pending: Vec<verify::Pending>,
    /// Some bug batch or bug left a gap in this run.
    bug_gaps: bool,
    /// When the run started.
    started: DateTime<Utc>,
    /// Products the plan mirrors (`None`: all).
    product_limit: Option<u32>,
    /// Listed products left out because of `product_limit`, ascending.
    skipped: Vec<i64>,
}

impl<'a> Job<'a> {
    pub fn new(
        db: &'a DatabaseConnection,
        source: Source,
        tenant: TenantId,
        worker: &'a str,
        settings: &'a SyncSettings,
        run_id: Uuid,
    ) -> Self {
        Self {
            db,
            source,
            tenant,
            worker,
            settings,
            run_id,
            counts: Counts::default(),
            products: HashSet::new(),
            seen_tests: HashSet::new(),
            bug_candidates: HashSet::new(),
            open_gap_keys: HashSet::new(),
            backfill_pending: false,
            pages: HashMap::new(),
            unclean: HashSet::new(),
            failed_pages: HashSet::new(),
            pending: Vec::new(),
            bug_gaps: false,
            started: Utc::now(),
            product_limit: None,
            skipped: Vec::new(),
        }
    }

    /// Mirrors at most `limit` products (the plan's): the listed products with the lowest ids; the others are
    /// skipped, what was mirrored of them kept as it was.
    pub fn with_product_limit(mut self, limit: Option<u32>) -> Self {
        self.product_limit = limit;
        self
    }

    /// The listed products this run skipped because of the plan, ascending.
    pub fn skipped_products(&self) -> &[i64] {
        &self.skipped
    }

    /// Counts so far (also when the run stopped with an error).
    pub fn counts(&self) -> Counts {
        Counts { requests: self.source.requests(), ..self.counts }
    }

    /// Runs the sync. `full`: read everything; otherwise an incremental run (unless a full one would be cheaper).
    /// `interval`: how often the tenant syncs, which sizes the verification slice.
    #[tracing::instrument(skip_all, fields(tenant_id = %self.tenant, run_id = %self.run_id, full))]
    pub async fn run(&mut self, full: bool, interval: Duration) -> Result<Outcome, SyncError> {
        self.started = Utc::now();
        let gaps = {
            let txn = self.begin().await?;
            let gaps = gaps::open_gaps(&txn).await?;
            txn.commit().await?;
            gaps
        };
        self.open_gap_keys = gaps.iter().map(|g| g.key.clone()).collect();

        self.sync_products(full).await?;
        let reconcile = full || self.full_is_cheaper(interval).await?;
        tracing::Span::current().record("full", reconcile);
        self.retry_gaps(&gaps, reconcile).await?;
        let mut products: Vec<i64> = self.products.iter().copied().collect();
        products.sort_unstable();
        let mut fully_read = Vec::new();
        for product in &products {
            if self.scan_product(*product, reconcile).await? {
                fully_read.push(*product);
            }
        }
        if reconcile {
            self.reconcile_unseen(&fully_read).await?;
        } else {
            self.verify_slices(interval).await?;
        }
        self.refresh_open_tests().await?;
        // The reconcile counts as done once every product's whole list was read in one run; only then are the bugs of
        // every test read too (during a long backfill, each run would otherwise re-read them all).
        let reconciled = reconcile && fully_read.len() == products.len();
        self.sync_bugs(reconciled).await?;
        // Only now, with the bugs read, is what the run verified known.
        if reconciled {
            self.verified_by_full_scan(&fully_read).await?;
        }
        self.save_verifications().await?;

        let txn = self.begin().await?;
        let listed: Vec<i64> = self.products.iter().copied().collect();
        self.counts.gaps_resolved += gaps::resolve_stale_gaps(&txn, self.started, &listed).await? as i32;
        if reconciled {
            testio_connections::set_reconciled(&txn, Utc::now()).await?;
        }
        let open_gaps = gaps::open_gaps(&txn).await?.len();
        self.counts.list_pages_total = self.list_pages_total(&txn).await?;
        let verified_through = self.verified_through(&txn, open_gaps).await?;
        testio_connections::set_verified_through(&txn, verified_through).await?;
        entity::sync_runs::record_verified_through(&txn, self.run_id, verified_through).await?;
        self.commit(txn).await?;
        Ok(Outcome { counts: self.counts(), backfill_pending: self.backfill_pending, open_gaps })
    }

    /// A tenant transaction in which this worker still holds the lease.
    async fn begin(&self) -> Result<TenantTxn, SyncError> {
        let txn = TenantTxn::begin(self.db, self.tenant).await?;
        if !schedule::renew(&txn, self.worker, self.settings.lease_secs).await? {
            txn.rollback().await?;
            return Err(SyncError::LeaseLost);
        }
        Ok(txn)
    }

    /// Commits with the run's progress, so that a crash still shows what was done.
    async fn commit(&self, txn: TenantTxn) -> Result<(), SyncError> {
        entity::sync_runs::record_progress(&txn, self.run_id, self.counts()).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Opens gaps (counting the new ones) and closes the open gaps among `resolved`.
    async fn gaps(
        &mut self,
        txn: &TenantTxn,
        opened: &[Gap],
        resolved: impl IntoIterator<Item = String>,
    ) -> Result<(), DbErr> {
        for gap in opened {
            tracing::warn!(key = %gap.key, reason = %gap.reason, "sync gap");
            if gaps::open_gap(txn, gap).await? {
                self.counts.gaps_opened += 1;
            }
        }
        let opened_keys: HashSet<&str> = opened.iter().map(|g| g.key.as_str()).collect();
        let closing: Vec<String> = resolved
            .into_iter()
            .filter(|k| !opened_keys.contains(k.as_str()) && self.open_gap_keys.contains(k))
            .collect();
        if !closing.is_empty() {
            let n = gaps::resolve_gaps(txn, &closing).await?;
            self.counts.gaps_resolved += n as i32;
            for key in closing {
                self.open_gap_keys.remove(&key);
            }
        }
        Ok(())
    }

    /// Stores the product list and deletes the products gone from it, unless the list cannot be trusted to be
    /// complete: an item without a readable id, or an empty list outside a full run (a product list does not empty
    /// by accident often, but an API hiccup might).
    async fn sync_products(&mut self, full: bool) -> Result<(), SyncError> {
        let items = self.source.get("products", &[]).await.and_then(|b| envelope_list(b, "products"));
        let items = items.map_err(SyncError::from_fetch)?;
        let mut rows = Vec::new();
        let mut gaps = Vec::new();
        let mut keep = Vec::new();
        let mut unidentified = false;
        for item in &items {
            match rows::product(item) {
                Ok(row) => {
                    keep.push(row.testio_id);
                    rows.push(row);
                }
                Err(invalid) => {
                    unidentified |= invalid.id.is_none();
                    keep.extend(invalid.id);
                    gaps.push(Gap::product(invalid.id, invalid.reason));
                }
            }
        }
        rows.sort_unstable_by_key(|r| r.testio_id);
        if let Some(limit) = self.product_limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX)) {
            self.skipped = rows.iter().skip(limit).map(|r| r.testio_id).collect();
            rows.truncate(limit);
        }
        self.counts.products_skipped = i32::try_from(self.skipped.len()).unwrap_or(i32::MAX);
        let txn = self.begin().await?;
        mirror::upsert_products(&txn, &rows).await?;
        if !unidentified && (full || !items.is_empty()) {
            let deleted = mirror::delete_products_except(&txn, &keep).await?;
            self.add_deleted(deleted);
        }
        let resolved: Vec<String> = rows.iter().map(|r| GapKey::Product(Some(r.testio_id)).to_string()).collect();
        self.gaps(&txn, &gaps, resolved).await?;
        self.counts.products = rows.len() as i32;
        self.commit(txn).await?;
        self.products = rows.iter().map(|r| r.testio_id).collect();
        Ok(())
    }

    fn add_deleted(&mut self, deleted: RowCounts) {
        self.counts.tests_deleted += deleted.tests as i32;
        self.counts.bugs_deleted += deleted.bugs as i32;
    }

    /// Reads again what earlier runs could not: single test-list offsets, single tests, and (through the bug step)
    /// the bugs of tests whose bug batch failed.
    async fn retry_gaps(&mut self, gaps: &[OpenGap], reconcile: bool) -> Result<(), SyncError> {
        for gap in gaps {
            match (gap.kind, gap.product_id, gap.page_offset, gap.item_id) {
                // A reconcile rescans every product in full anyway.
                (GapKind::TestPage, Some(product), Some(offset), _) if !reconcile => {
                    if !self.products.contains(&product) {
                        self.close_gap(&gap.key).await?;
                        continue;
                    }
                    let offset = usize::try_from(offset).unwrap_or_default();
                    match self.source.test_page(product, offset + 1, 1).await {
                        Ok(items) => {
                            self.store_tests(Some(product), items, Vec::new(), vec![gap.key.clone()], None).await?;
                        }
                        Err(e) if e.is_page_failure() => {
                            let txn = self.begin().await?;
                            self.gaps(&txn, &[Gap::test_page(product, offset as i64, e.to_string())], []).await?;
                            self.commit(txn).await?;
                        }
                        Err(e) => return Err(SyncError::from_fetch(e)),
                    }
                }
                (GapKind::Test, _, _, Some(id)) => {
                    self.refresh_test(id).await?;
                }
                (GapKind::Bugs | GapKind::Bug, _, _, Some(test_id)) => {
                    self.bug_candidates.insert(test_id);
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn close_gap(&mut self, key: &str) -> Result<(), SyncError> {
        let txn = self.begin().await?;
        self.gaps(&txn, &[], [key.to_owned()]).await?;
        self.commit(txn).await
    }

    /// Parses and stores tests in one transaction. `product`: the product whose list they came from (`None` for a
    /// single test, whose own `product.id` decides). `cursor`: a backfill position to save with them.
    async fn store_tests(
        &mut self,
        product: Option<i64>,
        items: Vec<Value>,
        mut gaps: Vec<Gap>,
        mut resolved: Vec<String>,
        cursor: Option<(i64, BackfillProgress)>,
    ) -> Result<Stored, SyncError> {
        let mut rows = Vec::with_capacity(items.len());
        for item in &items {
            match rows::test(item, product) {
                // A product the plan does not mirror: what is mirrored of it stays as it was.
                Ok(row) if self.skipped.contains(&row.product_id) => {
                    self.seen_tests.insert(row.testio_id);
                }
                Ok(row) if !self.products.contains(&row.product_id) => {
                    self.seen_tests.insert(row.testio_id);
                    gaps.push(Gap::test(
                        Some(row.product_id),
                        row.testio_id,
                        format!("belongs to product {}, which is not listed", row.product_id),
                    ));
                }
                Ok(row) => {
                    self.seen_tests.insert(row.testio_id);
                    resolved.push(GapKey::Test(row.testio_id).to_string());
                    rows.push(row);
                }
                Err(invalid) => {
                    if let Some(id) = invalid.id {
                        self.seen_tests.insert(id);
                        gaps.push(Gap::test(product, id, invalid.reason));
                    } else if let Some(product) = product {
                        gaps.push(Gap::product(Some(product), format!("a listed test: {}", invalid.reason)));
                    }
                }
            }
        }
        let gaps_left = !gaps.is_empty();
        let txn = self.begin().await?;
        let upserted = mirror::upsert_tests(&txn, &rows).await?;
        if let Some((product, cursor)) = cursor {
            entity::sync::set_backfill_cursor(&txn, product, cursor).await?;
        }
        self.gaps(&txn, &gaps, resolved).await?;
        self.counts.pages += 1;
        self.counts.tests_new += upserted.new.len() as i32;
        self.counts.tests_updated += upserted.updated.len() as i32;
        self.commit(txn).await?;
        self.bug_candidates.extend(upserted.new.iter().chain(&upserted.updated));
        Ok(Stored {
            clean: !gaps_left,
            // A test that has not ended yet may still be joined by new ones just below it: its page never stops the
            // scan.
            quiet: !gaps_left
                && !rows.is_empty()
                && upserted.new.is_empty()
                && upserted.updated.is_empty()
                && rows.iter().all(|r| r.end_at.is_some_and(|end| end < self.started)),
            placed: rows.iter().map(|r| (r.testio_id, r.end_at)).collect(),
        })
    }

    /// Reads one test again: stored if readable, deleted from the mirror if TestIO no longer has it.
    /// Whether it was read (stored or deleted); `false`: it became a gap.
    async fn refresh_test(&mut self, id: i64) -> Result<bool, SyncError> {
        match self.source.test(id).await {
            Ok(Some(item)) => {
                let stored = self.store_tests(None, vec![item], Vec::new(), Vec::new(), None).await?;
                return Ok(stored.clean);
            }
            Ok(None) => {
                self.seen_tests.insert(id);
                let txn = self.begin().await?;
                let deleted = mirror::delete_tests(&txn, &[id]).await?;
                self.gaps(&txn, &[], [GapKey::Test(id).to_string()]).await?;
                self.add_deleted(deleted);
                self.commit(txn).await?;
            }
            Err(e) if matches!(e, FetchError::Unauthorized | FetchError::Cancelled) => {
                return Err(SyncError::from_fetch(e));
            }
            Err(e) => {
                let txn = self.begin().await?;
                self.gaps(&txn, &[Gap::test(None, id, e.to_string())], []).await?;
                self.commit(txn).await?;
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// After full scans of `products`: mirrored tests their lists did not show have moved or are gone; reading each
    /// one tells which.
    async fn reconcile_unseen(&mut self, products: &[i64]) -> Result<(), SyncError> {
        let mut unseen = Vec::new();
        let txn = self.begin().await?;
        for product in products {
            let ids = mirror::test_ids_of_product(&txn, *product).await?;
            unseen.extend(ids.into_iter().filter(|id| !self.seen_tests.contains(id)).map(|id| (*product, id)));
        }
        txn.commit().await?;
        for (product, id) in unseen {
            if !self.refresh_test(id).await? {
                self.unclean.insert(product);
            }
        }
        Ok(())
    }

    async fn sync_bugs(&mut self, all: bool) -> Result<(), SyncError> {
        let txn = self.begin().await?;
        let mut ids: HashSet<i64> = if all {
            mirror::all_test_ids(&txn).await?
        } else {
            mirror::tests_needing_bugs(&txn, self.review_since()).await?
        }
        .into_iter()
        .collect();
        // Candidates must still be mirrored (a gap may name a deleted test).
        let extra: Vec<i64> = self.bug_candidates.iter().copied().filter(|id| !ids.contains(id)).collect();
        ids.extend(mirror::known_test_ids(&txn, &extra).await?);
        txn.commit().await?;
        let mut ids: Vec<i64> = ids.into_iter().collect();
        ids.sort_unstable();
        bugs::sync(self, ids).await
    }
}

/// Splits ids into batches.
fn batches(ids: &[i64], size: usize) -> Vec<Vec<i64>> {
    ids.chunks(size.max(1)).map(<[i64]>::to_vec).collect()
}
