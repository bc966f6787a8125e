//! Reading the audit log back: a tenant's events, filtered, newest first, in keyset pages.
//!
//! Every filter has an index that leads with `tenant_id` and ends with the list's order (`created_at DESC, id DESC`,
//! migration `m20261202_000013_audit_review`), so a page is one ordered index scan that stops after `limit + 1` rows.
//! One value of a filter is an equality (which keeps the index's order); several actions (else actor types, else
//! outcomes) are read as one ordered scan each, merged (`UNION ALL`), rather than one scan of all of them and a sort. Text search (`q`) asks `audit_logs_matching` for the newest matching events before the position, in chunks,
//! and keeps those that pass the other filters; it examines at most [`SEARCH_BUDGET`] matches per page, so a page
//! may come back short with a `next` position to continue from: only `next == None` means the end.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, Value};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::COLUMNS;
use crate::audit_logs::{ActorType, Model, Outcome};
use crate::db::stmt;
use crate::mirror::query::text_array;
use crate::{PlatformAuditTxn, TenantTxn};

/// Matches examined by one page of a text search, at most.
pub const SEARCH_BUDGET: usize = 5_000;
/// Matches asked of `audit_logs_matching` at once when other filters may reject some.
const SEARCH_CHUNK: usize = 500;
/// Most values of one filter read as merged scans; more are read with `= ANY` (and sorted).
pub const MAX_MERGED: usize = 16;

/// Which events: every field narrows (AND); the values of one list are alternatives (OR).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuditFilter {
    /// Exact action names (prefixes are expanded by the caller from [`super::AuditAction`]).
    pub actions: Vec<String>,
    pub actor_types: Vec<ActorType>,
    pub actor_id: Option<Uuid>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub outcomes: Vec<Outcome>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// At or before.
    pub until: Option<DateTime<Utc>>,
    /// Text the actor's or target's name, the target id or the metadata contain (case-insensitive, literal).
    pub q: Option<String>,
    /// Only these tenants' events: the platform review only (a tenant's list is its own tenant's).
    pub tenants: Vec<Uuid>,
}

/// A place in the list: the events strictly after it (older, or as old with a smaller id) come next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPosition {
    #[serde(rename = "c")]
    pub created_at: DateTime<Utc>,
    #[serde(rename = "i")]
    pub id: Uuid,
}

impl AuditPosition {
    pub fn of(event: &Model) -> Self {
        Self { created_at: event.created_at, id: event.id }
    }
}

/// One page of events, newest first, and where the next page starts (`None`: there is none).
#[derive(Debug, Clone)]
pub struct AuditPage {
    pub items: Vec<Model>,
    pub next: Option<AuditPosition>,
}

/// A statement's text and its values, built condition by condition.
struct Sql {
    conditions: Vec<String>,
    values: Vec<Value>,
}

impl Sql {
    fn bind(&mut self, value: impl Into<Value>) -> String {
        self.values.push(value.into());
        format!("${}", self.values.len())
    }

    /// `column` is one of `values` (nothing when empty): `=` for one value, so that the column's index keeps the
    /// list's order (Postgres 15 reads `= ANY(..)` value by value, and would sort).
    fn one_of(&mut self, column: &str, values: &[String]) {
        match values {
            [] => {}
            [one] => {
                let p = self.bind(one.clone());
                self.conditions.push(format!("{column} = {p}"));
            }
            many => {
                let p = self.bind(text_array(many));
                self.conditions.push(format!("{column} = ANY({p}::text[])"));
            }
        }
    }
}

/// The multi-valued filter read as one ordered scan per value, merged: the actions, else the actor types, else the
/// outcomes, when one of them has 2 to [`MAX_MERGED`] values.
fn merged(filter: &AuditFilter) -> Option<(&'static str, Vec<String>)> {
    let fits = |n: usize| (2..=MAX_MERGED).contains(&n);
    if fits(filter.actions.len()) {
        return Some(("action", filter.actions.clone()));
    }
    if fits(filter.actor_types.len()) {
        return Some(("actor_type", filter.actor_types.iter().map(sea_orm::ActiveEnum::to_value).collect()));
    }
    if fits(filter.outcomes.len()) {
        return Some(("outcome", filter.outcomes.iter().map(sea_orm::ActiveEnum::to_value).collect()));
    }
    None
}

