//! The audit review's plans (issue 13): on a log big enough that the planner prefers indexes (40,000 events in one
//! tenant, 20,000 over five others), `EXPLAIN` of every list statement — each filter alone, several values of one,
//! combinations, first and deep keyset pages; a tenant's as the runtime role in a `TenantTxn` (row-level security
//! active), the platform's as the reader role — scans `audit_logs` by an index, never sequentially; a filter alone is
//! read in the list's order from its own index (no sort); and the text search's trigram fallback uses the trigram
//! index.

use chrono::{Duration, Utc};
use entity::audit::query::{self, AuditFilter, AuditPosition};
use entity::audit_logs::{ActorType, Outcome};
use entity::{PlatformAuditTxn, TenantId, TenantTxn, UserId};
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use serde_json::Value;
use uuid::Uuid;

const BIG: i64 = 40_000;
const ROWS: i64 = 60_000;

/// Every value of `key` in the plan's nodes (`Node Type`, `Index Name`, ...), and every `Seq Scan` relation.
fn collect(plan: &Value, key: &str, found: &mut Vec<String>) {
    match plan {
        Value::Object(node) => {
            if let Some(value) = node.get(key).and_then(Value::as_str) {
                found.push(value.to_owned());
            }
            node.values().for_each(|v| collect(v, key, found));
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, key, found)),
        _ => {}
    }
}

fn of(plan: &Value, key: &str) -> Vec<String> {
    let mut found = Vec::new();
    collect(plan, key, &mut found);
    found
}

/// A filter to explain, and the index it must be read from in order (`None`: any index, a sort allowed).
type Case = (&'static str, AuditFilter, Option<&'static str>);

fn cases(actor: Uuid, target: String) -> Vec<Case> {
    let since = Utc::now() - Duration::days(3);
    vec![
        ("none", AuditFilter::default(), Some("audit_logs_tenant_id_created_at_idx")),
        (
            "action",
            AuditFilter { actions: vec!["member.remove".into()], ..Default::default() },
            Some("audit_logs_action_idx"),
        ),
        (
            "actions",
            AuditFilter {
                actions: vec!["member.leave".into(), "member.remove".into(), "member.role_change".into()],
                ..Default::default()
            },
            Some("audit_logs_action_idx"),
        ),
        (
            "actor_type",
            AuditFilter { actor_types: vec![ActorType::Worker], ..Default::default() },
            Some("audit_logs_actor_type_idx"),
        ),
        (
            "actor_types",
            AuditFilter { actor_types: vec![ActorType::System, ActorType::Worker], ..Default::default() },
            Some("audit_logs_actor_type_idx"),
        ),
        ("actor_id", AuditFilter { actor_id: Some(actor), ..Default::default() }, Some("audit_logs_actor_idx")),
        // A type alone is not in the target index's order (the id comes between): a common type is read along the
        // time index, a rare one from the target index and sorted.
        ("target_type", AuditFilter { target_type: Some("member".into()), ..Default::default() }, None),
        (
            "target",
            AuditFilter { target_type: Some("member".into()), target_id: Some(target), ..Default::default() },
            Some("audit_logs_target_idx"),
        ),
        (
            "outcome",
            AuditFilter { outcomes: vec![Outcome::Denied], ..Default::default() },
            Some("audit_logs_outcome_idx"),
        ),
        (
            "outcomes",
            AuditFilter { outcomes: vec![Outcome::Denied, Outcome::Failure], ..Default::default() },
            Some("audit_logs_outcome_idx"),
        ),
        (
            "since",
            AuditFilter { since: Some(since), ..Default::default() },
            Some("audit_logs_tenant_id_created_at_idx"),
        ),
        (
            "window",
            AuditFilter { since: Some(since - Duration::days(1)), until: Some(since), ..Default::default() },
            Some("audit_logs_tenant_id_created_at_idx"),
        ),
        (
            "action+outcome",
            AuditFilter { actions: vec!["auth.login".into()], outcomes: vec![Outcome::Failure], ..Default::default() },
            None,
        ),
        (
            "actor_types+since",
            AuditFilter {
                actor_types: vec![ActorType::User, ActorType::ApiKey],
                since: Some(since),
                ..Default::default()
            },
            None,
        ),
        (
            "actor+action+window",
            AuditFilter {
                actor_id: Some(actor),
                actions: vec!["tenant.update".into()],
                since: Some(since - Duration::days(5)),
                until: Some(since),
                ..Default::default()
            },
            None,
        ),
    ]
}

/// What is wrong with `plan` for `case` (nothing: empty).
fn problems(plan: &Value, index: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    let scans: Vec<String> = of(plan, "Node Type");
    let relations = of(plan, "Relation Name");
    if scans.iter().any(|n| n == "Seq Scan") && relations.iter().any(|r| r == "audit_logs") {
        out.push("a sequential scan of audit_logs".to_owned());
    }
    if let Some(index) = index {
        if scans.iter().any(|n| n == "Sort") {
            out.push("a sort".to_owned());
        }
        let used = of(plan, "Index Name");
        if !used.iter().any(|u| u == index) {
            out.push(format!("not read from {index} but {used:?}"));
        }
    }
    out
}

