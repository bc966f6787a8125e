//! Tenant isolation through the API: every tenant-scoped operation in the OpenAPI spec, called with another tenant's
//! credentials, answers 404 and changes nothing. The list of operations comes from the spec itself, so a new route is
//! covered (or fails this test for want of a sample path parameter) the day it is added.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::{Value, json};
use tests::{spawn_app, spawn_app_with};

#[tokio::test]
async fn every_tenant_scoped_route_answers_404_to_another_tenants_credentials() {
    let sim = tests::testio_sim::Simulator::start().await;
    let app = spawn_app_with(|s| s.testio_allowed_base_urls = sim.base_url.clone()).await;
    let alice = app.register("alice@example.com").await;
    let victim = app.create_tenant(&alice, "victim").await;
    let member = app.add_member(&alice, victim, "member@example.com", "member").await;
    let invite = app.invite(&alice, victim, "x@example.com", "viewer").await;
    let key = app.create_api_key(&alice, victim, "k", "admin").await;

    let shape = tests::testio_sim::Shape { products: 1, tests_per_product: 1, bugs_per_test: 0 };
    sim.add_account("victim-token-1", tests::testio_sim::Account::generate(1, shape));
    let connected =
        app.put_connection(&alice, victim, json!({ "token": "victim-token-1", "base_url": sim.base_url })).await;
    assert_eq!(connected.status(), 200);
    let connection: Value = connected.json().await.unwrap();
    let run_id = connection["last_run"]["id"].as_str().unwrap().to_owned();

    let mallory = app.register("mallory@example.com").await;
    let attacker = app.create_tenant(&mallory, "attacker").await;
    let attacker_key = app.create_api_key(&mallory, attacker, "k", "owner").await;
    let attacker_key = attacker_key["secret"].as_str().unwrap().to_owned();
    let audit_before = app.audit_log(victim).await;

    let samples: HashMap<&str, String> = HashMap::from([
        ("tenant_id", victim.to_string()),
        ("user_id", member.id.to_string()),
        ("invitation_id", invite["invitation"]["id"].as_str().unwrap().to_owned()),
        ("api_key_id", key["api_key"]["id"].as_str().unwrap().to_owned()),
        ("sync_run_id", run_id),
        // The query API (issue 12): the TestIO ids of the victim's account (mirrored or not, the answer is 404).
        ("product_id", "10000001".to_owned()),
        ("test_id", "11000000".to_owned()),
        ("bug_id", "15000000".to_owned()),
        // The audit review (issue 13): an event of the victim's log.
        ("audit_log_id", audit_before.0[0].id.to_string()),
    ]);
    // A valid body for each operation (its schema's examples, with the attacker's choices where they matter): the
    // refusal must come from the tenant check, not from the body.
    let attacker = json!({ "name": "pwned", "slug": "pwned", "email": "mallory@example.com", "role": "owner",
                           "token": "mallorys-token", "base_url": sim.base_url, "full": true });

    let spec: Value = serde_json::from_str(&api::openapi::spec_json().unwrap()).unwrap();
    let mut checked = 0;
    for (template, item) in spec["paths"].as_object().unwrap() {
        if !template.contains("{tenant_id}") {
            continue;
        }
        let mut path = template.clone();
        for segment in template.split('/').filter(|s| s.starts_with('{')) {
            let name = segment.trim_matches(|c| c == '{' || c == '}');
            let value = samples.get(name).unwrap_or_else(|| panic!("add a sample value for {{{name}}} ({template})"));
            path = path.replace(segment, value);
        }
        for method in item.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            for credential in [&mallory.access_token, &attacker_key] {
                let with_body = tests::spec::example_body(&spec, &item[method.as_str().to_lowercase()], &attacker);
                let response = app.call(method.clone(), &path, Some(credential), with_body).await;
                assert_eq!(response.status(), 404, "{method} {template} did not answer 404");
                assert_eq!(response.json::<Value>().await.unwrap()["code"], "not_found");
            }
            checked += 1;
        }
    }
    assert!(checked >= 12, "only {checked} tenant-scoped operations found");

    // Nothing changed in the victim tenant.
    let tenant: Value = app.get_tenant(&alice, victim).await.json().await.unwrap();
    assert_eq!(tenant["name"], "victim");
    let members: Value = app.get_members(&alice, victim).await.json().await.unwrap();
    assert_eq!(members.as_array().unwrap().len(), 2);
    let invitations: Value = app.get_invitations(&alice, victim).await.json().await.unwrap();
    assert_eq!(invitations.as_array().unwrap().len(), 1);
    let keys: Value = app.get_api_keys(&alice, victim).await.json().await.unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 1);
    let audit = app.audit_log(victim).await;
    assert_eq!(audit.0, audit_before.0, "the attacks left a trace in the victim's audit log");
    let connection_now: Value = app.get_connection(&alice, victim).await.json().await.unwrap();
    assert_eq!(connection_now["token_last4"], "en-1");
    assert_eq!(connection_now["updated_at"], connection["updated_at"]);
    let runs: Value = app.get_sync_runs(&alice, victim, &[]).await.json().await.unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1, "no run was requested by the attacker");
}

#[tokio::test]
async fn the_platform_tenant_is_not_reachable_through_the_api() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let r = app.get_tenant(&ann, uuid::Uuid::nil()).await;
    assert_eq!(r.status(), 404);
}