/// Whose events a list reads.
#[derive(Clone, Copy)]
enum Scope {
    /// The transaction's tenant (row-level security shows no other).
    Tenant(Uuid),
    /// Every tenant, or `filter.tenants` (the platform review's reader role).
    Platform,
}

/// The conditions of `filter` but `q` and the actions, and of the position.
fn conditions(scope: Scope, filter: &AuditFilter, after: Option<AuditPosition>) -> Sql {
    let mut sql = Sql { conditions: Vec::new(), values: Vec::new() };
    match scope {
        Scope::Tenant(tenant) => {
            let p = sql.bind(tenant);
            sql.conditions.push(format!("tenant_id = {p}"));
        }
        Scope::Platform if !filter.tenants.is_empty() => {
            let ids: Vec<String> = filter.tenants.iter().map(Uuid::to_string).collect();
            let p = sql.bind(text_array(&ids));
            sql.conditions.push(format!("tenant_id = ANY({p}::uuid[])"));
        }
        Scope::Platform => sql.conditions.push("true".to_owned()),
    }
    let merged = merged(filter).map(|(column, _)| column);
    let actor_types: Vec<String> = filter.actor_types.iter().map(sea_orm::ActiveEnum::to_value).collect();
    if merged != Some("actor_type") {
        sql.one_of("actor_type", &actor_types);
    }
    if let Some(actor) = filter.actor_id {
        let p = sql.bind(actor);
        sql.conditions.push(format!("actor_id = {p}"));
    }
    if let Some(target_type) = &filter.target_type {
        let p = sql.bind(target_type.clone());
        sql.conditions.push(format!("target_type = {p}"));
    }
    if let Some(target_id) = &filter.target_id {
        let p = sql.bind(target_id.clone());
        sql.conditions.push(format!("target_id = {p}"));
    }
    let outcomes: Vec<String> = filter.outcomes.iter().map(sea_orm::ActiveEnum::to_value).collect();
    if merged != Some("outcome") {
        sql.one_of("outcome", &outcomes);
    }
    if merged != Some("action") {
        sql.one_of("action", &filter.actions);
    }
    if let Some(since) = filter.since {
        let p = sql.bind(since);
        sql.conditions.push(format!("created_at >= {p}"));
    }
    if let Some(until) = filter.until {
        let p = sql.bind(until);
        sql.conditions.push(format!("created_at <= {p}"));
    }
    if let Some(after) = after {
        let (c, i) = (sql.bind(after.created_at), sql.bind(after.id));
        sql.conditions.push(format!("(created_at, id) < ({c}, {i})"));
    }
    sql
}

/// The statement of one page of at most `rows` events under `sql`'s conditions (every filter but the merged one,
/// see [`merged`]), plus `extra` (`id = ANY(..)`): one ordered scan per value of the merged filter, merged, or one
/// ordered scan.
fn page_statement(mut sql: Sql, filter: &AuditFilter, extra: Option<String>, rows: usize) -> sea_orm::Statement {
    if let Some(extra) = extra {
        sql.conditions.push(extra);
    }
    let limit = sql.bind(i64::try_from(rows).unwrap_or(i64::MAX));
    let order = "ORDER BY created_at DESC, id DESC";
    let text = match merged(filter) {
        Some((column, values)) => {
            let scans: Vec<String> = values
                .into_iter()
                .map(|value| {
                    let p = sql.bind(value);
                    format!(
                        "(SELECT {COLUMNS} FROM audit_logs WHERE {} AND {column} = {p} {order} LIMIT {limit})",
                        sql.conditions.join(" AND ")
                    )
                })
                .collect();
            format!("SELECT * FROM ({}) AS merged {order} LIMIT {limit}", scans.join(" UNION ALL "))
        }
        None => {
            format!("SELECT {COLUMNS} FROM audit_logs WHERE {} {order} LIMIT {limit}", sql.conditions.join(" AND "))
        }
    };
    stmt(&text, sql.values)
}

