//! The audit-log review (issue 13): `GET /v1/tenants/{tenant_id}/audit-logs` and `.../audit-logs/{id}`.
//!
//! The filters are checked against a known log: a few hundred events written straight into the table (as the
//! superuser, with ties on the timestamp, every actor type and outcome, text with LIKE metacharacters) plus those the
//! API wrote itself, in two tenants. Every filter alone, and random combinations of them (a seeded generator), are
//! paged through with random page sizes and compared, in order, with the same filter applied to the rows in Rust.

use std::collections::HashSet;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};
use tests::app::{AuditRow, TestApp, TestUser};
use tests::spawn_app;
use tests::testio_sim::Rng;
use uuid::Uuid;

const ACTIONS: &[&str] = &[
    "member.role_change",
    "member.remove",
    "member.leave",
    "api_key.create",
    "api_key.revoke",
    "auth.login",
    "tenant.update",
    "sync_run.request",
];
const ACTOR_TYPES: &[&str] = &["user", "api_key", "system", "worker", "anonymous"];
const OUTCOMES: &[&str] = &["success", "failure", "denied"];
const WORDS: &[&str] = &["checkout", "Billing", "100%_off", "under_score", "back\\slash", "quiet"];

/// The target type of an action (as `AuditAction::target_type` says).
fn target_type(action: &str) -> &'static str {
    match action.split('.').next().unwrap() {
        "member" => "member",
        "api_key" => "api_key",
        "auth" => "user",
        "tenant" => "tenant",
        "sync_run" => "sync_run",
        other => panic!("{other}"),
    }
}

/// Writes `n` events into `tenant`'s log as the superuser; returns the actor and target ids used.
pub(crate) async fn seed(app: &TestApp, tenant: Uuid, n: usize, seed: u64) -> (Vec<Uuid>, Vec<String>) {
    let mut rng = Rng::new(seed);
    let actors: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    let targets: Vec<String> = (0..4).map(|_| Uuid::new_v4().to_string()).collect();
    let base = Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap();
    let mut values = Vec::new();
    for i in 0..n {
        let action = rng.pick(ACTIONS);
        let actor_type = rng.pick(ACTOR_TYPES);
        let (actor_id, actor_display) = match actor_type {
            "user" | "api_key" => {
                let k = rng.below(3) as usize;
                (format!("'{}'", actors[k]), format!("'Person{k} Zed <p{k}@example.com>'"))
            }
            "anonymous" => ("NULL".to_owned(), "'stranger@example.org'".to_owned()),
            other => ("NULL".to_owned(), format!("'{other}'")),
        };
        let target = targets[rng.below(4) as usize].clone();
        let word = rng.pick(WORDS).replace('\\', "\\\\");
        let outcome = if rng.chance(70) { "success" } else { rng.pick(&OUTCOMES[1..]) };
        // Two events per second: ties on the timestamp are broken by id.
        let at = base + Duration::milliseconds((i / 2) as i64 * 1000 + 7);
        values.push(format!(
            "('{tenant}', '{}', '{actor_type}', {actor_id}, {actor_display}, '{action}', '{}', '{target}', \
             'Target {}', '{{\"note\": \"{word} {i}\"}}'::jsonb, '203.0.113.{}', 'agent/{i}', 'req-{i}', \
             '{outcome}', '{}', 2)",
            Uuid::new_v4(),
            target_type(action),
            &target[..4],
            i % 250,
            at.to_rfc3339(),
        ));
    }
    app.sql(&format!(
        "INSERT INTO audit_logs (tenant_id, id, actor_type, actor_id, actor_display, action, target_type, target_id, \
         target_display, metadata, ip_address, user_agent, request_id, outcome, created_at, schema_version) VALUES {}",
        values.join(", ")
    ))
    .await;
    (actors, targets)
}

