//! The query API's reads of the mirror: filtered, sorted, paged lists of products, tests and bugs, one item with its
//! counts, and the tenant's statistics. Every function takes a [`TenantTxn`] (row-level security confines it to one
//! tenant) and runs **one** statement, plus one for a page with a total and up to two for a `q` (see [`Search`]);
//! the statistics are one statement while their cached counters hold ([`StatsCache`]).
//!
//! Lists are built as SQL with bound values: each filter adds a condition, each sort key is an indexed column that is
//! never NULL (`end_key` is `coalesce(end_at, 'infinity')`, `status_key` `coalesce(status, '')`..., generated columns
//! of migration 10), and a page after a [`Keyset`] is the row comparison `(key, testio_id) > ($k, $id)` (or `<`), one
//! index range scan whatever the depth. Every condition compares plain columns with leakproof operators, so that
//! Postgres may use it inside an index scan under row-level security; a filter with one value is an equality (which
//! an ordered index scan can use), with several an `= ANY(..)`, or, on a column that leads the sort's index, one
//! ordered scan per value, merged ([`Sql::split_ids`]). Text search matches the stored lower-cased `search_text`
//! (migration 12) and goes through the definer functions of migration 10 (a pattern cannot use an index under RLS),
//! in two steps: see [`Search`]. An offset page's total is summed from the statistics' counters when they cover its
//! filter ([`counter_sum`]), else counted up to [`TOTAL_CAP`].

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, Statement, Value};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::ids;
use crate::TenantTxn;
use crate::db::stmt;

/// Largest total counted exactly; past it a total is "at least this many".
pub const TOTAL_CAP: u64 = 10_000;

/// Sort direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    Asc,
    Desc,
}

impl Direction {
    fn sql(self) -> &'static str {
        match self {
            Self::Asc => "ASC",
            Self::Desc => "DESC",
        }
    }

    fn after(self) -> &'static str {
        match self {
            Self::Asc => ">",
            Self::Desc => "<",
        }
    }
}

/// The value of a row's sort key, as the keyset of the next page carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SortValue {
    /// A timestamp key; `None` is a missing timestamp, which sorts as `+infinity`.
    Time(Option<DateTime<Utc>>),
    /// A text key; a missing word is `""`.
    Text(String),
    /// The key is the id itself.
    Id,
}

/// Where the previous page ended: the sort key and id of its last row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keyset {
    pub value: SortValue,
    pub id: i64,
}

/// Which rows of the sorted list a page holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Window {
    /// The first `limit` rows, or those after a keyset.
    Keyset { after: Option<Keyset>, limit: u64 },
    /// `limit` rows from `offset`, with the total of the list.
    Offset { offset: u64, limit: u64 },
}

impl Window {
    fn limit(&self) -> u64 {
        match self {
            Self::Keyset { limit, .. } | Self::Offset { limit, .. } => *limit,
        }
    }
}

/// How many rows a list has: exact up to [`TOTAL_CAP`], else at least that many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Total {
    pub count: u64,
    pub exact: bool,
}

/// A page of a list.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// More rows follow the last one (keyset pages).
    pub more: bool,
    /// Offset pages only.
    pub total: Option<Total>,
}

/// An inclusive range of timestamps; either end may be open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TimeRange {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

// ---------------------------------------------------------------------------------------------------------------
// SQL assembly

/// SQL text with its bound values (`$1`, `$2`... in order of [`Sql::bind`]).
#[derive(Default)]
struct Sql {
    conditions: Vec<String>,
    values: Vec<Value>,
    /// A filter read as one ordered scan per value (see [`Sql::split_ids`]): the column and each value's placeholder.
    split: Option<(&'static str, Vec<String>)>,
}

/// Most values a filter is split into (one index scan each); past that it is an `= ANY(..)`.
const MAX_SPLIT: usize = 16;

impl Sql {
    /// Binds `value` and returns its placeholder.
    fn bind(&mut self, value: impl Into<Value>) -> String {
        self.values.push(value.into());
        format!("${}", self.values.len())
    }

    fn condition(&mut self, sql: String) {
        self.conditions.push(sql);
    }

    fn any_of_ids(&mut self, column: &str, ids: &[i64]) {
        match ids {
            [] => {}
            [id] => {
                let p = self.bind(*id);
                self.condition(format!("{column} = {p}"));
            }
            _ => {
                let list: Vec<String> = ids.iter().map(i64::to_string).collect();
                let p = self.bind(format!("{{{}}}", list.join(",")));
                self.condition(format!("{column} = ANY({p}::bigint[])"));
            }
        }
    }

    /// `column` is one of `ids`, where `column` leads the index of the list's sort after `tenant_id`: with 2 to
    /// [`MAX_SPLIT`] ids, a page reads one ordered index scan per id and merges them ([`sorted`]). Postgres reads
    /// `column = ANY(..)` as one unordered scan of every matching row and then sorts them all, or walks the sort
    /// index and filters: either may read thousands of rows for a page of 50, and which one it picks under RLS (where
    /// it cannot tell the tenant's size) is a guess.
    fn split_ids(&mut self, column: &'static str, ids: &[i64]) {
        if !(2..=MAX_SPLIT).contains(&ids.len()) {
            return self.any_of_ids(column, ids);
        }
        let placeholders = ids.iter().map(|id| self.bind(*id)).collect();
        self.split = Some((column, placeholders));
    }

    /// [`Sql::split_ids`] for words.
    fn split_words(&mut self, column: &'static str, words: &[String]) {
        if !(2..=MAX_SPLIT).contains(&words.len()) {
            return self.any_of_words(column, words);
        }
        let placeholders = words.iter().map(|w| self.bind(w.clone())).collect();
        self.split = Some((column, placeholders));
    }

    fn any_of_words(&mut self, column: &str, words: &[String]) {
        match words {
            [] => {}
            [word] => {
                let p = self.bind(word.clone());
                self.condition(format!("{column} = {p}"));
            }
            _ => {
                let p = self.bind(text_array(words));
                self.condition(format!("{column} = ANY({p}::text[])"));
            }
        }
    }

