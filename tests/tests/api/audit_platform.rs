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

/// Every export recorded in the platform's own log: (actor, metadata).
async fn platform_exports(app: &TestApp) -> Vec<(Option<Uuid>, Value)> {
    use sea_orm::FromQueryResult;
    #[derive(FromQueryResult)]
    struct Row {
        actor_id: Option<Uuid>,
        metadata: Value,
    }
    Row::find_by_statement(sea_orm::Statement::from_string(
        sea_orm::DbBackend::Postgres,
        "SELECT actor_id, metadata FROM audit_logs WHERE tenant_id = '00000000-0000-0000-0000-000000000000' \
         AND action = 'audit_log.export' ORDER BY created_at, id",
    ))
    .all(app.db.superuser().await)
    .await
    .unwrap()
    .into_iter()
    .map(|r| (r.actor_id, r.metadata))
    .collect()
}

#[tokio::test]
async fn a_platform_export_streams_every_chosen_tenants_events_and_is_recorded_in_the_platforms_log() {
    let app = spawn_app().await;
    let root = app.register("root@example.com").await;
    make_platform_admin(&app, "root@example.com").await;
    let bob = app.register("bob@example.com").await;
    let big = app.create_tenant(&bob, "big").await;
    let small = app.create_tenant(&bob, "small").await;
    let other = app.create_tenant(&bob, "other").await;
    // More than a batch of 1,000 across the two chosen tenants, so the stream reads several.
    super::audit_review::seed(&app, big, 1_300, 5).await;
    super::audit_review::seed(&app, small, 400, 6).await;
    super::audit_review::seed(&app, other, 50, 7).await;
    let export = |query: String| {
        let app = &app;
        let token = root.access_token.clone();
        async move {
            app.call(reqwest::Method::GET, &format!("/v1/admin/audit-logs/export?{query}"), Some(&token), None).await
        }
    };

    let chosen = format!("tenant_id={big}&tenant_id={small}");
    let csv = export(format!("{chosen}&outcome=failure,denied")).await;
    assert_eq!(csv.status(), 200);
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let disposition = csv.headers()["content-disposition"].to_str().unwrap().to_owned();
    assert!(disposition.contains("audit-log-platform-") && disposition.ends_with(".csv\""), "{disposition}");
    let records = super::audit_review::csv_records(&csv.text().await.unwrap());
    let ids: Vec<Uuid> = records.iter().map(|r| r["id"].parse().unwrap()).collect();
    let want = all_rows(&app, &format!("tenant_id IN ('{big}', '{small}') AND outcome IN ('failure', 'denied')")).await;
    assert!(want.len() > 100, "the filter keeps a fair share: {}", want.len());
    assert_eq!(ids, want.iter().map(|(id, _)| *id).collect::<Vec<_>>(), "the chosen tenants' failures, newest first");

    let ndjson = export(format!("{chosen}&format=ndjson")).await;
    assert_eq!(ndjson.status(), 200);
    assert_eq!(ndjson.headers()["content-type"], "application/x-ndjson");
    let lines: Vec<(Uuid, Uuid)> = ndjson
        .text()
        .await
        .unwrap()
        .lines()
        .map(|line| {
            let event: Value = serde_json::from_str(line).unwrap();
            (event["id"].as_str().unwrap().parse().unwrap(), event["tenant_id"].as_str().unwrap().parse().unwrap())
        })
        .collect();
    let every = all_rows(&app, &format!("tenant_id IN ('{big}', '{small}')")).await;
    assert!(every.len() > 1_700);
    assert_eq!(lines, every, "every event of the two tenants, in several batches, each once");

    // Recorded in the platform's log, by the admin, with the format and the filters.
    let recorded = platform_exports(&app).await;
    assert_eq!(recorded.len(), 2);
    assert!(recorded.iter().all(|(actor, _)| *actor == Some(root.id)));
    assert_eq!(recorded[0].1["format"], "csv");
    assert_eq!(recorded[1].1["format"], "ndjson");
    let tenants = recorded[0].1["filters"]["tenants"].as_array().unwrap();
    assert_eq!(tenants.len(), 2, "{}", recorded[0].1);

    // Bad input and other callers: an ordinary problem, nothing exported, nothing recorded.
    for (query, name) in [("format=xml", "format"), ("tenant_id=nope", "tenant_id"), ("limit=5", "limit")] {
        let refused = export(query.to_owned()).await;
        assert_eq!(refused.status(), 400, "{query}");
        assert_eq!(refused.headers()["content-type"], "application/problem+json");
        assert!(refused.json::<Value>().await.unwrap()["detail"].as_str().unwrap().contains(name), "{query}");
    }
    let bobs =
        app.call(reqwest::Method::GET, "/v1/admin/audit-logs/export", Some(bob.access_token.as_str()), None).await;
    assert_eq!(bobs.status(), 403);
    assert_eq!(platform_exports(&app).await.len(), 2, "only the two exports were recorded");
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
        for path in [
            "/v1/admin/audit-logs".to_owned(),
            format!("/v1/admin/audit-logs/{event}"),
            "/v1/admin/audit-logs/export".to_owned(),
        ] {
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
