//! The scan of one product's test list: newest first until enough quiet pages, then the resumable backfill; failing
//! pages are fetched again in smaller pages down to single items, and what still fails becomes a gap.

use entity::sync::{BackfillCursor, BackfillProgress, Gap, GapKey, backfill_cursor, set_backfill_cursor};
use serde_json::Value;

use super::{Job, Stored, SyncError, verify};

/// A full scan reads at most this many times `max_pages_per_product` pages of one list.
const FULL_SCAN_PAGE_LIMIT: usize = 20;

/// What a range of the list gave.
#[derive(Default)]
pub(super) struct Range {
    items: Vec<Value>,
    /// The list ended inside the range.
    ended: bool,
    gaps: Vec<Gap>,
    /// Offsets of the range that were read (their old gaps close).
    read: Vec<i64>,
}

impl Range {
    /// Every offset of the range failed.
    pub(super) fn unreadable(&self) -> bool {
        self.items.is_empty() && !self.gaps.is_empty() && !self.ended
    }
}

impl Job<'_> {
    /// Scans a product; returns whether its whole list was read in this run (only then can a test missing from it be
    /// looked up as possibly deleted). `reconcile`: read the whole list, unless its backfill is still under way (the
    /// backfill then goes on from its cursor, so a crash or a deep history never restarts it from the top).
    pub(super) async fn scan_product(&mut self, product: i64, reconcile: bool) -> Result<bool, SyncError> {
        let page = self.settings.page_size.max(1);
        let txn = self.begin().await?;
        let cursor = backfill_cursor(&txn, product).await?;
        txn.commit().await?;
        let first = cursor == BackfillCursor::NotStarted;
        let full = reconcile && cursor == BackfillCursor::Done;

        let mut offset = 0usize;
        let mut pages = 0usize;
        let mut quiet_pages = 0usize;
        loop {
            let range = self.fetch_range(product, offset, page).await?;
            if range.unreadable() {
                // Not one item of the page could be read: record the gaps and leave this product for a later run
                // rather than walk the rest of its list item by item.
                self.store_range(product, offset, range, None).await?;
                return Ok(false);
            }
            pages += 1;
            let ended = range.ended;
            // The first scan of a product is its backfill: it saves its position with every page.
            let save = if ended {
                Some((product, BackfillProgress::Done))
            } else if first {
                Some((product, BackfillProgress::At((offset + page) as i64)))
            } else {
                None
            };
            let stored = self.store_range(product, offset, range, save).await?;
            offset += page;
            if ended {
                return Ok(true);
            }
            // Only pages that hold nothing new and nothing changed stop the scan: new tests interleaved with known
            // ones, and changes near the top, are all seen.
            quiet_pages = if stored.quiet { quiet_pages + 1 } else { 0 };
            if !full && quiet_pages >= self.settings.stop_after_quiet_pages.max(1) {
                break;
            }
            if full && pages >= FULL_SCAN_PAGE_LIMIT * self.settings.max_pages_per_product {
                // A list that never ends (an API that answers every page number) must not hold the run forever.
                tracing::warn!(product, pages, "the list did not end; leaving the product unverified");
                self.unclean.insert(product);
                return Ok(false);
            }
            if !full && pages >= self.settings.max_pages_per_product {
                // More new tests than one run reads: the backfill restarts where this scan stopped, so that nothing
                // between here and the old cursor is skipped.
                self.backfill_pending = true;
                if !first {
                    let at = match cursor {
                        BackfillCursor::At(at) => at.min(offset as i64),
                        _ => offset as i64,
                    };
                    let txn = self.begin().await?;
                    set_backfill_cursor(&txn, product, BackfillProgress::At(at)).await?;
                    self.commit(txn).await?;
                }
                return Ok(false);
            }
        }
        // The newest-first scan stopped at known tests; the backfill goes on from the cursor (which a first scan has
        // just been moving along with its pages).
        let resume = match cursor {
            BackfillCursor::NotStarted => Some(offset),
            BackfillCursor::At(at) => Some(usize::try_from(at).unwrap_or_default()),
            BackfillCursor::Done => None,
        };
        if let Some(at) = resume {
            self.backfill(product, at).await?;
        }
        Ok(false)
    }

    /// Continues the history of a product from `offset`, saving the position with every page.
    async fn backfill(&mut self, product: i64, mut offset: usize) -> Result<(), SyncError> {
        let page = self.settings.page_size.max(1);
        for _ in 0..self.settings.max_pages_per_product {
            let range = self.fetch_range(product, offset, page).await?;
            if range.unreadable() {
                self.store_range(product, offset, range, None).await?;
                return Ok(());
            }
            let ended = range.ended;
            let cursor = if ended { BackfillProgress::Done } else { BackfillProgress::At((offset + page) as i64) };
            self.store_range(product, offset, range, Some((product, cursor))).await?;
            offset += page;
            if ended {
                return Ok(());
            }
        }
        self.backfill_pending = true;
        Ok(())
    }

    /// Stores the tests of a range read at `offset` (with a backfill position to save, if any). A range read without
    /// a gap is remembered as a page of the list (for the verification and the open tests); one with a gap marks
    /// its product as not verified by this run.
    pub(super) async fn store_range(
        &mut self,
        product: i64,
        offset: usize,
        range: Range,
        cursor: Option<(i64, BackfillProgress)>,
    ) -> Result<Stored, SyncError> {
        let resolved =
            range.read.iter().map(|&offset| GapKey::TestPage { product_id: product, offset }.to_string()).collect();
        let (clean, ended) = (range.gaps.is_empty(), range.ended);
        let stored = self.store_tests(Some(product), range.items, range.gaps, resolved, cursor).await?;
        let page = self.settings.page_size.max(1);
        if clean && stored.clean {
            self.pages.insert((product, offset / page), verify::Page { tests: stored.placed.clone(), ended });
        } else {
            self.unclean.insert(product);
        }
        Ok(stored)
    }

    /// The tests at offsets `[offset, offset + len)`.
    pub(super) async fn fetch_range(&mut self, product: i64, offset: usize, len: usize) -> Result<Range, SyncError> {
        self.counts.list_pages_read += 1;
        let mut range = Range::default();
        self.fetch_covering(product, offset, offset + len, len, &mut range).await?;
        Ok(range)
    }

    /// Fetches `[from, to)` in pages of `size` (the pages that cover it; items around it are welcome too). A failing
    /// page is fetched again in pages of half the size; at size 1 its offset becomes a gap.
    async fn fetch_covering(
        &mut self,
        product: i64,
        from: usize,
        to: usize,
        size: usize,
        range: &mut Range,
    ) -> Result<(), SyncError> {
        let first = from / size;
        let last = to.div_ceil(size);
        for k in first..last {
            match self.source.test_page(product, k + 1, size).await {
                Ok(items) => {
                    let n = items.len();
                    range.items.extend(items);
                    range.read.extend((k * size..k * size + n.max(1)).map(|o| o as i64));
                    if n < size {
                        range.ended = true;
                        return Ok(());
                    }
                }
                Err(e) if e.is_page_failure() => {
                    if size == 1 {
                        range.gaps.push(Gap::test_page(product, k as i64, e.to_string()));
                        continue;
                    }
                    let (lo, hi) = (from.max(k * size), to.min((k + 1) * size));
                    Box::pin(self.fetch_covering(product, lo, hi, size.div_ceil(2), range)).await?;
                    if range.ended {
                        return Ok(());
                    }
                }
                // The product disappeared while being read: the next product list deletes it.
                Err(testio::client::FetchError::NotFound(404)) => {
                    range.ended = true;
                    return Ok(());
                }
                Err(e) => return Err(SyncError::from_fetch(e)),
            }
        }
        Ok(())
    }
}