    /// A range on a timestamp, written on its sort key (`key` is the timestamp, or `+infinity` when it is missing),
    /// so that the sort index serves it: `from <= key <= to`, and `key < infinity` for "the timestamp is present".
    fn range(&mut self, key: &str, range: &TimeRange) {
        if let Some(from) = range.from {
            let p = self.bind(from);
            self.condition(format!("{key} >= {p}"));
        }
        match range.to {
            Some(to) => {
                let p = self.bind(to);
                self.condition(format!("{key} <= {p}"));
            }
            None if range.from.is_some() => self.condition(format!("{key} < 'infinity'")),
            None => {}
        }
    }

    /// `q` on `table` (`testio_tests`, `testio_bugs`: their `search_text`), as `search` says.
    fn search(&mut self, table: &str, q: &Option<String>, search: &Search) {
        let Some(q) = q else { return };
        match search {
            Search::Skip => {}
            Search::Ids(ids) if ids.is_empty() => self.condition("false".to_owned()),
            Search::Ids(ids) => self.any_of_ids("testio_id", ids),
            Search::Scan => {
                let p = self.bind(like_pattern(q));
                self.condition(format!("{SEARCH_TEXT} LIKE lower({p})"));
            }
            Search::Unresolved => {
                let p = self.bind(like_pattern(q));
                self.condition(format!("testio_id IN (SELECT testio_id FROM {table}_matching({p}, 2147483647))"));
            }
        }
    }

    fn after(&mut self, key_sql: &str, direction: Direction, keyset: &Keyset) {
        let id = self.bind(keyset.id);
        let op = direction.after();
        match &keyset.value {
            SortValue::Id => self.condition(format!("testio_id {op} {id}")),
            SortValue::Time(t) => {
                let v = self.bind(t.map_or_else(|| "infinity".to_owned(), |t| t.to_rfc3339()));
                self.condition(format!("({key_sql}, testio_id) {op} ({v}::timestamptz, {id})"));
            }
            SortValue::Text(s) => {
                let v = self.bind(s.clone());
                self.condition(format!("({key_sql}, testio_id) {op} ({v}::text, {id})"));
            }
        }
    }

    /// The conditions, a split filter as `column IN (..)`.
    fn where_clause(&self) -> String {
        let split = self.split.as_ref().map(|(column, values)| format!("{column} IN ({})", values.join(", ")));
        Self::where_of(self.conditions.iter().cloned().chain(split))
    }

    /// The conditions of each scan of a split filter (one: no split).
    fn branches(&self) -> Vec<String> {
        match &self.split {
            None => vec![self.where_clause()],
            Some((column, values)) => values
                .iter()
                .map(|v| Self::where_of(self.conditions.iter().cloned().chain([format!("{column} = {v}")])))
                .collect(),
        }
    }

    fn where_of(conditions: impl Iterator<Item = String>) -> String {
        let conditions: Vec<String> = conditions.collect();
        if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) }
    }
}

/// With a split filter ([`Sql::split_ids`]): the ordered scans, one per value, each of its first `limit` rows
/// (`columns`, which must hold what the caller's merge sorts on), as `(..) UNION ALL (..)`.
fn scans(sql: &Sql, columns: &str, table: &str, order: &str, limit: u64) -> Option<String> {
    sql.split.as_ref()?;
    let scans: Vec<String> = sql
        .branches()
        .iter()
        .map(|w| format!("(SELECT {columns} FROM {table} {w} ORDER BY {order} LIMIT {limit})"))
        .collect();
    Some(scans.join(" UNION ALL "))
}

/// How a list applies its `q`.
///
/// A keyset page first **probes** ([`probe_statement`]): it reads the next rows of the list in sort order and tests
/// the pattern on each (a plain filter: fine under RLS, since no index is asked to evaluate it), until it has a page
/// of matches or has read [`PROBE_ROWS`]. When it found a page, or reached the end of the list, the page is exact and
/// done: a common word costs a few hundred row checks, at most [`PROBE_ROWS`]. Otherwise the word is rare; its
/// matches are looked up through the trigram index (at most [`RARE_MATCHES`] + 1 ids, [`resolve_search`]) and the
/// page reads exactly those rows (`Ids`). A word that is rare near the top of the list but has more matches than that
/// overall is filtered row by row (`Scan`). Offset pages (which need a total) skip the probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Search {
    /// The ids of every matching row.
    Ids(Vec<i64>),
    /// Test the pattern on each row the list reads.
    Scan,
    /// Not looked up: the search as a subquery of the definer function (for plans and benchmarks).
    Unresolved,
    /// Leave `q` out (the probe applies it itself).
    Skip,
}

/// How many rows a probe reads at most.
pub const PROBE_ROWS: u64 = 2000;

/// How many matches still count as "rare" (looked up by id).
pub const RARE_MATCHES: usize = 1000;

/// Looks `q` up in `table` (`testio_tests` or `testio_bugs`).
async fn resolve_search(txn: &TenantTxn, table: &str, q: &Option<String>) -> Result<Search, DbErr> {
    let Some(q) = q else { return Ok(Search::Unresolved) };
    let limit = i32::try_from(RARE_MATCHES + 1).unwrap_or(i32::MAX);
    let rows = txn
        .conn()
        .query_all_raw(stmt(
            &format!("SELECT testio_id FROM {table}_matching($1, $2)"),
            [like_pattern(q).into(), limit.into()],
        ))
        .await?;
    let mut found = ids(rows, "testio_id")?;
    if found.len() > RARE_MATCHES {
        return Ok(Search::Scan);
    }
    found.sort_unstable();
    Ok(Search::Ids(found))
}

