//! The plan's limit on mirrored products (issue 14): a sync mirrors the listed products with the lowest ids up to the
//! limit and lists the others on the run as skipped; a bigger plan mirrors them; a downgrade deletes nothing.

use tests::sync::SyncFixture;
use tests::testio_sim::Shape;

async fn mirrored(f: &SyncFixture) -> Vec<i64> {
    let tenant = f.tenant;
    let sql = format!("SELECT testio_id FROM testio_products WHERE tenant_id = '{tenant}' ORDER BY 1");
    let db = f.app.db.superuser().await;
    use sea_orm::ConnectionTrait;
    db.query_all_raw(sea_orm::Statement::from_string(sea_orm::DbBackend::Postgres, sql))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get_by_index::<i64>(0).unwrap())
        .collect()
}

#[tokio::test]
async fn a_sync_mirrors_the_products_the_plan_allows_and_lists_the_rest_as_skipped() {
    let f = SyncFixture::connected(Shape { products: 4, tests_per_product: 3, bugs_per_test: 1 }).await;
    let listed: Vec<i64> = f.sim.read(&f.token, |a| a.products.keys().copied().collect()).unwrap();
    let mut settings = f.worker_settings();
    settings.plans.free_products = 2;
    settings.plans.pro_products = 10;

    let run = f.sync_with(&settings, false).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(mirrored(&f).await, listed[..2], "the two lowest ids");
    assert_eq!(run["skipped_product_ids"], serde_json::json!(listed[2..]), "{run}");
    assert_eq!(run["products"], 2);
    let tests = f.app.db.count(&format!("SELECT count(*) FROM testio_tests WHERE tenant_id = '{}'", f.tenant)).await;
    assert_eq!(tests, 6, "only the mirrored products' tests");

    // A plan with room mirrors them all.
    f.app.sql(&format!("UPDATE tenants SET plan = 'pro' WHERE id = '{}'", f.tenant)).await;
    let run = f.sync_with(&settings, false).await;
    assert_eq!(mirrored(&f).await, listed);
    assert_eq!(run["skipped_product_ids"], serde_json::json!([]));

    // Back to free (a lapsed subscription): nothing is deleted; the extra products are listed as skipped again.
    f.app
        .sql(&format!(
            "UPDATE tenants SET subscription_status = 'past_due', subscription_past_due_since = now() - interval '30 days' \
             WHERE id = '{}'",
            f.tenant
        ))
        .await;
    let run = f.sync_with(&settings, true).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(mirrored(&f).await, listed, "kept");
    assert_eq!(run["skipped_product_ids"], serde_json::json!(listed[2..]));
    let tests = f.app.db.count(&format!("SELECT count(*) FROM testio_tests WHERE tenant_id = '{}'", f.tenant)).await;
    assert_eq!(tests, 12, "and their tests too");
}

#[tokio::test]
async fn a_sync_interval_shorter_than_the_plan_allows_is_refused_and_a_longer_one_is_kept() {
    let f = SyncFixture::connected(Shape { products: 1, tests_per_product: 1, bugs_per_test: 0 }).await;
    let save = |interval: u64| {
        let body = serde_json::json!({ "token": f.token, "base_url": f.sim.base_url, "sync_interval_secs": interval });
        f.app.put_connection(&f.owner, f.tenant, body)
    };
    // Free syncs at most hourly (the default settings).
    let before = f.app.audit_log(f.tenant).await.len();
    let refused = save(900).await;
    assert_eq!(refused.status(), 402);
    let problem: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(
        (&problem["limit"], &problem["allowed"], &problem["upgrade_to"]),
        (&"sync_interval".into(), &3600.into(), &"pro".into())
    );
    assert_eq!(save(30).await.status(), 422, "at least a minute");
    assert_eq!(f.app.audit_log(f.tenant).await.len(), before, "refusals change nothing");

    let kept = save(7200).await;
    assert_eq!(kept.status(), 200);
    assert_eq!(kept.json::<serde_json::Value>().await.unwrap()["sync_interval_secs"], 7200);
    let run = f.sync(false).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let connection: serde_json::Value = f.app.get_connection(&f.owner, f.tenant).await.json().await.unwrap();
    let next: chrono::DateTime<chrono::Utc> = connection["next_sync_at"].as_str().unwrap().parse().unwrap();
    let wait = (next - chrono::Utc::now()).num_seconds();
    assert!((7000..=7200).contains(&wait), "the next sync is the tenant's interval away: {wait} s");

    f.app.sql(&format!("UPDATE tenants SET plan = 'pro' WHERE id = '{}'", f.tenant)).await;
    assert_eq!(save(900).await.status(), 200, "pro allows 15 minutes");
}
