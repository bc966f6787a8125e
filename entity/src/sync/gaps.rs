//! `sync_gaps`: the parts of TestIO a sync could not read (a failing page, an unreadable item, a bug batch that kept
//! failing), kept open with their reason until a later run reads them.
//!
//! A gap's key names what is missing so that runs recognise the same gap (`test_page:42:150`, `test:1234`,
//! `bugs:1234`, `bug:1234:99`, `product:42`); its kind says how a later run can retry it. Both are stored, so their
//! spelling is fixed: [`GapKey`] and [`GapKind`] write it in one place.

use std::fmt;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, Value};
use serde_json::Value as Json;
use strum::{EnumString, IntoStaticStr};

use crate::TenantTxn;
use crate::db::stmt;
use crate::mirror::{ids_param, json_param};

/// What kind of thing a gap is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, IntoStaticStr, EnumString)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum GapKind {
    /// One offset of a product's test list (the page failed even at size 1).
    TestPage,
    /// One test, unreadable or not storable.
    Test,
    /// The bug list of one test (its batch kept failing).
    Bugs,
    /// One bug.
    Bug,
    /// One product (or the product list, when the product had no readable id).
    Product,
}

impl GapKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

fn kinds_param(kinds: &[GapKind]) -> Result<Value, DbErr> {
    json_param(&kinds)
}

/// What a gap is about; its `Display` is the stored key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GapKey {
    TestPage {
        product_id: i64,
        offset: i64,
    },
    Test(i64),
    Bugs {
        test_id: i64,
    },
    /// A bug of a test; without its id when it had no readable one.
    Bug {
        test_id: i64,
        bug_id: Option<i64>,
    },
    /// A product; without its id when it had no readable one.
    Product(Option<i64>),
}

impl GapKey {
    pub fn kind(self) -> GapKind {
        match self {
            Self::TestPage { .. } => GapKind::TestPage,
            Self::Test(_) => GapKind::Test,
            Self::Bugs { .. } => GapKind::Bugs,
            Self::Bug { .. } => GapKind::Bug,
            Self::Product(_) => GapKind::Product,
        }
    }
}

impl fmt::Display for GapKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.kind().as_str();
        let or_empty = |id: Option<i64>| id.map(|i| i.to_string()).unwrap_or_default();
        match self {
            Self::TestPage { product_id, offset } => write!(f, "{kind}:{product_id}:{offset}"),
            Self::Test(id) | Self::Bugs { test_id: id } => write!(f, "{kind}:{id}"),
            Self::Bug { test_id, bug_id } => write!(f, "{kind}:{test_id}:{}", or_empty(*bug_id)),
            Self::Product(id) => write!(f, "{kind}:{}", or_empty(*id)),
        }
    }
}

/// A part of the source a sync could not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// Identifies the gap across runs: a [`GapKey`] as stored.
    pub key: String,
    pub kind: GapKind,
    pub product_id: Option<i64>,
    pub page_offset: Option<i64>,
    pub item_id: Option<i64>,
    pub reason: String,
}

impl Gap {
    fn new(
        key: GapKey,
        product_id: Option<i64>,
        page_offset: Option<i64>,
        item_id: Option<i64>,
        reason: String,
    ) -> Self {
        Self { key: key.to_string(), kind: key.kind(), product_id, page_offset, item_id, reason }
    }

    pub fn test_page(product_id: i64, offset: i64, reason: String) -> Self {
        Self::new(GapKey::TestPage { product_id, offset }, Some(product_id), Some(offset), None, reason)
    }

    pub fn test(product_id: Option<i64>, test_id: i64, reason: String) -> Self {
        Self::new(GapKey::Test(test_id), product_id, None, Some(test_id), reason)
    }

    pub fn bugs(test_id: i64, reason: String) -> Self {
        Self::new(GapKey::Bugs { test_id }, None, None, Some(test_id), reason)
    }

    pub fn bug(test_id: i64, bug_id: Option<i64>, reason: String) -> Self {
        Self::new(GapKey::Bug { test_id, bug_id }, None, None, Some(test_id), reason)
    }

    pub fn product(product_id: Option<i64>, reason: String) -> Self {
        Self::new(GapKey::Product(product_id), product_id, None, product_id, reason)
    }
}

/// An open gap as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenGap {
    pub key: String,
    pub kind: GapKind,
    pub product_id: Option<i64>,
    pub page_offset: Option<i64>,
    pub item_id: Option<i64>,
    pub attempts: i32,
}