/// A Postgres array literal of `words`, each quoted.
pub(crate) fn text_array(words: &[String]) -> String {
    let quoted: Vec<String> =
        words.iter().map(|w| format!("\"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""))).collect();
    format!("{{{}}}", quoted.join(","))
}

/// `%q%` with LIKE's metacharacters taken literally.
pub fn like_pattern(q: &str) -> String {
    let mut pattern = String::with_capacity(q.len() + 2);
    pattern.push('%');
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The page statement of a list: `select` columns from `table` under `sql`'s conditions, sorted by `key_sql` then id.
fn page_statement(
    mut sql: Sql,
    select: &str,
    table: &str,
    key_sql: &str,
    direction: Direction,
    window: &Window,
) -> Statement {
    if let Window::Keyset { after: Some(keyset), .. } = window {
        sql.after(key_sql, direction, keyset);
    }
    let dir = direction.sql();
    let order =
        if key_sql == "testio_id" { format!("testio_id {dir}") } else { format!("{key_sql} {dir}, testio_id {dir}") };
    let (tail, rows) = match window {
        Window::Keyset { limit, .. } => (format!("LIMIT {}", limit + 1), limit + 1),
        Window::Offset { offset, limit } => (format!("LIMIT {limit} OFFSET {offset}"), offset + limit),
    };
    let columns = format!("{select}, {key_sql} AS sort_key");
    let sql_text = match scans(&sql, &columns, table, &order, rows) {
        Some(scans) => {
            format!("SELECT * FROM ({scans}) AS merged ORDER BY sort_key {dir}, testio_id {dir} {tail}")
        }
        None => format!("SELECT {select} FROM {table} {} ORDER BY {order} {tail}", sql.where_clause()),
    };
    stmt(&sql_text, sql.values)
}

/// The capped count of a list (offset pages).
fn count_statement(sql: Sql, table: &str) -> Statement {
    let where_clause = sql.where_clause();
    stmt(
        &format!("SELECT count(*) AS n FROM (SELECT 1 FROM {table} {where_clause} LIMIT {}) AS capped", TOTAL_CAP + 1),
        sql.values,
    )
}

/// The probe of a keyset page with a `q` (see [`Search`]): the rows of the list that match `pattern` (`hit`) among
/// its next [`PROBE_ROWS`], in order, and the [`PROBE_ROWS`]th row as a marker that the probe read that many. It
/// streams: the scan stops as soon as the page is full, so a common word reads a few hundred rows, not 2,000.
#[allow(clippy::too_many_arguments)]
fn probe_statement(
    mut sql: Sql,
    select: &str,
    table: &str,
    pattern: &str,
    key_sql: &str,
    direction: Direction,
    after: &Option<Keyset>,
    limit: u64,
) -> Statement {
    if let Some(keyset) = after {
        sql.after(key_sql, direction, keyset);
    }
    let dir = direction.sql();
    let order = format!("{key_sql} {dir}, testio_id {dir}");
    let source = match scans(&sql, "*", table, &order, PROBE_ROWS) {
        Some(scans) => format!("SELECT * FROM ({scans}) AS merged ORDER BY {order} LIMIT {PROBE_ROWS}"),
        None => format!("SELECT * FROM {table} {} ORDER BY {order} LIMIT {PROBE_ROWS}", sql.where_clause()),
    };
    let p = sql.bind(pattern.to_owned());
    stmt(
        &format!(
            "SELECT * FROM (
                 SELECT {select}, {SEARCH_TEXT} LIKE lower({p}) AS hit, row_number() OVER (ORDER BY {order}) AS position,
                        {key_sql} AS sort_key
                   FROM ({source}) AS {table}
             ) AS probe
             WHERE hit OR position = {PROBE_ROWS}
             ORDER BY sort_key {dir}, testio_id {dir} LIMIT {}",
            limit + 2
        ),
        sql.values,
    )
}

/// Runs a probe: the page when it is complete (`None`: look the pattern up instead).
async fn run_probe<T: FromQueryResult>(
    txn: &TenantTxn,
    probe: Statement,
    limit: u64,
) -> Result<Option<Page<T>>, DbErr> {
    let rows = txn.conn().query_all_raw(probe).await?;
    let mut items = Vec::new();
    let mut read_all = false;
    for row in &rows {
        let position: i64 = row.try_get("", "position")?;
        read_all |= u64::try_from(position).unwrap_or_default() >= PROBE_ROWS;
        if row.try_get::<bool>("", "hit")? {
            items.push(T::from_query_result(row, "")?);
        }
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    // Fewer matches than a page: complete only if the list ended before the probe's last row.
    if items.len() <= limit && read_all {
        return Ok(None);
    }
    let more = items.len() > limit;
    items.truncate(limit);
    Ok(Some(Page { items, more, total: None }))
}

/// A list with a text search (tests, bugs): its table, its columns, sort and window, and `filter`,
/// which gives its conditions with `q` applied as a [`Search`] says.
struct Searched<'a, F: Fn(&Search) -> Sql> {
    table: &'static str,
    select: String,
    key_sql: &'static str,
    direction: Direction,
    window: &'a Window,
    q: &'a Option<String>,
    filter: F,
    /// The statement that counts the list exactly from the counters, when its filter is one they cover.
    counted: Option<Statement>,
}

impl<F: Fn(&Search) -> Sql> Searched<'_, F> {
    fn statement(&self, search: &Search) -> Statement {
        page_statement((self.filter)(search), &self.select, self.table, self.key_sql, self.direction, self.window)
    }

    fn count_statement(&self, search: &Search) -> Statement {
        count_statement((self.filter)(search), self.table)
    }

    /// The page: a probe first for a keyset page with a `q`, else the looked-up search (see [`Search`]).
    async fn list<T: FromQueryResult>(&self, txn: &TenantTxn) -> Result<Page<T>, DbErr> {
        if let (Some(q), Window::Keyset { after, limit }) = (self.q, self.window) {
            let probe = probe_statement(
                (self.filter)(&Search::Skip),
                &self.select,
                self.table,
                &like_pattern(q),
                self.key_sql,
                self.direction,
                after,
                *limit,
            );
            if let Some(page) = run_probe(txn, probe, *limit).await? {
                return Ok(page);
            }
        }
        let search = resolve_search(txn, self.table, self.q).await?;
        let count = match (self.window, &self.counted) {
            (Window::Keyset { .. }, _) => None,
            (Window::Offset { .. }, Some(counted)) => Some(Count::Counters(counted.clone())),
            (Window::Offset { .. }, None) => Some(Count::Capped(self.count_statement(&search))),
        };
        run_page(txn, self.statement(&search), count, self.window).await
    }
}

/// How an offset page counts its list.
enum Count {
    /// Exactly, from the counters ([`counter_sum`]).
    Counters(Statement),
    /// Row by row, up to [`TOTAL_CAP`] + 1.
    Capped(Statement),
}

async fn run_page<T: FromQueryResult>(
    txn: &TenantTxn,
    page: Statement,
    count: Option<Count>,
    window: &Window,
) -> Result<Page<T>, DbErr> {
    let mut items = T::find_by_statement(page).all(txn.conn()).await?;
    let limit = usize::try_from(window.limit()).unwrap_or(usize::MAX);
    let more = matches!(window, Window::Keyset { .. }) && items.len() > limit;
    items.truncate(limit);
    let total = match count {
        Some(Count::Counters(count)) => Some(Total { count: count_of(txn, count).await?, exact: true }),
        Some(Count::Capped(count)) => {
            let n = count_of(txn, count).await?;
            Some(Total { count: n.min(TOTAL_CAP), exact: n <= TOTAL_CAP })
        }
        None => None,
    };
    Ok(Page { items, more, total })
}

/// The `n` of a count statement.
async fn count_of(txn: &TenantTxn, count: Statement) -> Result<u64, DbErr> {
    let row = txn.conn().query_one_raw(count).await?;
    let n: i64 = row.map(|r| r.try_get("", "n")).transpose()?.unwrap_or_default();
    Ok(u64::try_from(n).unwrap_or_default())
}

/// The size of a list whose filter is at most a product filter and one counted attribute (`metric`, one of
/// `values`; none: every value), summed from `testio_stat_counts`: exact at any size, a read of a few rows.
fn counter_sum(metric: &str, values: &[String], product_ids: &[i64]) -> Statement {
    let mut sql = Sql::default();
    let m = sql.bind(metric.to_owned());
    sql.condition(format!("metric = {m}"));
    sql.any_of_ids("product_id", product_ids);
    sql.any_of_words("value", values);
    stmt(&format!("SELECT coalesce(sum(n), 0)::bigint AS n FROM testio_stat_counts {}", sql.where_clause()), sql.values)
}

/// `EXPLAIN (FORMAT JSON)` of `statement` in `txn`, for the plan checks.
pub async fn explain(txn: &TenantTxn, statement: &Statement) -> Result<Json, DbErr> {
    let explained = Statement { sql: format!("EXPLAIN (FORMAT JSON) {}", statement.sql), ..statement.clone() };
    let row = txn.conn().query_one_raw(explained).await?;
    row.map(|r| r.try_get::<Json>("", "QUERY PLAN")).transpose().map(Option::unwrap_or_default)
}

// ---------------------------------------------------------------------------------------------------------------
// Products

/// How products are sorted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProductSort {
    Name,
    Id,
}