/// A filter as the API takes it, and the same filter over rows.
#[derive(Debug, Clone, Default)]
struct Filter {
    actions: Vec<String>,
    actor_types: Vec<&'static str>,
    actor_id: Option<Uuid>,
    target: Option<(&'static str, String)>,
    outcomes: Vec<&'static str>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    q: Option<String>,
}

impl Filter {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        for a in &self.actions {
            query.push(("action", a.clone()));
        }
        if !self.actor_types.is_empty() {
            query.push(("actor_type", self.actor_types.join(",")));
        }
        if let Some(id) = self.actor_id {
            query.push(("actor_id", id.to_string()));
        }
        if let Some((kind, id)) = &self.target {
            query.push(("target_type", (*kind).to_owned()));
            query.push(("target_id", id.clone()));
        }
        for o in &self.outcomes {
            query.push(("outcome", (*o).to_owned()));
        }
        if let Some(t) = self.since {
            query.push(("since", t.to_rfc3339()));
        }
        if let Some(t) = self.until {
            query.push(("until", t.to_rfc3339()));
        }
        if let Some(q) = &self.q {
            query.push(("q", q.clone()));
        }
        query
    }

    fn matches(&self, row: &AuditRow) -> bool {
        let action_ok = self.actions.is_empty()
            || self.actions.iter().any(|a| match a.strip_suffix(".*") {
                Some(prefix) => row.action.split('.').next() == Some(prefix),
                None => row.action == *a,
            });
        let text = format!(
            "{} {} {} {}",
            row.actor_display.clone().unwrap_or_default(),
            row.target_display.clone().unwrap_or_default(),
            row.target_id.clone().unwrap_or_default(),
            row.metadata
        )
        .to_lowercase();
        action_ok
            && (self.actor_types.is_empty() || self.actor_types.contains(&row.actor_type.as_str()))
            && self.actor_id.is_none_or(|id| row.actor_id == Some(id))
            && self.target.as_ref().is_none_or(|(k, id)| row.target_type == *k && row.target_id.as_ref() == Some(id))
            && (self.outcomes.is_empty() || self.outcomes.contains(&row.outcome.as_str()))
            && self.since.is_none_or(|t| row.created_at >= t)
            && self.until.is_none_or(|t| row.created_at <= t)
            && self.q.as_ref().is_none_or(|q| text.contains(&q.to_lowercase()))
    }
}

/// Pages through the list with `filter` (random page sizes up to `max_limit`); returns the ids in order and the
/// number of short pages that still had a next page.
async fn walk(
    app: &TestApp,
    who: &TestUser,
    tenant: Uuid,
    filter: &Filter,
    rng: &mut Rng,
    max_limit: u64,
) -> (Vec<Uuid>, usize) {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    let mut short = 0;
    loop {
        let limit = (1 + rng.below(max_limit)).to_string();
        let mut query = filter.query();
        query.push(("limit", limit.clone()));
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let borrowed: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let response = app.get_audit_logs(who, tenant, &borrowed).await;
        assert_eq!(response.status(), 200, "{filter:?}");
        let page: Value = response.json().await.unwrap();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= limit.parse::<usize>().unwrap());
        ids.extend(items.iter().map(|i| i["id"].as_str().unwrap().parse::<Uuid>().unwrap()));
        pages += 1;
        assert!(pages < 2_000, "paging does not end: {filter:?}");
        match page["next_cursor"].as_str() {
            Some(c) => {
                short += usize::from(items.len() < limit.parse::<usize>().unwrap());
                cursor = Some(c.to_owned());
            }
            None => return (ids, short),
        }
    }
}

/// The ids of `rows` that pass `filter`, newest first (ties: larger id first).
fn expected(rows: &[AuditRow], filter: &Filter) -> Vec<Uuid> {
    let mut kept: Vec<&AuditRow> = rows.iter().filter(|r| filter.matches(r)).collect();
    kept.sort_by_key(|r| std::cmp::Reverse((r.created_at, r.id)));
    kept.iter().map(|r| r.id).collect()
}

