//! TestIO items as mirror rows: what of each parsed item the mirror keeps in columns (the rest stays in `raw`).
//! Words of TestIO's vocabulary (statuses, severities, testing types) are stored as sent, known or not.

use entity::mirror::{BugRow, ProductRow, TestRow};
use serde_json::Value;
use testio::model::{self, Invalid};

pub(super) fn product(item: &Value) -> Result<ProductRow, Invalid> {
    let p = model::product(item)?;
    Ok(ProductRow { testio_id: p.id, name: p.name, product_type: p.product_type, raw: p.raw })
}

/// A test listed under `listed_product` (`None` for a test read alone).
pub(super) fn test(item: &Value, listed_product: Option<i64>) -> Result<TestRow, Invalid> {
    let t = model::test(item, listed_product)?;
    Ok(TestRow {
        testio_id: t.id,
        product_id: t.product_id,
        title: t.title,
        status: t.status,
        testing_type: t.testing_type.map(|t| t.as_str().to_owned()),
        review_status: t.review_status,
        start_at: t.start_at,
        end_at: t.end_at,
        raw: t.raw,
    })
}

pub(super) fn bug(item: &Value) -> Result<BugRow, Invalid> {
    let b = model::bug(item)?;
    Ok(BugRow {
        testio_id: b.id,
        test_id: b.test_id,
        title: b.title,
        severity: b.severity.map(|s| s.as_str().to_owned()),
        status: b.status.map(|s| s.as_str().to_owned()),
        known: b.known,
        auto_accepted: b.auto_accepted,
        reported_at: b.reported_at,
        raw: b.raw,
    })
}
