//! The audit log's hash chain (issue 13): the worker seals settled events after the fact; the verifier catches an
//! event edited, deleted, inserted into the sealed history or moved, and a link removed from the chain, all done as
//! the database owner; concurrent writers and sealers still make one consistent chain.

use std::time::Duration;

use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use tests::app::{TestApp, TestUser};
use tests::spawn_app;
use uuid::Uuid;

/// Seals everything settled, as the worker does.
async fn seal(app: &TestApp) -> entity::audit::chain::Sealed {
    let runtime = app.db.connect_runtime().await;
    entity::audit::chain::seal_pending(&runtime).await.unwrap()
}

/// Seals until `tenant` has nothing unsealed (an event settles once every older transaction of the cluster has
/// ended: other tests' included), and returns the verdict.
async fn settle(app: &TestApp, who: &TestUser, tenant: Uuid) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        seal(app).await;
        let verdict = verify(app, who, tenant).await;
        if verdict["unsealed"] == 0 || std::time::Instant::now() > deadline {
            return verdict;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn verify(app: &TestApp, who: &TestUser, tenant: Uuid) -> Value {
    let response = app
        .call(
            reqwest::Method::GET,
            &format!("/v1/tenants/{tenant}/audit-logs/verify"),
            Some(who.access_token.as_str()),
            None,
        )
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Runs `sql` as the database owner with `tenant` bound (the owner is under row-level security too), with the
/// append-only triggers switched off for the statement.
async fn as_owner(app: &TestApp, tenant: Uuid, sql: &str) {
    let owner = app.db.connect_owner().await;
    owner
        .execute_unprepared(&format!(
            "BEGIN;
             SELECT set_config('app.tenant_id', '{tenant}', true);
             ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_no_update;
             ALTER TABLE audit_chain DISABLE TRIGGER audit_chain_no_update;
             {sql};
             ALTER TABLE audit_logs ENABLE TRIGGER audit_logs_no_update;
             ALTER TABLE audit_chain ENABLE TRIGGER audit_chain_no_update;
             COMMIT;"
        ))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// A tenant with a few events made through the API, sealed; returns it and its events (oldest first).
async fn sealed_tenant(app: &TestApp, owner: &TestUser, slug: &str) -> (Uuid, Vec<Uuid>) {
    let tenant = app.create_tenant(owner, slug).await;
    for k in 0..4 {
        let renamed = app.patch_tenant(owner, tenant, json!({ "name": format!("{slug} {k}") })).await;
        assert_eq!(renamed.status(), 200);
    }
    let verdict = settle(app, owner, tenant).await;
    assert_eq!(verdict["intact"], true, "{verdict}");
    assert_eq!((verdict["checked"].as_i64(), verdict["unsealed"].as_i64()), (Some(5), Some(0)), "{verdict}");
    assert_eq!(verdict["head"]["seq"], 5);
    assert_eq!(verdict["head"]["hash"].as_str().unwrap().len(), 64);
    (tenant, app.audit_log(tenant).await.0.iter().map(|r| r.id).collect())
}

#[tokio::test]
async fn the_verifier_catches_every_kind_of_tampering_by_the_database_owner() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;

    let (edited, events) = sealed_tenant(&app, &ann, "edited").await;
    as_owner(
        &app,
        edited,
        &format!("UPDATE audit_logs SET metadata = '{{\"name\": \"innocent\"}}' WHERE id = '{}'", events[2]),
    )
    .await;
    let verdict = verify(&app, &ann, edited).await;
    assert_eq!(verdict["intact"], false);
    assert_eq!(verdict["broken_event"], events[2].to_string(), "{verdict}");
    assert!(verdict["problem"].as_str().unwrap().contains("altered"), "{verdict}");
    assert_eq!(verdict["checked"], 2, "the two events before it are fine");

    let (deleted, events) = sealed_tenant(&app, &ann, "deleted").await;
    as_owner(&app, deleted, &format!("DELETE FROM audit_logs WHERE id = '{}'", events[1])).await;
    let verdict = verify(&app, &ann, deleted).await;
    assert_eq!(
        (verdict["intact"].as_bool(), verdict["broken_event"].as_str()),
        (Some(false), Some(events[1].to_string().as_str())),
        "{verdict}"
    );
    assert!(verdict["problem"].as_str().unwrap().contains("deleted"), "{verdict}");

    // Slipped into the history: a forged event claiming an old transaction (and time).
    let (inserted, events) = sealed_tenant(&app, &ann, "inserted").await;
    let forged = Uuid::new_v4();
    as_owner(
        &app,
        inserted,
        &format!(
            "INSERT INTO audit_logs (tenant_id, id, actor_type, action, target_type, outcome, created_at, txid)
             SELECT tenant_id, '{forged}', 'system', 'tenant.update', 'tenant', 'success', created_at, txid
               FROM audit_logs WHERE id = '{}'",
            events[1]
        ),
    )
    .await;
    let verdict = verify(&app, &ann, inserted).await;
    assert_eq!(
        (verdict["intact"].as_bool(), verdict["broken_event"].as_str()),
        (Some(false), Some(forged.to_string().as_str())),
        "{verdict}"
    );
    assert!(verdict["problem"].as_str().unwrap().contains("inserted"), "{verdict}");

    // Moved: two events swap their times.
    let (moved, events) = sealed_tenant(&app, &ann, "moved").await;
    as_owner(
        &app,
        moved,
        &format!(
            "UPDATE audit_logs a SET created_at = b.created_at
               FROM audit_logs b
              WHERE (a.id, b.id) IN (('{0}', '{1}'), ('{1}', '{0}'))",
            events[3], events[4]
        ),
    )
    .await;
    let verdict = verify(&app, &ann, moved).await;
    assert_eq!(verdict["intact"], false, "{verdict}");
    assert_eq!(verdict["broken_event"], events[3].to_string(), "{verdict}");

    // A link taken out of the chain itself.
    let (unlinked, _) = sealed_tenant(&app, &ann, "unlinked").await;
    as_owner(&app, unlinked, &format!("DELETE FROM audit_chain WHERE tenant_id = '{unlinked}' AND seq = 3")).await;
    let verdict = verify(&app, &ann, unlinked).await;
    assert_eq!((verdict["intact"].as_bool(), verdict["broken_seq"].as_i64()), (Some(false), Some(3)), "{verdict}");

    // And an untouched tenant, next to them, is still intact; a new event is reported unsealed until the next seal.
    let (clean, _) = sealed_tenant(&app, &ann, "clean").await;
    assert_eq!(app.patch_tenant(&ann, clean, json!({ "name": "clean again" })).await.status(), 200);
    let verdict = verify(&app, &ann, clean).await;
    assert_eq!((verdict["intact"].as_bool(), verdict["unsealed"].as_i64()), (Some(true), Some(1)), "{verdict}");
    let verdict = settle(&app, &ann, clean).await;
    assert_eq!(
        (verdict["intact"].as_bool(), verdict["unsealed"].as_i64(), verdict["checked"].as_i64()),
        (Some(true), Some(0), Some(6))
    );
}

#[tokio::test]
async fn concurrent_writers_and_sealers_make_one_consistent_chain() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "busy").await;
    let runtime = app.db.connect_runtime().await;
    let stop = tokio_util::sync::CancellationToken::new();
    // Two sealers, as two workers would run them, all along.
    let sealers: Vec<_> = (0..2)
        .map(|_| tokio::spawn(worker::seal_loop(runtime.clone(), Duration::from_millis(5), stop.clone())))
        .collect();
    // Forty writers on one tenant, and sign-ins (the platform tenant) at the same time.
    let writes = (0..40).map(|k| {
        let app = &app;
        let ann = &ann;
        async move {
            let response = app.patch_tenant(ann, tenant, json!({ "name": format!("busy {k}") })).await;
            assert_eq!(response.status(), 200);
            let failed = app.post_login(json!({ "email": "ann@example.com", "password": "wrong password" })).await;
            assert!(matches!(failed.status().as_u16(), 401 | 429));
        }
    });
    futures_util::future::join_all(writes).await;
    stop.cancel();
    for s in sealers {
        s.await.unwrap();
    }
    let verdict = settle(&app, &ann, tenant).await;
    let rows = app.audit_log(tenant).await.0.len() as i64;
    assert_eq!(verdict["intact"], true, "{verdict}");
    assert_eq!((verdict["checked"].as_i64(), verdict["unsealed"].as_i64()), (Some(rows), Some(0)), "{verdict}");
    // Each event is in the chain once, at consecutive positions.
    let superuser = app.db.superuser().await;
    let row = superuser
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!(
                "SELECT count(*), count(DISTINCT event_id), max(seq) FROM audit_chain WHERE tenant_id = '{tenant}'"
            ),
        ))
        .await
        .unwrap()
        .unwrap();
    let (n, distinct, max): (i64, i64, i64) =
        (row.try_get_by_index(0).unwrap(), row.try_get_by_index(1).unwrap(), row.try_get_by_index(2).unwrap());
    assert_eq!((n, distinct, max), (rows, rows, rows));

    // The platform's chain (every sign-in) too, read by a platform admin.
    app.sql("UPDATE users SET is_platform_admin = true WHERE email = 'ann@example.com'").await;
    let platform: Value = app
        .call(
            reqwest::Method::GET,
            &format!("/v1/admin/audit-logs/verify?tenant_id={}", Uuid::nil()),
            Some(ann.access_token.as_str()),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(platform["intact"], true, "{platform}");
    assert!(platform["checked"].as_i64().unwrap() >= 40, "{platform}");
}

