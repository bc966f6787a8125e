//! The platform admins' audit review (issue 13): `GET /v1/admin/audit-logs` and `.../{id}`, and the database roles
//! that grant it: the reader may read every tenant's events and nothing else, and the runtime role holds none of it
//! until it switches to the reader.

use sea_orm::{ConnectionTrait, DbErr, TransactionTrait};
use serde_json::{Value, json};
use tests::app::TestApp;
use tests::{TestDatabase, spawn_app};
use uuid::Uuid;

fn sqlstate(err: &DbErr) -> Option<String> {
    match err {
        DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e)) | DbErr::Query(sea_orm::RuntimeErr::SqlxError(e)) => {
            e.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned())
        }
        _ => None,
    }
}

async fn make_platform_admin(app: &TestApp, email: &str) {
    app.sql(&format!("UPDATE users SET is_platform_admin = true WHERE email = '{email}'")).await;
}

/// Every page of the platform list with `query`; the events' ids and tenants, in order.
async fn walk(app: &TestApp, who: &str, query: &[(&str, &str)]) -> Vec<(Uuid, Uuid)> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q: Vec<(&str, String)> = query.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        q.push(("limit", "7".to_owned()));
        if let Some(c) = &cursor {
            q.push(("cursor", c.clone()));
        }
        let url = format!(
            "/v1/admin/audit-logs?{}",
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(q.iter().map(|(k, v)| (*k, v.as_str())))
                .finish()
        );
        let response = app.call(reqwest::Method::GET, &url, Some(who), None).await;
        assert_eq!(response.status(), 200, "{url}");
        let page: Value = response.json().await.unwrap();
        for item in page["items"].as_array().unwrap() {
            out.push((
                item["id"].as_str().unwrap().parse().unwrap(),
                item["tenant_id"].as_str().unwrap().parse().unwrap(),
            ));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

/// Every audit row, as the superuser sees them: (id, tenant), newest first.
async fn all_rows(app: &TestApp, condition: &str) -> Vec<(Uuid, Uuid)> {
    use sea_orm::FromQueryResult;
    #[derive(FromQueryResult)]
    struct Row {
        id: Uuid,
        tenant_id: Uuid,
    }
    Row::find_by_statement(sea_orm::Statement::from_string(
        sea_orm::DbBackend::Postgres,
        format!("SELECT id, tenant_id FROM audit_logs WHERE {condition} ORDER BY created_at DESC, id DESC"),
    ))
    .all(app.db.superuser().await)
    .await
    .unwrap()
    .into_iter()
    .map(|r| (r.id, r.tenant_id))
    .collect()
}

#[tokio::test]
async fn platform_admins_read_every_tenants_events_the_platforms_and_deleted_tenants_included() {
    let app = spawn_app().await;
    let root = app.register("root@example.com").await;
    make_platform_admin(&app, "root@example.com").await;
    let bob = app.register("bob@example.com").await;
    let kept = app.create_tenant(&bob, "kept").await;
    let carol = app.register("carol@example.com").await;
    let gone = app.create_tenant(&carol, "gone").await;
    app.create_api_key(&carol, gone, "soon gone", "viewer").await;
    assert_eq!(app.delete_tenant(&carol, gone).await.status(), 204);
    let failed = app.post_login(json!({ "email": "nobody@example.com", "password": "wrong password" })).await;
    assert_eq!(failed.status(), 401);

    let everything = walk(&app, &root.access_token, &[]).await;
    assert_eq!(everything, all_rows(&app, "true").await, "every event, newest first, each once");
    let tenants: std::collections::HashSet<Uuid> = everything.iter().map(|(_, t)| *t).collect();
    assert!(tenants.contains(&kept) && tenants.contains(&gone) && tenants.contains(&Uuid::nil()), "{tenants:?}");

    // The deleted tenant's events, its deletion last.
    let of_gone = walk(&app, &root.access_token, &[("tenant_id", &gone.to_string())]).await;
    assert_eq!(of_gone, all_rows(&app, &format!("tenant_id = '{gone}'")).await);
    let newest: Value = app
        .call(
            reqwest::Method::GET,
            &format!("/v1/admin/audit-logs/{}", of_gone[0].0),
            Some(root.access_token.as_str()),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(newest["action"], "tenant.delete");
    assert_eq!(newest["target"]["display"], "gone");

    // Filters and search work across tenants: the platform's own failed sign-in, by the email it claimed.
    let both = format!("{kept},{}", Uuid::nil());
    let found = walk(&app, &root.access_token, &[("q", "nobody@example"), ("tenant_id", &both)]).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].1, Uuid::nil());
    let logins = walk(&app, &root.access_token, &[("action", "auth.*"), ("outcome", "failure")]).await;
    assert_eq!(logins, all_rows(&app, "action LIKE 'auth.%' AND outcome = 'failure'").await);
    let creations = walk(&app, &root.access_token, &[("action", "tenant.create"), ("q", "kept")]).await;
    assert_eq!(creations.len(), 1);
    assert_eq!(creations[0].1, kept);

    // A cursor of the platform list is not one of a tenant list, nor of another filter.
    let page: Value = app
        .call(reqwest::Method::GET, "/v1/admin/audit-logs?limit=1", Some(root.access_token.as_str()), None)
        .await
        .json()
        .await
        .unwrap();
    let cursor = page["next_cursor"].as_str().unwrap();
    let elsewhere = app.get_audit_logs(&bob, kept, &[("cursor", cursor)]).await;
    assert_eq!(elsewhere.status(), 400);
    let other_filter = app
        .call(
            reqwest::Method::GET,
            &format!("/v1/admin/audit-logs?cursor={cursor}&tenant_id={kept}"),
            Some(root.access_token.as_str()),
            None,
        )
        .await;
    assert_eq!(other_filter.status(), 400);
    let bad = app
        .call(reqwest::Method::GET, "/v1/admin/audit-logs?tenant_id=nope", Some(root.access_token.as_str()), None)
        .await;
    assert_eq!(bad.status(), 400);
    assert!(bad.json::<Value>().await.unwrap()["detail"].as_str().unwrap().contains("tenant_id"));
}