/// Opens a gap, or counts one more attempt on the same open gap. Returns whether it is new.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id(), key = %gap.key))]
pub async fn open_gap(txn: &TenantTxn, gap: &Gap) -> Result<bool, DbErr> {
    let row = txn
        .conn()
        .query_one_raw(stmt(
            "INSERT INTO sync_gaps (tenant_id, id, key, kind, product_id, page_offset, item_id, reason)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (tenant_id, key) WHERE resolved_at IS NULL DO UPDATE
                SET attempts = sync_gaps.attempts + 1, last_seen_at = now(), reason = EXCLUDED.reason
          RETURNING (xmax = 0) AS inserted",
            [
                txn.tenant_id().0.into(),
                uuid::Uuid::now_v7().into(),
                gap.key.clone().into(),
                gap.kind.as_str().into(),
                gap.product_id.into(),
                gap.page_offset.into(),
                gap.item_id.into(),
                crate::audit::truncate(&gap.reason, 1000).into(),
            ],
        ))
        .await?;
    row.map(|r| r.try_get::<bool>("", "inserted")).transpose().map(|b| b.unwrap_or(false))
}

/// Closes the open gaps with these keys; returns how many were open.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn resolve_gaps(txn: &TenantTxn, keys: &[String]) -> Result<u64, DbErr> {
    if keys.is_empty() {
        return Ok(0);
    }
    let param = Value::from(Json::from(keys.to_vec()));
    Ok(txn
        .conn()
        .execute_raw(stmt(
            "UPDATE sync_gaps SET resolved_at = now()
              WHERE resolved_at IS NULL AND key IN (SELECT jsonb_array_elements_text($1::jsonb))",
            [param],
        ))
        .await?
        .rows_affected())
}

/// Closes open gaps not met again by the run that started at `since` whose subject is gone: bug gaps of tests no
/// longer mirrored, page and product gaps of products no longer listed, product gaps without an id. Returns how many.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn resolve_stale_gaps(txn: &TenantTxn, since: DateTime<Utc>, listed_products: &[i64]) -> Result<u64, DbErr> {
    Ok(txn
        .conn()
        .execute_raw(stmt(
            "UPDATE sync_gaps SET resolved_at = now()
              WHERE resolved_at IS NULL AND last_seen_at < $1
                AND (   (kind IN (SELECT jsonb_array_elements_text($3::jsonb))
                         AND NOT EXISTS (SELECT 1 FROM testio_tests t WHERE t.testio_id = sync_gaps.item_id))
                     OR (kind IN (SELECT jsonb_array_elements_text($4::jsonb))
                         AND (product_id IS NULL
                              OR product_id NOT IN (SELECT jsonb_array_elements_text($2::jsonb)::bigint))))",
            [
                since.into(),
                ids_param(listed_products),
                kinds_param(&[GapKind::Bugs, GapKind::Bug])?,
                kinds_param(&[GapKind::TestPage, GapKind::Product])?,
            ],
        ))
        .await?
        .rows_affected())
}

/// Open gaps, oldest first.
#[tracing::instrument(skip_all, fields(tenant_id = %txn.tenant_id()))]
pub async fn open_gaps(txn: &TenantTxn) -> Result<Vec<OpenGap>, DbErr> {
    let rows = txn
        .conn()
        .query_all_raw(stmt(
            "SELECT key, kind, product_id, page_offset, item_id, attempts FROM sync_gaps
              WHERE resolved_at IS NULL ORDER BY first_seen_at",
            [],
        ))
        .await?;
    let mut open = Vec::with_capacity(rows.len());
    for r in &rows {
        let kind: String = r.try_get("", "kind")?;
        // A kind this build does not know (written by a newer worker during a rolling deploy) is left to a worker that
        // knows how to retry it, rather than failing the run.
        let Ok(kind) = kind.parse() else {
            tracing::warn!(kind, "skipping a sync gap of an unknown kind");
            continue;
        };
        open.push(OpenGap {
            key: r.try_get("", "key")?,
            kind,
            product_id: r.try_get("", "product_id")?,
            page_offset: r.try_get("", "page_offset")?,
            item_id: r.try_get("", "item_id")?,
            attempts: r.try_get("", "attempts")?,
        });
    }
    Ok(open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_kinds_are_spelled_as_stored() {
        let r = String::new;
        let cases = [
            (Gap::test_page(42, 150, r()), "test_page:42:150", "test_page"),
            (Gap::test(Some(3), 1234, r()), "test:1234", "test"),
            (Gap::bugs(1234, r()), "bugs:1234", "bugs"),
            (Gap::bug(1234, Some(99), r()), "bug:1234:99", "bug"),
            (Gap::bug(0, None, r()), "bug:0:", "bug"),
            (Gap::product(Some(42), r()), "product:42", "product"),
            (Gap::product(None, r()), "product:", "product"),
        ];
        for (gap, key, kind) in cases {
            assert_eq!((gap.key.as_str(), gap.kind.as_str()), (key, kind));
            assert_eq!(kind.parse::<GapKind>(), Ok(gap.kind));
            assert_eq!(serde_json::to_value(gap.kind).unwrap(), kind, "the SQL parameters spell it the same");
        }
    }
}