/// A list of products.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductQuery {
    pub sort: ProductSort,
    pub direction: Direction,
    pub window: Window,
    pub include_raw: bool,
}

/// A product with its totals.
#[derive(Clone, Debug, PartialEq, FromQueryResult)]
pub struct ProductItem {
    pub testio_id: i64,
    pub name: String,
    pub product_type: Option<String>,
    pub first_synced_at: DateTime<Utc>,
    pub changed_at: DateTime<Utc>,
    pub tests_total: i64,
    pub bugs_total: i64,
    pub raw: Option<Json>,
}

impl ProductItem {
    pub fn keyset(&self, sort: ProductSort) -> Keyset {
        let value = match sort {
            ProductSort::Name => SortValue::Text(self.name.clone()),
            ProductSort::Id => SortValue::Id,
        };
        Keyset { value, id: self.testio_id }
    }
}

const PRODUCT_TOTALS: &str = "coalesce((SELECT sum(c.n) FROM testio_stat_counts c
                                      WHERE c.product_id = p.testio_id AND c.metric = 'test_status'), 0)::bigint
                                 AS tests_total,
                             coalesce((SELECT sum(c.n) FROM testio_stat_counts c
                                      WHERE c.product_id = p.testio_id AND c.metric = 'bug_status'), 0)::bigint
                                 AS bugs_total";

fn product_select(include_raw: bool) -> String {
    let raw = if include_raw { "p.raw" } else { "NULL::jsonb" };
    format!("p.testio_id, p.name, p.product_type, p.first_synced_at, p.changed_at, {PRODUCT_TOTALS}, {raw} AS raw")
}

impl ProductQuery {
    fn key_sql(&self) -> &'static str {
        match self.sort {
            ProductSort::Name => "name",
            ProductSort::Id => "testio_id",
        }
    }

    /// The statement of the page.
    pub fn statement(&self) -> Statement {
        // The product list is small; its page is read from `testio_products p` so the totals can correlate.
        let inner = page_statement(
            Sql::default(),
            "testio_id, name",
            "testio_products",
            self.key_sql(),
            self.direction,
            &self.window,
        );
        let dir = self.direction.sql();
        let order = match self.sort {
            ProductSort::Name => format!("p.name {dir}, p.testio_id {dir}"),
            ProductSort::Id => format!("p.testio_id {dir}"),
        };
        Statement {
            sql: format!(
                "SELECT {} FROM ({}) AS page JOIN testio_products p ON p.testio_id = page.testio_id ORDER BY {order}",
                product_select(self.include_raw),
                inner.sql
            ),
            ..inner
        }
    }
}

#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn list_products(txn: &TenantTxn, query: &ProductQuery) -> Result<Page<ProductItem>, DbErr> {
    let count = matches!(query.window, Window::Offset { .. })
        .then(|| Count::Capped(count_statement(Sql::default(), "testio_products")));
    run_page(txn, query.statement(), count, &query.window).await
}

/// One counter of the statistics: `n` rows of `product_id` have `value` for `metric`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, FromQueryResult)]
pub struct Counter {
    pub product_id: i64,
    /// `test_status`, `test_testing_type`, `bug_severity`, `bug_status` or `bug_auto_accepted`.
    pub metric: String,
    /// The stored word (`""` for none; `"true"`/`"false"` for `bug_auto_accepted`).
    pub value: String,
    pub n: i64,
}

