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

/// Writes `n` events into `tenant`'s log, `days` old, as the superuser.
async fn old_events(app: &TestApp, tenant: Uuid, n: usize, days: i64) {
    app.sql(&format!(
        "INSERT INTO audit_logs (tenant_id, id, actor_type, action, target_type, outcome, created_at)
         SELECT '{tenant}', gen_random_uuid(), 'system', 'tenant.update', 'tenant', 'success',
                now() - make_interval(days => {days}) + make_interval(secs => i)
           FROM generate_series(1, {n}) i"
    ))
    .await;
}

const RETENTION: entity::audit::chain::Retention =
    entity::audit::chain::Retention { free_days: 30, pro_days: 365, enterprise_days: 2555, other_days: 365 };

#[tokio::test]
async fn retention_purges_each_plans_expired_sealed_events_and_the_chain_still_verifies() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let free = app.create_tenant(&ann, "free").await;
    let pro = app.create_tenant(&ann, "pro").await;
    app.sql(&format!("UPDATE tenants SET plan = 'pro' WHERE id = '{pro}'")).await;
    // More than one purge batch of old events in the free tenant.
    old_events(&app, free, 2_300, 400).await;
    old_events(&app, free, 10, 40).await;
    old_events(&app, pro, 10, 400).await;
    old_events(&app, pro, 10, 40).await;
    // Time passes: the tenants were created long ago (so their creation comes first in time as in the chain).
    app.sql(&format!(
        "ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_no_update;
         UPDATE audit_logs SET created_at = created_at - interval '500 days'
          WHERE action = 'tenant.create' AND tenant_id IN ('{free}', '{pro}');
         ALTER TABLE audit_logs ENABLE TRIGGER audit_logs_no_update;"
    ))
    .await;
    for tenant in [free, pro] {
        let verdict = settle(&app, &ann, tenant).await;
        assert_eq!((verdict["intact"].as_bool(), verdict["unsealed"].as_i64()), (Some(true), Some(0)), "{verdict}");
    }
    // Old events written after the seal are not sealed yet: retention leaves them for now.
    old_events(&app, free, 3, 400).await;
    let before_free = app.audit_log(free).await.0.len();
    let before_pro = app.audit_log(pro).await.0.len();

    let runtime = app.db.connect_runtime().await;
    let purged = entity::audit::chain::purge_expired(&runtime, RETENTION).await.unwrap();
    let of = |t: Uuid| purged.iter().find(|(id, _)| id.0 == t).map(|(_, n)| *n);
    assert_eq!(of(free), Some(2_311), "the free plan keeps 30 days");
    assert_eq!(of(pro), Some(11), "the pro plan keeps 365 days");

    let free_log = app.audit_log(free).await.0;
    let purges: Vec<_> = free_log.iter().filter(|r| r.action == "audit_log.purge").collect();
    assert_eq!(purges.len(), 2, "one purge event per batch");
    assert!(purges.iter().all(|r| r.actor_type == "system"));
    assert_eq!(purges.iter().map(|r| r.metadata["purged"].as_i64().unwrap()).sum::<i64>(), 2_311);
    assert_eq!(free_log.len(), before_free - 2_311 + 2);
    assert_eq!(free_log.iter().filter(|r| r.created_at < chrono::Utc::now() - chrono::Duration::days(30)).count(), 3);
    assert_eq!(app.audit_log(pro).await.0.len(), before_pro - 11 + 1);

    // The chains start after the purged events and still verify, the purge events sealed in turn.
    for tenant in [free, pro] {
        let verdict = settle(&app, &ann, tenant).await;
        assert_eq!(verdict["intact"], true, "{verdict}");
        assert_eq!(verdict["unsealed"], 0, "{verdict}");
    }
    // A second pass finds the three late ones, now sealed.
    let again = entity::audit::chain::purge_expired(&runtime, RETENTION).await.unwrap();
    assert_eq!(again.iter().find(|(id, _)| id.0 == free).map(|(_, n)| *n), Some(3));
    let verdict = settle(&app, &ann, free).await;
    assert_eq!(verdict["intact"], true, "{verdict}");

    // Tampering after a purge is still caught: the first kept event altered.
    let first_kept = app.audit_log(free).await.0[0].id;
    as_owner(&app, free, &format!("UPDATE audit_logs SET outcome = 'failure' WHERE id = '{first_kept}'")).await;
    let verdict = verify(&app, &ann, free).await;
    assert_eq!(
        (verdict["intact"].as_bool(), verdict["broken_event"].as_str()),
        (Some(false), Some(first_kept.to_string().as_str())),
        "{verdict}"
    );
}

#[tokio::test]
async fn a_purge_is_only_for_the_bound_tenant_and_never_younger_than_a_day() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let mine = app.create_tenant(&ann, "mine").await;
    let other = app.create_tenant(&ann, "other").await;
    old_events(&app, mine, 5, 0).await;
    settle(&app, &ann, mine).await;
    settle(&app, &ann, other).await;
    let runtime = app.db.connect_runtime().await;
    // Bound to one tenant (or to none), purging another is refused.
    for bind in [format!("SELECT set_config('app.tenant_id', '{mine}', true)"), "SELECT 1".to_owned()] {
        let txn = sea_orm::TransactionTrait::begin(&runtime).await.unwrap();
        txn.execute_unprepared(&bind).await.unwrap();
        let refused = txn
            .execute_unprepared(&format!("SELECT * FROM audit_purge('{other}', now() + interval '1 year', 100)"))
            .await;
        let err = refused.unwrap_err().to_string();
        assert!(err.contains("bound to the tenant it purges"), "{err}");
        txn.rollback().await.unwrap();
    }
    let count = app.audit_log(mine).await.0.len();
    let bound = format!(
        "BEGIN; SELECT set_config('app.tenant_id', '{mine}', true);
         SELECT * FROM audit_purge('{mine}', now() + interval '1 year', 100); COMMIT;"
    );
    runtime.execute_unprepared(&bound).await.unwrap();
    assert_eq!(app.audit_log(mine).await.0.len(), count, "events younger than a day are never purged");
    // The runtime role itself cannot delete from the log.
    let err = runtime
        .execute_unprepared(&format!(
            "BEGIN; SELECT set_config('app.tenant_id', '{mine}', true); DELETE FROM audit_logs; COMMIT;"
        ))
        .await;
    assert!(err.is_err());
}