#[tokio::test]
async fn everyone_else_is_refused_and_a_revoked_admin_at_once() {
    let app = spawn_app().await;
    let root = app.register("root@example.com").await;
    make_platform_admin(&app, "root@example.com").await;
    let owner = app.register("owner@example.com").await;
    let tenant = app.create_tenant(&owner, "acme").await;
    let key = app.create_api_key(&owner, tenant, "k", "owner").await["secret"].as_str().unwrap().to_owned();
    let event = app.audit_log(tenant).await.0[0].id;
    let get = |who: String, path: String| {
        let app = &app;
        async move { app.call(reqwest::Method::GET, &path, Some(who.as_str()), None).await }
    };
    assert_eq!(get(root.access_token.clone(), "/v1/admin/audit-logs".into()).await.status(), 200);
    assert_eq!(get(root.access_token.clone(), format!("/v1/admin/audit-logs/{event}")).await.status(), 200);
    for (who, name) in [(owner.access_token.clone(), "a tenant owner"), (key.clone(), "an owner's API key")] {
        for path in ["/v1/admin/audit-logs".to_owned(), format!("/v1/admin/audit-logs/{event}")] {
            let refused = get(who.clone(), path.clone()).await;
            assert_eq!(refused.status(), 403, "{name}: {path}");
            assert_eq!(refused.json::<Value>().await.unwrap()["code"], "forbidden");
        }
    }
    let anonymous = app.call(reqwest::Method::GET, "/v1/admin/audit-logs", None, None).await;
    assert_eq!(anonymous.status(), 401);

    // Revoked, or disabled: refused on the very next request.
    app.sql("UPDATE users SET is_platform_admin = false WHERE email = 'root@example.com'").await;
    assert_eq!(get(root.access_token.clone(), "/v1/admin/audit-logs".into()).await.status(), 403);
    make_platform_admin(&app, "root@example.com").await;
    assert_eq!(get(root.access_token.clone(), "/v1/admin/audit-logs".into()).await.status(), 200);
    app.sql("UPDATE users SET disabled_at = now() WHERE email = 'root@example.com'").await;
    assert_eq!(get(root.access_token.clone(), "/v1/admin/audit-logs".into()).await.status(), 401);
}