/// A product with its counters.
#[derive(Clone, Debug, PartialEq)]
pub struct ProductDetail {
    pub product: ProductItem,
    pub counters: Vec<Counter>,
}

#[derive(FromQueryResult)]
struct ProductDetailRow {
    #[sea_orm(nested)]
    product: ProductItem,
    counters: Json,
}

/// One product with its counters, in one statement.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn product(txn: &TenantTxn, id: i64, include_raw: bool) -> Result<Option<ProductDetail>, DbErr> {
    let sql = format!(
        "SELECT {}, coalesce((SELECT jsonb_agg(c) FROM testio_stat_counts c WHERE c.product_id = p.testio_id),
                               '[]') AS counters
           FROM testio_products p WHERE p.testio_id = $1",
        product_select(include_raw)
    );
    let Some(row) = ProductDetailRow::find_by_statement(stmt(&sql, [id.into()])).one(txn.conn()).await? else {
        return Ok(None);
    };
    Ok(Some(ProductDetail { product: row.product, counters: counters(row.counters)? }))
}

fn counters(json: Json) -> Result<Vec<Counter>, DbErr> {
    serde_json::from_value(json).map_err(|e| DbErr::Custom(format!("Failed to read the counters: {e}")))
}

// ---------------------------------------------------------------------------------------------------------------
// Tests

/// What a test's `q` searches: `search_text` (migration 12) is this text lower-cased.
pub const TEST_SEARCH: &str =
    "(title || ' ' || coalesce(raw->>'goal_text', '') || ' ' || coalesce(raw->>'instructions_text', ''))";

/// The stored, lower-cased text `q` matches (`search_text LIKE lower(pattern)`, which is `ILIKE` on the text).
pub const SEARCH_TEXT: &str = "search_text";

/// Which tests a list holds. Empty lists and `None` filter nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TestFilter {
    pub product_ids: Vec<i64>,
    pub statuses: Vec<String>,
    pub testing_types: Vec<String>,
    pub start: TimeRange,
    pub end: TimeRange,
    pub q: Option<String>,
}

/// How tests are sorted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TestSort {
    EndAt,
    StartAt,
    Title,
    Status,
}

/// A list of tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestQuery {
    pub filter: TestFilter,
    pub sort: TestSort,
    pub direction: Direction,
    pub window: Window,
    pub include_raw: bool,
}

/// A test as the query API shows it.
#[derive(Clone, Debug, PartialEq, FromQueryResult)]
pub struct TestItem {
    pub testio_id: i64,
    pub product_id: i64,
    pub title: String,
    pub status: String,
    pub testing_type: Option<String>,
    pub review_status: Option<String>,
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
    pub first_synced_at: DateTime<Utc>,
    pub changed_at: DateTime<Utc>,
    pub raw: Option<Json>,
}

impl TestItem {
    pub fn keyset(&self, sort: TestSort) -> Keyset {
        let value = match sort {
            TestSort::EndAt => SortValue::Time(self.end_at),
            TestSort::StartAt => SortValue::Time(self.start_at),
            TestSort::Title => SortValue::Text(self.title.clone()),
            TestSort::Status => SortValue::Text(self.status.clone()),
        };
        Keyset { value, id: self.testio_id }
    }
}

fn test_select(include_raw: bool) -> String {
    let raw = if include_raw { "raw" } else { "NULL::jsonb" };
    format!(
        "testio_id, product_id, title, status, testing_type, review_status, start_at, end_at, first_synced_at, \
         changed_at, {raw} AS raw"
    )
}

impl TestFilter {
    /// The conditions for a list sorted by `sort`. With the default sort, several products (or, without products,
    /// several statuses) are read one index scan each: `(tenant_id, product_id, end_key, testio_id)` and
    /// `(tenant_id, status, end_key, testio_id)`.
    fn sql(&self, search: &Search, sort: TestSort) -> Sql {
        let mut sql = Sql::default();
        let by_end = sort == TestSort::EndAt;
        if by_end && self.product_ids.len() > 1 {
            sql.split_ids("product_id", &self.product_ids);
            sql.any_of_words("status", &self.statuses);
        } else if by_end && self.product_ids.is_empty() {
            sql.split_words("status", &self.statuses);
        } else {
            sql.any_of_ids("product_id", &self.product_ids);
            sql.any_of_words("status", &self.statuses);
        }
        sql.any_of_words("testing_type", &self.testing_types);
        sql.range("start_key", &self.start);
        sql.range("end_key", &self.end);
        sql.search("testio_tests", &self.q, search);
        sql
    }

    /// The counters that give the list's size, if they cover the filter: products, and statuses or testing types.
    fn counted(&self) -> Option<Statement> {
        let plain = self.q.is_none() && self.start == TimeRange::default() && self.end == TimeRange::default();
        match (plain, self.statuses.is_empty(), self.testing_types.is_empty()) {
            (true, _, true) => Some(counter_sum("test_status", &self.statuses, &self.product_ids)),
            (true, true, false) => Some(counter_sum("test_testing_type", &self.testing_types, &self.product_ids)),
            _ => None,
        }
    }
}

impl TestQuery {
    fn key_sql(&self) -> &'static str {
        match self.sort {
            TestSort::EndAt => "end_key",
            TestSort::StartAt => "start_key",
            TestSort::Title => "title",
            TestSort::Status => "status",
        }
    }

    fn searched(&self) -> Searched<'_, impl Fn(&Search) -> Sql + '_> {
        Searched {
            table: "testio_tests",
            select: test_select(self.include_raw),
            key_sql: self.key_sql(),
            direction: self.direction,
            window: &self.window,
            q: &self.filter.q,
            filter: |search: &Search| self.filter.sql(search, self.sort),
            counted: self.filter.counted(),
        }
    }

    /// The statement of the page, with `q` as a subquery.
    pub fn statement(&self) -> Statement {
        self.searched().statement(&Search::Unresolved)
    }

    /// The statement counting the list (capped).
    pub fn count_statement(&self) -> Statement {
        self.searched().count_statement(&Search::Unresolved)
    }
}

#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn list_tests(txn: &TenantTxn, query: &TestQuery) -> Result<Page<TestItem>, DbErr> {
    query.searched().list(txn).await
}