#[tokio::test]
async fn every_filter_and_random_combinations_match_the_known_log_in_order() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;
    let other_owner = app.register("olga@example.com").await;
    let other = app.create_tenant(&other_owner, "other").await;
    let (actors, targets) = seed(&app, tenant, 420, 7).await;
    // The other tenant's events match the same filters (same words, actors and targets): none may show.
    seed(&app, other, 150, 7).await;
    let rows = app.audit_log(tenant).await.0;
    assert!(rows.len() > 420);

    let base = Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap();
    let mut cases: Vec<Filter> = vec![
        Filter::default(),
        Filter { actions: vec!["member.remove".into()], ..Default::default() },
        Filter { actions: vec!["member.*".into()], ..Default::default() },
        Filter { actions: vec!["member.*".into(), "api_key.create".into(), "auth.login".into()], ..Default::default() },
        Filter { actions: vec!["tenant.create".into()], ..Default::default() },
        Filter { actor_types: vec!["worker"], ..Default::default() },
        Filter { actor_types: vec!["system", "anonymous"], ..Default::default() },
        Filter { actor_id: Some(actors[1]), ..Default::default() },
        Filter { actor_id: Some(ann.id), ..Default::default() },
        Filter { target: Some(("member", targets[2].clone())), ..Default::default() },
        Filter { outcomes: vec!["denied"], ..Default::default() },
        Filter { outcomes: vec!["failure", "denied"], ..Default::default() },
        Filter { since: Some(base + Duration::seconds(50)), ..Default::default() },
        Filter { until: Some(base + Duration::milliseconds(30_007)), ..Default::default() },
        Filter {
            since: Some(base + Duration::milliseconds(10_007)),
            until: Some(base + Duration::milliseconds(10_007)),
            ..Default::default()
        },
        Filter { q: Some("checkout".into()), ..Default::default() },
        Filter { q: Some("CHECKOUT".into()), ..Default::default() },
        Filter { q: Some("100%_off".into()), ..Default::default() },
        Filter { q: Some("under_score".into()), ..Default::default() },
        Filter { q: Some("back\\slash".into()), ..Default::default() },
        Filter { q: Some("p2@example.com".into()), ..Default::default() },
        Filter { q: Some("stranger".into()), outcomes: vec!["denied"], ..Default::default() },
        Filter { q: Some("nowhere-at-all".into()), ..Default::default() },
        Filter { q: Some("ann@example.com".into()), ..Default::default() },
    ];
    let mut rng = Rng::new(42);
    for _ in 0..40 {
        let mut f = Filter::default();
        if rng.chance(40) {
            f.actions = (0..1 + rng.below(3))
                .map(|_| {
                    let a = rng.pick(ACTIONS);
                    if rng.chance(30) { format!("{}.*", a.split('.').next().unwrap()) } else { a.to_owned() }
                })
                .collect();
        }
        if rng.chance(30) {
            f.actor_types = vec![rng.pick(ACTOR_TYPES)];
        }
        if rng.chance(25) {
            f.actor_id = Some(actors[rng.below(3) as usize]);
        }
        if rng.chance(20) {
            f.target = Some((target_type(rng.pick(ACTIONS)), targets[rng.below(4) as usize].clone()));
        }
        if rng.chance(30) {
            f.outcomes = vec![rng.pick(OUTCOMES)];
        }
        if rng.chance(30) {
            f.since = Some(base + Duration::milliseconds(rng.below(200) as i64 * 1000 + 7));
        }
        if rng.chance(30) {
            f.until = Some(base + Duration::milliseconds(rng.below(220) as i64 * 1000 + 7));
            if f.since > f.until {
                std::mem::swap(&mut f.since, &mut f.until);
            }
        }
        if rng.chance(35) {
            f.q = Some(["checkout", "billing", "Zed", "p0@example", "quiet", "100%"][rng.below(6) as usize].to_owned());
        }
        cases.push(f);
    }
    let mut non_empty = 0;
    for filter in &cases {
        let want = expected(&rows, filter);
        non_empty += usize::from(!want.is_empty());
        let (got, short) = walk(&app, &ann, tenant, filter, &mut rng, 40).await;
        assert_eq!(short, 0, "a search this small never stops early: {filter:?}");
        assert_eq!(got.len(), want.len(), "{filter:?}");
        assert_eq!(got, want, "{filter:?}");
    }
    assert!(non_empty > cases.len() / 2, "most cases select something ({non_empty} of {})", cases.len());
}

