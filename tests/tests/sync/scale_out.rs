//! Scale-out: three API replicas (the same keys) and three workers on one database. A token from one replica works on
//! the others, a logout on one is refused by all at once, an idempotency key and a tenant's rate limit hold across
//! replicas, and the workers share the tenants without ever syncing one twice at once.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tests::sync::SyncFixture;
use tests::testio_sim::{Account, Shape};
use tokio_util::sync::CancellationToken;

const TINY: Shape = Shape { products: 1, tests_per_product: 2, bugs_per_test: 1 };

#[tokio::test]
async fn three_replicas_and_three_workers_on_one_database_behave_as_one_service() {
    let f = SyncFixture::connected(TINY).await;
    let db = &f.app.db;
    let mut tenants = vec![f.tenant];
    for i in 0..5 {
        let tenant = f.app.create_tenant(&f.owner, &format!("tenant-{i}")).await;
        let token = format!("token-tenant-{i:04}");
        f.sim.add_account(&token, Account::generate(20 + i, TINY));
        assert_eq!(f.connect(tenant, &token).await.status(), 200);
        tenants.push(tenant);
    }
    let limited = |s: &mut api::config::Settings| {
        s.testio_allowed_base_urls = f.allowed_base_urls.clone();
        s.rate_limit_per_tenant_per_minute = 1;
        s.rate_limit_per_tenant_burst = 6;
    };
    let replicas = [f.app.replica(limited).await, f.app.replica(limited).await, f.app.replica(limited).await];

    // Slow answers, so that no worker can take every tenant before the others look. Three workers, each with its own
    // metrics port.
    f.sim.set_faults(tests::testio_sim::Faults { delay: Some(Duration::from_millis(25)), ..Default::default() });
    let stop = CancellationToken::new();
    let mut handles = Vec::new();
    for n in 0..3 {
        let mut settings = f.worker_settings();
        settings.name = Some(format!("scale-worker-{n}"));
        settings.concurrency = 2;
        settings.metrics_addr = "127.0.0.1:0".to_owned();
        handles.push(tokio::spawn(worker::Worker::build(&settings, stop.clone()).await.unwrap().run()));
    }

    // A token from one replica works on the others.
    let signed_in: Value = replicas[0]
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"email": "owner@example.com", "password": f.owner.password})),
        )
        .await
        .json()
        .await
        .unwrap();
    let token = signed_in["tokens"]["access_token"].as_str().unwrap().to_owned();
    for replica in &replicas {
        assert_eq!(replica.call(Method::GET, "/v1/me", Some(&token), None).await.status(), 200);
    }

    // An idempotency key holds across replicas: duplicates sent at once to all three create one key.
    let keys_path = format!("/v1/tenants/{}/api-keys", tenants[1]);
    let answers = futures_util::future::join_all((0..6).map(|i| {
        let request = replicas[i % 3]
            .client
            .post(replicas[i % 3].url(&keys_path))
            .bearer_auth(&token)
            .header("idempotency-key", "scale-out-key")
            .json(&json!({"name": "deploy", "role": "viewer"}));
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    }))
    .await;
    assert!(answers.iter().all(|(status, body)| *status == 201 && body == &answers[0].1), "{answers:?}");
    assert_eq!(db.count(&format!("SELECT count(*) FROM api_keys WHERE tenant_id = '{}'", tenants[1])).await, 1);

    // A tenant's rate limit holds across replicas: its 6 requests (the 6 above) are spent, wherever they went.
    let members = format!("/v1/tenants/{}/members", tenants[1]);
    for replica in &replicas {
        assert_eq!(replica.call(Method::GET, &members, Some(&token), None).await.status(), 429);
    }
    assert_eq!(
        replicas[0].call(Method::GET, &format!("/v1/tenants/{}", tenants[2]), Some(&token), None).await.status(),
        200
    );

    // A logout on one replica is refused by every replica at once.
    assert_eq!(replicas[1].call(Method::POST, "/v1/auth/logout", Some(&token), None).await.status(), 204);
    for replica in &replicas {
        assert_eq!(replica.call(Method::GET, "/v1/me", Some(&token), None).await.status(), 401);
    }

    // The workers synced every tenant, never one twice at once.
    let succeeded = "SELECT count(DISTINCT tenant_id) FROM sync_runs WHERE status = 'succeeded'";
    db.wait_until_count(succeeded, tenants.len() as i64).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.cancel();
    for handle in handles {
        handle.await.unwrap().unwrap();
    }
    let overlapping = tests::sync::overlapping_runs(db).await;
    assert_eq!(overlapping, 0, "two runs of one tenant overlapped");
    assert!(db.count("SELECT count(DISTINCT worker) FROM sync_runs WHERE status = 'succeeded'").await >= 2);
}