#[tokio::test]
async fn the_reader_role_reads_every_audit_event_and_nothing_else_and_the_runtime_role_only_by_switching() {
    let db = TestDatabase::migrated().await;
    let superuser = db.superuser().await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    superuser
        .execute_unprepared(&format!(
            "INSERT INTO audit_logs (tenant_id, id, actor_type, action, target_type, outcome)
             VALUES ('{a}', gen_random_uuid(), 'system', 'tenant.update', 'tenant', 'success'),
                    ('{b}', gen_random_uuid(), 'system', 'tenant.update', 'tenant', 'success')"
        ))
        .await
        .unwrap();
    let runtime = db.connect_runtime().await;
    let count = |sql: &'static str| {
        let runtime = &runtime;
        async move {
            let txn = runtime.begin().await.unwrap();
            let row = txn.query_one_raw(sea_orm::Statement::from_string(sea_orm::DbBackend::Postgres, sql)).await;
            row.map(|r| r.unwrap().try_get_by_index::<i64>(0).unwrap())
        }
    };
    // Without switching: the tenant's own events only (none without a tenant), and none of the reader's rights.
    assert_eq!(count("SELECT count(*) FROM audit_logs").await.unwrap(), 0);
    let rights: bool = runtime
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT pg_has_role('testio_audit_reader', 'USAGE') OR has_function_privilege(
                 'audit_logs_matching_platform(text, uuid[], timestamptz, uuid, integer)', 'EXECUTE')",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap();
    assert!(!rights, "the runtime role holds the reader's rights without switching");

    // Switched: every tenant's events; nothing else to read, nothing to write.
    let txn = runtime.begin().await.unwrap();
    txn.execute_unprepared("SET LOCAL ROLE testio_audit_reader").await.unwrap();
    let n: i64 = txn
        .query_one_raw(sea_orm::Statement::from_string(sea_orm::DbBackend::Postgres, "SELECT count(*) FROM audit_logs"))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap();
    assert_eq!(n, 2);
    txn.rollback().await.unwrap();
    for sql in [
        "SELECT count(*) FROM users",
        "SELECT count(*) FROM tenants",
        "SELECT count(*) FROM tenant_users",
        "SELECT count(*) FROM sessions",
        "SELECT count(*) FROM testio_tests",
        "INSERT INTO audit_logs (tenant_id, id, actor_type, action, target_type, outcome)
         VALUES (gen_random_uuid(), gen_random_uuid(), 'system', 'tenant.update', 'tenant', 'success')",
        "DELETE FROM audit_logs",
        "UPDATE audit_logs SET outcome = 'failure'",
        "SET ROLE testio_owner",
    ] {
        let txn = runtime.begin().await.unwrap();
        txn.execute_unprepared("SET LOCAL ROLE testio_audit_reader").await.unwrap();
        let err = txn.execute_unprepared(sql).await.expect_err(sql);
        assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{sql}: {err}");
        txn.rollback().await.unwrap();
    }
    // Other login roles of the cluster cannot switch to it.
    let err = superuser
        .execute_unprepared("DO $$ BEGIN IF pg_has_role('testio_owner', 'testio_audit_reader', 'MEMBER') THEN RAISE EXCEPTION 'owner is a member'; END IF; END $$")
        .await;
    assert!(err.is_ok(), "{err:?}");
}