#[tokio::test]
async fn a_search_the_other_filters_mostly_reject_comes_in_short_pages_and_still_finds_everything() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;
    let (_, targets) = seed(&app, tenant, 14_000, 11).await;
    let rows = app.audit_log(tenant).await.0;
    let mut rng = Rng::new(5);
    // `zed` is in 40% of the events (more than one chunk of matches), the target in a quarter, `denied` in 15%.
    let cases = [
        Filter { q: Some("zed".into()), outcomes: vec!["denied"], ..Default::default() },
        Filter { q: Some("zed".into()), target: Some(("member", targets[0].clone())), ..Default::default() },
        Filter { q: Some("quiet".into()), actions: vec!["member.*".into(), "auth.login".into()], ..Default::default() },
        // About one match in seventy passes: a page examines its budget of matches before it is full.
        Filter {
            q: Some("zed".into()),
            target: Some(("member", targets[1].clone())),
            outcomes: vec!["denied"],
            ..Default::default()
        },
    ];
    let mut short_pages = 0;
    for filter in &cases {
        let want = expected(&rows, filter);
        assert!(want.len() > 40, "{filter:?}: {}", want.len());
        let (got, short) = walk(&app, &ann, tenant, filter, &mut rng, 200).await;
        assert_eq!(got, want, "{filter:?}");
        short_pages += short;
    }
    assert!(short_pages > 0, "the search budget never cut a page short: the test does not reach it");
}

#[tokio::test]
async fn an_event_reads_with_its_actor_target_origin_and_request_as_they_were() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;
    let bob = app.add_member(&ann, tenant, "bob@example.com", "member").await;
    let changed = app.patch_member(&ann, tenant, bob.id, "viewer").await;
    assert_eq!(changed.status(), 200);
    let request_id = changed.headers()["x-request-id"].to_str().unwrap().to_owned();
    let key = app.create_api_key(&ann, tenant, "ci robot", "admin").await;
    let secret = key["secret"].as_str().unwrap().to_owned();

    let page: Value = app.get_audit_logs(&ann, tenant, &[("action", "member.role_change")]).await.json().await.unwrap();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    let event = &items[0];
    assert_eq!(event["action"], "member.role_change");
    assert_eq!(event["actor"], json!({ "type": "user", "id": ann.id, "display": "Test User <ann@example.com>" }));
    assert_eq!(
        event["target"],
        json!({ "type": "member", "id": bob.id.to_string(), "display": "Test User <bob@example.com>" })
    );
    assert_eq!(event["outcome"], "success");
    assert_eq!(event["request_id"], request_id.as_str());
    assert_eq!(event["client"]["ip_address"], "127.0.0.1");
    assert_eq!(
        (event["metadata"]["from"].as_str(), event["metadata"]["to"].as_str()),
        (Some("member"), Some("viewer"))
    );
    assert_eq!(event["schema_version"], 2);
    assert_eq!(event["tenant_id"], tenant.to_string());

    // The detail is the same event; an admin's API key reads it too, and names itself as the actor of what it does.
    let id = event["id"].as_str().unwrap();
    let one: Value = app.get_audit_event(&secret, tenant, id).await.json().await.unwrap();
    assert_eq!(&one, event);
    let by_key = app.patch_tenant(&secret, tenant, json!({ "name": "Acme Renamed" })).await;
    assert_eq!(by_key.status(), 200);
    let page: Value = app.get_audit_logs(&ann, tenant, &[("actor_type", "api_key")]).await.json().await.unwrap();
    let actor = &page["items"][0]["actor"];
    assert_eq!(actor["id"], key["api_key"]["id"]);
    assert!(actor["display"].as_str().unwrap().starts_with("ci robot ("), "{actor}");

    // Names are kept as they were: the rename leaves the creation's target name alone.
    let page: Value = app.get_audit_logs(&ann, tenant, &[("action", "tenant.*")]).await.json().await.unwrap();
    let names: Vec<&str> =
        page["items"].as_array().unwrap().iter().map(|e| e["target"]["display"].as_str().unwrap()).collect();
    assert_eq!(names, ["Acme Renamed", "acme"], "newest first: the update, then the creation");

    // A failed sign-in with an unknown email is on the platform's log with the email it claimed.
    let failed = app.post_login(json!({ "email": "nobody@example.com", "password": "wrong password" })).await;
    assert_eq!(failed.status(), 401);
    let platform = app.audit_log(Uuid::nil()).await;
    let attempt = platform.0.iter().rev().find(|r| r.action == "auth.login").unwrap();
    assert_eq!(
        (attempt.actor_type.as_str(), attempt.actor_display.as_deref()),
        ("anonymous", Some("nobody@example.com"))
    );
}