#[tokio::test]
async fn every_audit_list_statement_reads_an_index_in_order_under_row_level_security() {
    let app = tests::spawn_app().await;
    let owner = app.register("owner@example.com").await;
    let big = app.create_tenant(&owner, "big").await;
    let mut tenants = vec![big];
    for i in 0..5 {
        tenants.push(app.create_tenant(&owner, &format!("small-{i}")).await);
    }
    let started = std::time::Instant::now();
    tests::audit::seed(&app.db.superuser_url(), &tenants, ROWS, BIG).await;
    eprintln!("seeded in {:?}", started.elapsed());
    // An actor and a target of the big tenant.
    let text = |sql: String| {
        let app = &app;
        async move {
            let row = app.db.superuser().await.query_one_raw(Statement::from_string(DbBackend::Postgres, sql)).await;
            row.unwrap().unwrap().try_get_by_index::<String>(0).unwrap()
        }
    };
    let actor: Uuid = text(format!(
        "SELECT actor_id::text FROM audit_logs WHERE tenant_id = '{big}' AND actor_id IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
    ))
    .await
    .parse()
    .unwrap();
    let target =
        text(format!("SELECT target_id FROM audit_logs WHERE tenant_id = '{big}' AND target_type = 'member' GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"))
            .await;
    assert!(app.db.count(&format!("SELECT count(*) FROM audit_logs WHERE actor_id = '{actor}'")).await > 100);
    assert!(app.db.count(&format!("SELECT count(*) FROM audit_logs WHERE target_id = '{target}'")).await > 50);

    let deep = AuditPosition { created_at: Utc::now() - Duration::days(4), id: Uuid::max() };
    let runtime = app.db.connect_runtime().await;
    let txn = TenantTxn::begin(&runtime, TenantId(big)).await.unwrap();
    let mut failures = Vec::new();
    let mut explained = 0;
    for (name, filter, index) in cases(actor, target.clone()) {
        for after in [None, Some(deep)] {
            let statement = query::list_statement(TenantId(big), &filter, after, 50);
            let plan = entity::mirror::query::explain(&txn, &statement).await.unwrap();
            explained += 1;
            let found = problems(&plan, index);
            if !found.is_empty() {
                failures.push(format!(
                    "tenant {name} after={after:?}: {}\n    {}\n    {plan}",
                    found.join("; "),
                    statement.sql
                ));
            }
        }
    }
    txn.rollback().await.unwrap();

    app.sql("UPDATE users SET is_platform_admin = true WHERE email = 'owner@example.com'").await;
    let reader = PlatformAuditTxn::begin(&runtime, UserId(owner.id)).await.unwrap().expect("a platform admin");
    let platform: Vec<Case> = vec![
        ("none", AuditFilter::default(), Some("audit_logs_platform_time_idx")),
        (
            "window",
            AuditFilter { since: Some(Utc::now() - Duration::days(2)), ..Default::default() },
            Some("audit_logs_platform_time_idx"),
        ),
        ("tenant", AuditFilter { tenants: vec![big], ..Default::default() }, None),
        (
            "tenants+outcome",
            AuditFilter { tenants: vec![big, tenants[1]], outcomes: vec![Outcome::Denied], ..Default::default() },
            None,
        ),
        ("action", AuditFilter { actions: vec!["auth.login".into()], ..Default::default() }, None),
    ];
    for (name, filter, index) in platform {
        for after in [None, Some(deep)] {
            let statement = query::platform_list_statement(&filter, after, 50);
            let plan = query::explain_platform(&reader, &statement).await.unwrap();
            explained += 1;
            let found = problems(&plan, index);
            if !found.is_empty() {
                failures.push(format!(
                    "platform {name} after={after:?}: {}\n    {}\n    {plan}",
                    found.join("; "),
                    statement.sql
                ));
            }
        }
    }
    reader.commit().await.unwrap();
    assert!(failures.is_empty(), "{} of {explained} statements:\n{}", failures.len(), failures.join("\n\n"));

    // The search's trigram fallback (the body of `audit_logs_search_rare`, with its settings) uses the trigram index.
    let db = app.db.superuser().await;
    let search = db.begin().await.unwrap();
    search
        .execute_unprepared(
            "SET LOCAL ROLE testio_search; SET LOCAL enable_indexscan = off; SET LOCAL enable_seqscan = off",
        )
        .await
        .unwrap();
    let row = search
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "EXPLAIN (FORMAT JSON) SELECT a.id, a.created_at FROM audit_logs a
              WHERE a.tenant_id = ANY($1::uuid[]) AND a.search_text LIKE $2
              ORDER BY a.created_at DESC, a.id DESC LIMIT 500",
            [format!("{{{big}}}").into(), entity::mirror::query::like_pattern("needle").into()],
        ))
        .await
        .unwrap()
        .unwrap();
    let plan: Value = row.try_get("", "QUERY PLAN").unwrap();
    assert!(of(&plan, "Index Name").iter().any(|i| i == "audit_logs_search"), "{plan}");
    search.rollback().await.unwrap();

    // And the API finds exactly the seeded needles of the big tenant (one event in 5,000).
    let found = app.get_audit_logs(&owner, big, &[("q", "needle"), ("limit", "200")]).await;
    assert_eq!(found.status(), 200);
    let found: Value = found.json().await.unwrap();
    let expected = app
        .db
        .count(&format!("SELECT count(*) FROM audit_logs WHERE tenant_id = '{big}' AND search_text LIKE '%needle%'"))
        .await;
    assert_eq!(found["items"].as_array().unwrap().len() as i64, expected);
    assert_eq!(expected, BIG / 5_000);
    runtime.close().await.unwrap();
}