/// One bug count of a test: `n` bugs with this severity, status and auto-acceptance.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct BugCount {
    pub severity: String,
    pub status: String,
    pub auto_accepted: bool,
    pub n: i64,
}

/// A test with the counts of its bugs.
#[derive(Clone, Debug, PartialEq)]
pub struct TestDetail {
    pub test: TestItem,
    pub bugs: Vec<BugCount>,
}

#[derive(FromQueryResult)]
struct TestDetailRow {
    #[sea_orm(nested)]
    test: TestItem,
    bugs: Json,
}

/// The statement of [`test`].
pub fn test_statement(id: i64, include_raw: bool) -> Statement {
    let sql = format!(
        "SELECT {}, coalesce((SELECT jsonb_agg(g) FROM (
                    SELECT coalesce(b.severity, '') AS severity, coalesce(b.status, '') AS status,
                           coalesce(b.auto_accepted, false) AS auto_accepted, count(*) AS n
                      FROM testio_bugs b WHERE b.test_id = testio_tests.testio_id GROUP BY 1, 2, 3) g), '[]') AS bugs
           FROM testio_tests WHERE testio_id = $1",
        test_select(include_raw)
    );
    stmt(&sql, [id.into()])
}

/// One test with its bug counts, in one statement.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn test(txn: &TenantTxn, id: i64, include_raw: bool) -> Result<Option<TestDetail>, DbErr> {
    let Some(row) = TestDetailRow::find_by_statement(test_statement(id, include_raw)).one(txn.conn()).await? else {
        return Ok(None);
    };
    let bugs =
        serde_json::from_value(row.bugs).map_err(|e| DbErr::Custom(format!("Failed to read bug counts: {e}")))?;
    Ok(Some(TestDetail { test: row.test, bugs }))
}

// ---------------------------------------------------------------------------------------------------------------
// Bugs

/// What a bug's `q` searches: `search_text` (migration 12) is this text lower-cased.
pub const BUG_SEARCH: &str =
    "(title || ' ' || coalesce(raw->>'expected_result', '') || ' ' || coalesce(raw->>'actual_result', ''))";

/// Which bugs a list holds. Empty lists and `None` filter nothing; `statuses` and `auto_accepted` are alternatives
/// (a bug matches either).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BugFilter {
    pub test_ids: Vec<i64>,
    pub product_ids: Vec<i64>,
    pub severities: Vec<String>,
    pub statuses: Vec<String>,
    /// Also (or only, when `statuses` is empty) the auto-accepted bugs.
    pub auto_accepted: bool,
    pub known: Option<bool>,
    pub reported: TimeRange,
    pub q: Option<String>,
}

/// How bugs are sorted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BugSort {
    ReportedAt,
    Severity,
    Status,
    Title,
}

/// A list of bugs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BugQuery {
    pub filter: BugFilter,
    pub sort: BugSort,
    pub direction: Direction,
    pub window: Window,
    pub include_raw: bool,
}

/// A bug as the query API shows it.
#[derive(Clone, Debug, PartialEq, FromQueryResult)]
pub struct BugItem {
    pub testio_id: i64,
    pub test_id: i64,
    pub product_id: i64,
    pub title: String,
    pub severity: Option<String>,
    pub status: Option<String>,
    pub known: Option<bool>,
    pub auto_accepted: Option<bool>,
    pub reported_at: Option<DateTime<Utc>>,
    pub first_synced_at: DateTime<Utc>,
    pub changed_at: DateTime<Utc>,
    pub raw: Option<Json>,
}

impl BugItem {
    pub fn keyset(&self, sort: BugSort) -> Keyset {
        let value = match sort {
            BugSort::ReportedAt => SortValue::Time(self.reported_at),
            BugSort::Severity => SortValue::Text(self.severity.clone().unwrap_or_default()),
            BugSort::Status => SortValue::Text(self.status.clone().unwrap_or_default()),
            BugSort::Title => SortValue::Text(self.title.clone()),
        };
        Keyset { value, id: self.testio_id }
    }
}

fn bug_select(include_raw: bool) -> String {
    let raw = if include_raw { "raw" } else { "NULL::jsonb" };
    format!(
        "testio_id, test_id, product_id, title, severity, status, known, auto_accepted, reported_at, \
         first_synced_at, changed_at, {raw} AS raw"
    )
}

impl BugFilter {
    /// The conditions for a list sorted by `sort`. With the default sort, several products are read one index scan
    /// each (`(tenant_id, product_id, reported_key, testio_id)`).
    fn sql(&self, search: &Search, sort: BugSort) -> Sql {
        let mut sql = Sql::default();
        sql.any_of_ids("test_id", &self.test_ids);
        if sort == BugSort::ReportedAt {
            sql.split_ids("product_id", &self.product_ids);
        } else {
            sql.any_of_ids("product_id", &self.product_ids);
        }
        sql.any_of_words("severity_key", &self.severities);
        match (self.statuses.is_empty(), self.auto_accepted) {
            (true, false) => {}
            (true, true) => sql.condition("auto_accepted".to_owned()),
            (false, false) => sql.any_of_words("status_key", &self.statuses),
            (false, true) => {
                let p = sql.bind(text_array(&self.statuses));
                sql.condition(format!("(status_key = ANY({p}::text[]) OR auto_accepted)"));
            }
        }
        if let Some(known) = self.known {
            let p = sql.bind(known);
            sql.condition(format!("known = {p}"));
        }
        sql.range("reported_key", &self.reported);
        sql.search("testio_bugs", &self.q, search);
        sql
    }

    /// The counters that give the list's size, if they cover the filter: products, and severities, statuses or
    /// auto-acceptance.
    fn counted(&self) -> Option<Statement> {
        let plain = self.q.is_none()
            && self.test_ids.is_empty()
            && self.known.is_none()
            && self.reported == TimeRange::default();
        let (severities, statuses) = (self.severities.is_empty(), self.statuses.is_empty());
        match (plain, severities, statuses, self.auto_accepted) {
            (true, _, true, false) => Some(counter_sum("bug_severity", &self.severities, &self.product_ids)),
            (true, true, false, false) => Some(counter_sum("bug_status", &self.statuses, &self.product_ids)),
            (true, true, true, true) => Some(counter_sum("bug_auto_accepted", &["true".to_owned()], &self.product_ids)),
            _ => None,
        }
    }
}