#[tokio::test]
async fn pages_have_no_gaps_or_duplicates_while_new_events_arrive() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;
    seed(&app, tenant, 120, 3).await;
    let before: Vec<Uuid> = expected(&app.audit_log(tenant).await.0, &Filter::default());

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut k = 0;
    loop {
        // Between two pages, new events: through the API (renames) and straight into the table.
        let renamed = app.patch_tenant(&ann, tenant, json!({ "name": format!("acme {k}") })).await;
        assert_eq!(renamed.status(), 200);
        k += 1;
        let mut query = vec![("limit", "9".to_owned())];
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let borrowed: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page: Value = app.get_audit_logs(&ann, tenant, &borrowed).await.json().await.unwrap();
        let ids: Vec<Uuid> =
            page["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().parse().unwrap()).collect();
        seen.extend(ids);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    // The first page started with the newest event then (one rename after the snapshot): the rest is the snapshot,
    // in order, each once.
    let unique: HashSet<&Uuid> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "an event was served twice");
    assert_eq!(&seen[1..], &before[..], "the pages are the log as it was, in order");
}

#[tokio::test]
async fn owners_and_admins_read_the_log_others_are_refused_and_strangers_see_nothing() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;
    let admin = app.add_member(&ann, tenant, "adam@example.com", "admin").await;
    let member = app.add_member(&ann, tenant, "mia@example.com", "member").await;
    let viewer = app.add_member(&ann, tenant, "vic@example.com", "viewer").await;
    let member_key = app.create_api_key(&ann, tenant, "m", "member").await["secret"].as_str().unwrap().to_owned();
    let stranger = app.register("sam@example.com").await;
    let theirs = app.create_tenant(&stranger, "theirs").await;
    let event = app.audit_log(tenant).await.0[0].id;
    let their_event = app.audit_log(theirs).await.0[0].id;

    assert_eq!(app.get_audit_logs(&ann, tenant, &[]).await.status(), 200);
    assert_eq!(app.get_audit_logs(&admin, tenant, &[]).await.status(), 200);
    assert_eq!(app.get_audit_event(&admin, tenant, event).await.status(), 200);
    for (who, name) in [(&member.access_token, "member"), (&viewer.access_token, "viewer"), (&member_key, "member key")]
    {
        let refused = app.get_audit_logs(who, tenant, &[]).await;
        assert_eq!(refused.status(), 403, "{name}");
        assert_eq!(refused.json::<Value>().await.unwrap()["code"], "forbidden", "{name}");
        assert_eq!(app.get_audit_event(who, tenant, event).await.status(), 403, "{name}");
    }
    assert_eq!(app.get_audit_logs(&stranger, tenant, &[]).await.status(), 404);
    assert_eq!(app.get_audit_event(&stranger, tenant, event).await.status(), 404);
    // Another tenant's event through one's own tenant: not found, as an id that does not exist.
    assert_eq!(app.get_audit_event(&ann, tenant, their_event).await.status(), 404);
    assert_eq!(app.get_audit_event(&ann, tenant, Uuid::new_v4()).await.status(), 404);

    // A role change takes effect at once: the demoted admin is refused on the next request.
    assert_eq!(app.patch_member(&ann, tenant, admin.id, "member").await.status(), 200);
    assert_eq!(app.get_audit_logs(&admin, tenant, &[]).await.status(), 403);
}