/// The statement of a page of `limit` events (and one more, to tell whether there are more) under `filter` but `q`.
fn statement(scope: Scope, filter: &AuditFilter, after: Option<AuditPosition>, limit: usize) -> sea_orm::Statement {
    page_statement(conditions(scope, filter, after), filter, None, limit + 1)
}

/// What [`list`] runs for a page of `tenant`'s events under `filter` (without `q`), for the plan checks.
pub fn list_statement(
    tenant: crate::TenantId,
    filter: &AuditFilter,
    after: Option<AuditPosition>,
    limit: usize,
) -> sea_orm::Statement {
    statement(Scope::Tenant(tenant.0), filter, after, limit)
}

/// What [`list_platform`] runs for a page under `filter` (without `q`), for the plan checks.
pub fn platform_list_statement(filter: &AuditFilter, after: Option<AuditPosition>, limit: usize) -> sea_orm::Statement {
    statement(Scope::Platform, filter, after, limit)
}

/// `EXPLAIN (FORMAT JSON)` of `statement` in the platform reader's transaction, for the plan checks (a tenant's:
/// [`crate::mirror::query::explain`]).
pub async fn explain_platform(
    txn: &PlatformAuditTxn,
    statement: &sea_orm::Statement,
) -> Result<serde_json::Value, DbErr> {
    let explained = sea_orm::Statement { sql: format!("EXPLAIN (FORMAT JSON) {}", statement.sql), ..statement.clone() };
    let row = txn.conn().query_one_raw(explained).await?;
    row.map(|r| r.try_get::<serde_json::Value>("", "QUERY PLAN")).transpose().map(Option::unwrap_or_default)
}

/// Whether `filter` narrows beyond `q` (so that matches may be rejected).
fn narrows_beyond_q(filter: &AuditFilter) -> bool {
    let AuditFilter { actions, actor_types, actor_id, target_type, target_id, outcomes, since, until, q: _, tenants } =
        filter;
    !actions.is_empty()
        || !actor_types.is_empty()
        || actor_id.is_some()
        || target_type.is_some()
        || target_id.is_some()
        || !outcomes.is_empty()
        || since.is_some()
        || until.is_some()
        || !tenants.is_empty()
}

#[derive(FromQueryResult)]
struct Match {
    id: Uuid,
    created_at: DateTime<Utc>,
}

/// A page of at most `limit` events of the transaction's tenant that pass `filter` (whose `tenants` must be empty),
/// after `after`.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn list(
    txn: &TenantTxn,
    filter: &AuditFilter,
    after: Option<AuditPosition>,
    limit: usize,
) -> Result<AuditPage, DbErr> {
    list_in(txn.conn(), Scope::Tenant(txn.tenant_id().0), filter, after, limit).await
}

/// A page of at most `limit` events of every tenant (or `filter.tenants`), the platform's own and deleted tenants'
/// included, that pass `filter`, after `after`.
#[tracing::instrument(skip_all)]
pub async fn list_platform(
    txn: &PlatformAuditTxn,
    filter: &AuditFilter,
    after: Option<AuditPosition>,
    limit: usize,
) -> Result<AuditPage, DbErr> {
    list_in(txn.conn(), Scope::Platform, filter, after, limit).await
}