impl BugQuery {
    fn key_sql(&self) -> &'static str {
        match self.sort {
            BugSort::ReportedAt => "reported_key",
            BugSort::Severity => "severity_key",
            BugSort::Status => "status_key",
            BugSort::Title => "title",
        }
    }

    fn searched(&self) -> Searched<'_, impl Fn(&Search) -> Sql + '_> {
        Searched {
            table: "testio_bugs",
            select: bug_select(self.include_raw),
            key_sql: self.key_sql(),
            direction: self.direction,
            window: &self.window,
            q: &self.filter.q,
            filter: |search: &Search| self.filter.sql(search, self.sort),
            counted: self.filter.counted(),
        }
    }

    /// The statement of the page, with `q` as a subquery.
    pub fn statement(&self) -> Statement {
        self.searched().statement(&Search::Unresolved)
    }

    /// The statement counting the list (capped).
    pub fn count_statement(&self) -> Statement {
        self.searched().count_statement(&Search::Unresolved)
    }
}

#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn list_bugs(txn: &TenantTxn, query: &BugQuery) -> Result<Page<BugItem>, DbErr> {
    query.searched().list(txn).await
}

/// One bug.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn bug(txn: &TenantTxn, id: i64, include_raw: bool) -> Result<Option<BugItem>, DbErr> {
    BugItem::find_by_statement(bug_statement(id, include_raw)).one(txn.conn()).await
}

/// The statement of [`bug`].
pub fn bug_statement(id: i64, include_raw: bool) -> Statement {
    stmt(&format!("SELECT {} FROM testio_bugs WHERE testio_id = $1", bug_select(include_raw)), [id.into()])
}

// ---------------------------------------------------------------------------------------------------------------
// Statistics

/// The tenant's counters and the state of its sync.
#[derive(Clone, Debug, PartialEq)]
pub struct Stats {
    /// Every product (id, name), with or without counters.
    pub products: Vec<(i64, String)>,
    pub counters: Vec<Counter>,
    pub sync: SyncState,
}

/// The counted part of the statistics: what changes only with the mirror's data.
#[derive(Clone, Debug, PartialEq)]
pub struct Counted {
    /// Every product (id, name), with or without counters.
    pub products: Vec<(i64, String)>,
    pub counters: Vec<Counter>,
}

/// What the statistics say about freshness.
#[derive(Clone, Debug, PartialEq, Eq, FromQueryResult)]
pub struct SyncState {
    /// `active` or `needs_token`; `None` without a connection.
    pub connection_status: Option<String>,
    pub verified_through: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    /// Status of the last finished run.
    pub last_run_status: Option<String>,
    pub last_run_finished_at: Option<DateTime<Utc>>,
    /// When the next scheduled run is due (`None`: not scheduled).
    pub sync_due_at: Option<DateTime<Utc>>,
    pub open_gaps: i64,
    /// A run is running now.
    pub running: bool,
    /// The database's clock, to judge `sync_due_at` by.
    pub now: DateTime<Utc>,
}

#[derive(FromQueryResult)]
struct StateRow {
    #[sea_orm(nested)]
    sync: SyncState,
    /// The version of the counted statistics (`testio_mirror_versions`, migration 12; 0: never counted).
    version: i64,
}

#[derive(FromQueryResult)]
struct ProductName {
    testio_id: i64,
    name: String,
}

/// The state of the sync and the version of the counted statistics, in one statement.
async fn sync_state(txn: &TenantTxn) -> Result<(SyncState, i64), DbErr> {
    let sql = "SELECT (SELECT status FROM testio_connections) AS connection_status,
                      (SELECT verified_through FROM testio_connections) AS verified_through,
                      (SELECT max(finished_at) FROM sync_runs WHERE status = 'succeeded') AS last_success_at,
                      last.status AS last_run_status, last.finished_at AS last_run_finished_at,
                      (SELECT sync_due_at FROM tenants WHERE id = $1) AS sync_due_at,
                      (SELECT count(*) FROM sync_gaps WHERE resolved_at IS NULL) AS open_gaps,
                      EXISTS (SELECT 1 FROM sync_runs WHERE status = 'running') AS running,
                      now() AS now,
                      coalesce((SELECT version FROM testio_mirror_versions WHERE tenant_id = $1), 0) AS version
                 FROM (SELECT 1) AS one
                 LEFT JOIN LATERAL (SELECT status, finished_at FROM sync_runs WHERE finished_at IS NOT NULL
                                     ORDER BY created_at DESC LIMIT 1) AS last ON true";
    let row = StateRow::find_by_statement(stmt(sql, [txn.tenant_id().0.into()]))
        .one(txn.conn())
        .await?
        .ok_or_else(|| DbErr::Custom("the statistics query returned no row".to_owned()))?;
    Ok((row.sync, row.version))
}

/// The products and the counters, as plain rows (a few hundred for a large tenant; aggregating them into JSON in
/// the database cost more than reading them).
async fn counted(txn: &TenantTxn) -> Result<Counted, DbErr> {
    let products = ProductName::find_by_statement(stmt(
        "SELECT testio_id, name FROM testio_products ORDER BY name, testio_id",
        [],
    ))
    .all(txn.conn())
    .await?;
    let counters = Counter::find_by_statement(stmt(
        "SELECT product_id, metric, value, n FROM testio_stat_counts WHERE n <> 0",
        [],
    ))
    .all(txn.conn())
    .await?;
    Ok(Counted { products: products.into_iter().map(|p| (p.testio_id, p.name)).collect(), counters })
}

/// The statistics, uncached: the state of the sync, then the products and counters (three statements).
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn stats(txn: &TenantTxn) -> Result<Stats, DbErr> {
    let (sync, _) = sync_state(txn).await?;
    let Counted { products, counters } = counted(txn).await?;
    Ok(Stats { products, counters, sync })
}