#[tokio::test]
async fn bad_parameters_are_a_400_naming_them_and_never_a_500() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;
    let theirs_owner = app.register("olga@example.com").await;
    let theirs = app.create_tenant(&theirs_owner, "theirs").await;
    seed(&app, tenant, 30, 1).await;
    seed(&app, theirs, 30, 1).await;
    let cursor_of = |page: Value| page["next_cursor"].as_str().unwrap().to_owned();
    let mine = cursor_of(app.get_audit_logs(&ann, tenant, &[("limit", "2")]).await.json().await.unwrap());
    let filtered = cursor_of(
        app.get_audit_logs(&ann, tenant, &[("limit", "2"), ("outcome", "success")]).await.json().await.unwrap(),
    );
    let foreign = cursor_of(app.get_audit_logs(&theirs_owner, theirs, &[("limit", "2")]).await.json().await.unwrap());
    let mut forged = mine.clone().into_bytes();
    forged[5] = if forged[5] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let long_q = "a".repeat(10_000);

    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("limit", "0")], "limit"),
        (vec![("limit", "10000")], "limit"),
        (vec![("limit", "x")], "limit"),
        (vec![("action", "member.explode")], "action"),
        (vec![("action", "*")], "action"),
        (vec![("action", "nope.*")], "action"),
        (vec![("actor_type", "robot")], "actor_type"),
        (vec![("actor_id", "not-a-uuid")], "actor_id"),
        (vec![("target_type", "planet")], "target_type"),
        (vec![("target_id", "abc")], "target_id"),
        (vec![("outcome", "maybe")], "outcome"),
        (vec![("since", "yesterday")], "since"),
        (vec![("since", "2026-02-01T00:00:00Z"), ("until", "2026-01-01T00:00:00Z")], "since"),
        (vec![("q", long_q.as_str())], "q"),
        (vec![("q", "%%%")], "q"),
        (vec![("q", "a_")], "q"),
        (vec![("q", "  ")], "q"),
        (vec![("cursor", "garbage")], "cursor"),
        (vec![("cursor", forged.as_str())], "cursor"),
        (vec![("cursor", foreign.as_str())], "cursor"),
        (vec![("cursor", mine.as_str()), ("outcome", "success")], "cursor"),
        (vec![("cursor", filtered.as_str())], "cursor"),
        (vec![("sort", "created_at")], "sort"),
        (vec![("limit", "1"), ("limit", "2")], "limit"),
    ];
    let rows_before = app.audit_log(tenant).await.0.len();
    for (query, name) in cases {
        let response = app.get_audit_logs(&ann, tenant, &query).await;
        assert_eq!(response.status(), 400, "{query:?}");
        assert_eq!(response.headers()["content-type"], "application/problem+json", "{query:?}");
        let body: Value = response.json().await.unwrap();
        assert!(body["detail"].as_str().unwrap().contains(name), "{query:?}: {body}");
    }
    assert_eq!(app.audit_log(tenant).await.0.len(), rows_before, "reading changed nothing");
    // LIKE's metacharacters are literal: as a pattern, `zed%p` would match every `Person0 Zed <p0@..>`.
    let page: Value = app.get_audit_logs(&ann, tenant, &[("q", "zed%p")]).await.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 0, "{page}");
}

/// The ids of a CSV export, and its records as maps from the header.
pub(crate) fn csv_records(body: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    reader.records().map(|r| header.iter().cloned().zip(r.unwrap().iter().map(str::to_owned)).collect()).collect()
}