async fn list_in(
    conn: &impl ConnectionTrait,
    scope: Scope,
    filter: &AuditFilter,
    after: Option<AuditPosition>,
    limit: usize,
) -> Result<AuditPage, DbErr> {
    let Some(q) = &filter.q else {
        let mut items = Model::find_by_statement(statement(scope, filter, after, limit)).all(conn).await?;
        let more = items.len() > limit;
        items.truncate(limit);
        let next = if more { items.last().map(AuditPosition::of) } else { None };
        return Ok(AuditPage { items, next });
    };
    let pattern = crate::mirror::query::like_pattern(&q.to_lowercase());
    // Without other filters every match is a row of the page: ask for exactly one page (and one more).
    let chunk = if narrows_beyond_q(filter) { SEARCH_CHUNK.max(limit + 1) } else { limit + 1 };
    let max_rows = i32::try_from(chunk).unwrap_or(i32::MAX);
    let mut items: Vec<Model> = Vec::new();
    let mut position = after;
    let mut examined = 0;
    loop {
        let before_at: Value = position.map(|p| p.created_at).into();
        let before_id: Value = position.map(|p| p.id).into();
        let search = match scope {
            Scope::Tenant(_) => stmt(
                "SELECT id, created_at FROM audit_logs_matching($1, $2, $3, $4)",
                [pattern.clone().into(), before_at, before_id, max_rows.into()],
            ),
            Scope::Platform => {
                let tenants: Option<String> = (!filter.tenants.is_empty())
                    .then(|| text_array(&filter.tenants.iter().map(Uuid::to_string).collect::<Vec<_>>()));
                stmt(
                    "SELECT id, created_at FROM audit_logs_matching_platform($1, $2::uuid[], $3, $4, $5)",
                    [pattern.clone().into(), tenants.into(), before_at, before_id, max_rows.into()],
                )
            }
        };
        let matches = Match::find_by_statement(search).all(conn).await?;
        examined += matches.len();
        let exhausted = matches.len() < chunk;
        let Some(last) = matches.last() else { return Ok(AuditPage { items, next: None }) };
        let last = AuditPosition { created_at: last.created_at, id: last.id };
        let ids: Vec<String> = matches.iter().map(|m| m.id.to_string()).collect();
        let mut sql = conditions(scope, filter, position);
        let p = sql.bind(text_array(&ids));
        let found = Model::find_by_statement(page_statement(
            sql,
            filter,
            Some(format!("id = ANY({p}::uuid[])")),
            limit + 1 - items.len(),
        ))
        .all(conn)
        .await?;
        items.extend(found);
        if items.len() > limit {
            items.truncate(limit);
            return Ok(AuditPage { next: items.last().map(AuditPosition::of), items });
        }
        if exhausted {
            return Ok(AuditPage { items, next: None });
        }
        if examined >= SEARCH_BUDGET {
            // A short page: continue after the last match examined.
            return Ok(AuditPage { items, next: Some(last) });
        }
        position = Some(last);
    }
}

/// One event of the transaction's tenant.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn get(txn: &TenantTxn, id: Uuid) -> Result<Option<Model>, DbErr> {
    Model::find_by_statement(stmt(
        &format!("SELECT {COLUMNS} FROM audit_logs WHERE tenant_id = $1 AND id = $2"),
        [txn.tenant_id().0.into(), id.into()],
    ))
    .one(txn.conn())
    .await
}

/// One event of any tenant, for the platform review.
#[tracing::instrument(skip_all)]
pub async fn get_platform(txn: &PlatformAuditTxn, id: Uuid) -> Result<Option<Model>, DbErr> {
    Model::find_by_statement(stmt(&format!("SELECT {COLUMNS} FROM audit_logs WHERE id = $1"), [id.into()]))
        .one(txn.conn())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_literals_quote_every_word() {
        assert_eq!(text_array(&["a".into(), "b\"c".into(), "d\\e".into()]), r#"{"a","b\"c","d\\e"}"#);
        assert_eq!(text_array(&[]), "{}");
    }

    #[test]
    fn q_alone_does_not_narrow() {
        let mut filter = AuditFilter { q: Some("x".into()), ..Default::default() };
        assert!(!narrows_beyond_q(&filter));
        filter.outcomes.push(Outcome::Failure);
        assert!(narrows_beyond_q(&filter));
    }
}