/// Each tenant's counted statistics, built into a `T` (the API's view), kept in memory under the version of its
/// counters (`testio_mirror_versions`, which every change to a counter or a product moves in the same transaction).
/// A read costs one statement (the sync state and the version) while the version holds, three when it moved. The
/// cache is per process and bounded; it only saves work: the version is read in the request's own transaction, under
/// its tenant's row-level security, every time.
pub struct StatsCache<T> {
    entries: quick_cache::sync::Cache<uuid::Uuid, (i64, std::sync::Arc<T>)>,
}

impl<T> StatsCache<T> {
    /// A cache of at most `tenants` tenants' statistics.
    pub fn new(tenants: usize) -> Self {
        Self { entries: quick_cache::sync::Cache::new(tenants.max(1)) }
    }

    /// The sync state and the counted statistics of `txn`'s tenant, as `build` makes them from the counters.
    #[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
    pub async fn read(
        &self,
        txn: &TenantTxn,
        build: impl FnOnce(Counted) -> T,
    ) -> Result<(SyncState, std::sync::Arc<T>), DbErr> {
        let (sync, version) = sync_state(txn).await?;
        let tenant = txn.tenant_id().0;
        if let Some((cached, built)) = self.entries.get(&tenant)
            && cached == version
        {
            return Ok((sync, built));
        }
        let built = std::sync::Arc::new(build(counted(txn).await?));
        self.entries.insert(tenant, (version, built.clone()));
        Ok((sync, built))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_metacharacters_are_literal() {
        assert_eq!(like_pattern("100%_a\\b"), "%100\\%\\_a\\\\b%");
        assert_eq!(like_pattern("plain"), "%plain%");
    }

    #[test]
    fn words_are_quoted_in_array_literals() {
        assert_eq!(text_array(&["a".into(), "b\"c".into(), "d\\".into()]), r#"{"a","b\"c","d\\"}"#);
    }

    #[test]
    fn a_keyset_page_compares_key_and_id_in_the_sort_direction() {
        let query = TestQuery {
            filter: TestFilter { product_ids: vec![1, 2], statuses: vec!["running".into()], ..Default::default() },
            sort: TestSort::StartAt,
            direction: Direction::Desc,
            window: Window::Keyset { after: Some(Keyset { value: SortValue::Time(None), id: 9 }), limit: 10 },
            include_raw: false,
        };
        let statement = query.statement();
        assert!(statement.sql.contains("product_id = ANY($1::bigint[])"), "{}", statement.sql);
        assert!(statement.sql.contains("status = $2"), "{}", statement.sql);
        assert!(statement.sql.contains("(start_key, testio_id) < ($4::timestamptz, $3)"));
        assert!(statement.sql.ends_with("ORDER BY start_key DESC, testio_id DESC LIMIT 11"));
        assert_eq!(statement.values.as_ref().map(|v| v.0.len()), Some(4));
    }

    #[test]
    fn several_products_in_the_default_sort_are_one_ordered_scan_each_merged() {
        let query = TestQuery {
            filter: TestFilter { product_ids: vec![1, 2], statuses: vec!["running".into()], ..Default::default() },
            sort: TestSort::EndAt,
            direction: Direction::Desc,
            window: Window::Keyset { after: Some(Keyset { value: SortValue::Time(None), id: 9 }), limit: 10 },
            include_raw: false,
        };
        let sql = query.statement().sql;
        let scan = |p: &str| {
            format!(
                "WHERE status = $3 AND (end_key, testio_id) < ($5::timestamptz, $4) AND product_id = {p} \
                 ORDER BY end_key DESC, testio_id DESC LIMIT 11)"
            )
        };
        assert!(sql.contains(&scan("$1")) && sql.contains(&scan("$2")), "{sql}");
        assert!(sql.contains(" UNION ALL "), "{sql}");
        assert!(sql.ends_with("AS merged ORDER BY sort_key DESC, testio_id DESC LIMIT 11"), "{sql}");
        // Its total counts the same rows in one go.
        let count = query.count_statement().sql;
        assert!(count.contains("product_id IN ($1, $2)") && !count.contains("UNION"), "{count}");

        // Several statuses without a product: one scan per status; past MAX_SPLIT values, `= ANY`.
        let statuses = |n: usize| TestQuery {
            filter: TestFilter { statuses: (0..n).map(|i| format!("s{i}")).collect(), ..Default::default() },
            ..query.clone()
        };
        assert_eq!(statuses(3).statement().sql.matches(" UNION ALL ").count(), 2);
        let many = statuses(MAX_SPLIT + 1).statement().sql;
        assert!(many.contains("status = ANY($1::text[])") && !many.contains("UNION"), "{many}");
    }

    #[test]
    fn totals_come_from_the_counters_only_for_the_filters_they_cover() {
        let words = |w: &[&str]| w.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let covered = TestFilter { product_ids: vec![1, 2], statuses: words(&["running"]), ..Default::default() };
        let sql = covered.counted().map(|s| s.sql).unwrap_or_default();
        assert!(sql.contains("testio_stat_counts") && sql.contains("metric = $1"), "{sql}");
        assert!(TestFilter { testing_types: words(&["rapid"]), ..Default::default() }.counted().is_some());
        for uncovered in [
            TestFilter { statuses: words(&["running"]), testing_types: words(&["rapid"]), ..Default::default() },
            TestFilter { q: Some("x".into()), ..Default::default() },
            TestFilter { end: TimeRange { from: Some(Utc::now()), to: None }, ..Default::default() },
        ] {
            assert!(uncovered.counted().is_none(), "{uncovered:?}");
        }
        assert!(BugFilter { auto_accepted: true, ..Default::default() }.counted().is_some());
        assert!(
            BugFilter { severities: words(&["high"]), product_ids: vec![3], ..Default::default() }.counted().is_some()
        );
        for uncovered in [
            BugFilter { statuses: words(&["accepted"]), auto_accepted: true, ..Default::default() },
            BugFilter { severities: words(&["high"]), statuses: words(&["accepted"]), ..Default::default() },
            BugFilter { test_ids: vec![1], ..Default::default() },
            BugFilter { known: Some(true), ..Default::default() },
        ] {
            assert!(uncovered.counted().is_none(), "{uncovered:?}");
        }
    }
}