#[tokio::test]
async fn an_export_streams_exactly_the_filtered_events_as_csv_or_ndjson_and_is_itself_audited() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;
    // More than two batches of 1,000, so the stream reads several.
    seed(&app, tenant, 2_600, 9).await;
    // A display name a spreadsheet would run as a formula.
    app.sql(&format!(
        "INSERT INTO audit_logs (tenant_id, id, actor_type, actor_display, action, target_type, metadata, outcome, \
         created_at) VALUES ('{tenant}', '{}', 'anonymous', '=HYPERLINK(\"http://evil\")', 'auth.login', 'user', \
         '{{\"note\": \"a, \\\"quoted\\\" line\\nbreak\"}}', 'failure', '2026-07-01T00:00:00Z')",
        Uuid::new_v4()
    ))
    .await;
    let rows = app.audit_log(tenant).await.0;
    let filter = Filter {
        outcomes: vec!["failure", "denied"],
        actions: vec!["member.*".into(), "auth.login".into()],
        ..Default::default()
    };
    let want = expected(&rows, &filter);
    let query = filter.query();
    let mut borrowed: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let csv = app.get_audit_export(&ann, tenant, &borrowed).await;
    assert_eq!(csv.status(), 200);
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let disposition = csv.headers()["content-disposition"].to_str().unwrap().to_owned();
    assert!(
        disposition.starts_with("attachment; filename=\"audit-log-") && disposition.ends_with(".csv\""),
        "{disposition}"
    );
    let records = csv_records(&csv.text().await.unwrap());
    let ids: Vec<Uuid> = records.iter().map(|r| r["id"].parse().unwrap()).collect();
    assert_eq!(ids, want, "the CSV holds the filtered events, newest first");
    let evil = records.iter().find(|r| r["actor_display"].contains("HYPERLINK")).unwrap();
    assert_eq!(evil["actor_display"], "'=HYPERLINK(\"http://evil\")", "a formula is defused");
    let note: Value = serde_json::from_str(&evil["metadata"]).unwrap();
    assert_eq!(note["note"], "a, \"quoted\" line\nbreak", "commas, quotes and line breaks survive");

    borrowed.push(("format", "ndjson"));
    let ndjson = app.get_audit_export(&ann, tenant, &borrowed).await;
    assert_eq!(ndjson.status(), 200);
    assert_eq!(ndjson.headers()["content-type"], "application/x-ndjson");
    let text = ndjson.text().await.unwrap();
    let events: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let ids: Vec<Uuid> = events.iter().map(|e| e["id"].as_str().unwrap().parse().unwrap()).collect();
    assert_eq!(ids, want);
    // Each line is the event as the list shows it.
    let listed: Value = app.get_audit_event(&ann, tenant, ids[0]).await.json().await.unwrap();
    assert_eq!(events[0], listed);

    // Unfiltered: every event there was when it began (the two exports above included).
    let all = expected(&app.audit_log(tenant).await.0, &Filter::default());
    let whole = app.get_audit_export(&ann, tenant, &[("format", "ndjson")]).await.text().await.unwrap();
    let ids: Vec<Uuid> = whole
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ids.len(), all.len());
    assert!(ids == all, "the whole export is the log, newest first");

    // Each export is on the log, by whom, in which format, with which filters.
    let exports: Vec<AuditRow> =
        app.audit_log(tenant).await.0.into_iter().filter(|r| r.action == "audit_log.export").collect();
    assert_eq!(exports.len(), 3);
    assert_eq!(exports[0].actor_id, Some(ann.id));
    assert_eq!(exports[0].metadata["format"], "csv");
    assert_eq!(exports[0].metadata["filters"]["outcomes"], json!(["denied", "failure"]));
    assert_eq!(exports[2].metadata["format"], "ndjson");
    assert_eq!(exports[2].target_display.as_deref(), Some("acme"));
}

#[tokio::test]
async fn a_refused_or_malformed_export_sends_nothing_and_records_nothing() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;
    let member = app.add_member(&ann, tenant, "mia@example.com", "member").await;
    let stranger = app.register("sam@example.com").await;
    let before = app.audit_log(tenant).await.0.len();
    for (query, name) in [
        (vec![("format", "xml")], "format"),
        (vec![("format", "csv"), ("format", "ndjson")], "format"),
        (vec![("limit", "5")], "limit"),
        (vec![("cursor", "x")], "cursor"),
        (vec![("since", "2026-02-01T00:00:00Z"), ("until", "2026-01-01T00:00:00Z")], "since"),
        (vec![("q", "%_%")], "q"),
    ] {
        let response = app.get_audit_export(&ann, tenant, &query).await;
        assert_eq!(response.status(), 400, "{query:?}");
        assert_eq!(response.headers()["content-type"], "application/problem+json");
        let body: Value = response.json().await.unwrap();
        assert!(body["detail"].as_str().unwrap().contains(name), "{query:?}: {body}");
    }
    assert_eq!(app.get_audit_export(&member, tenant, &[]).await.status(), 403);
    assert_eq!(app.get_audit_export(&stranger, tenant, &[]).await.status(), 404);
    assert_eq!(app.audit_log(tenant).await.0.len(), before, "no export was recorded");
}