#[tokio::test]
async fn verification_is_for_owners_admins_and_platform_admins() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;
    let member = app.add_member(&ann, tenant, "mia@example.com", "member").await;
    let stranger = app.register("sam@example.com").await;
    let path = format!("/v1/tenants/{tenant}/audit-logs/verify");
    for (who, status) in [(&ann, 200), (&member, 403), (&stranger, 404)] {
        let response = app.call(reqwest::Method::GET, &path, Some(who.access_token.as_str()), None).await;
        assert_eq!(response.status(), status, "{}", who.email);
    }
    let platform = format!("/v1/admin/audit-logs/verify?tenant_id={tenant}");
    assert_eq!(app.call(reqwest::Method::GET, &platform, Some(ann.access_token.as_str()), None).await.status(), 403);
    let missing =
        app.call(reqwest::Method::GET, "/v1/admin/audit-logs/verify", Some(ann.access_token.as_str()), None).await;
    assert_eq!(missing.status(), 400);

    // A deleted tenant's chain stays verifiable by the platform.
    settle(&app, &ann, tenant).await;
    assert_eq!(app.delete_tenant(&ann, tenant).await.status(), 204);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while seal(&app).await.events == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.sql("UPDATE users SET is_platform_admin = true WHERE email = 'sam@example.com'").await;
    let verdict: Value = app
        .call(reqwest::Method::GET, &platform, Some(stranger.access_token.as_str()), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!((verdict["intact"].as_bool(), verdict["unsealed"].as_i64()), (Some(true), Some(0)), "{verdict}");
    assert!(verdict["checked"].as_i64().unwrap() >= 4, "{verdict}");
}
