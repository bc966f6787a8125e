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
    let invite: Value = app
        .post_as(
            &format!("/v1/tenants/{victim}/invitations"),
            &alice.access_token,
            json!({ "email": "x@example.com", "role": "viewer" }),
        )
        .await
        .json()
        .await
        .unwrap();
    let key: Value = app
        .post_as(
            &format!("/v1/tenants/{victim}/api-keys"),
            &alice.access_token,
            json!({ "name": "k", "role": "admin" }),
        )
        .await
        .json()
        .await
        .unwrap();

    let shape = tests::testio_sim::Shape { products: 1, tests_per_product: 1, bugs_per_test: 0 };
    sim.add_account("victim-token-1", tests::testio_sim::Account::generate(1, shape));
    let connection: Value = app
        .call(
            Method::PUT,
            &format!("/v1/tenants/{victim}/testio-connection"),
            Some(&alice.access_token),
            Some(json!({ "token": "victim-token-1", "base_url": sim.base_url })),
        )
        .await
        .json()
        .await
        .unwrap();
    let run_id = connection["last_run"]["id"].as_str().unwrap().to_owned();

    let mallory = app.register("mallory@example.com").await;
    let attacker = app.create_tenant(&mallory, "attacker").await;
    let attacker_key: Value = app
        .post_as(
            &format!("/v1/tenants/{attacker}/api-keys"),
            &mallory.access_token,
            json!({ "name": "k", "role": "owner" }),
        )
        .await
        .json()
        .await
        .unwrap();
    let attacker_key = attacker_key["secret"].as_str().unwrap().to_owned();

    let samples: HashMap<&str, String> = HashMap::from([
        ("tenant_id", victim.to_string()),
        ("user_id", member.id.to_string()),
        ("invitation_id", invite["invitation"]["id"].as_str().unwrap().to_owned()),
        ("api_key_id", key["api_key"]["id"].as_str().unwrap().to_owned()),
        ("sync_run_id", run_id),
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
    let tenant: Value = app.get_as(&format!("/v1/tenants/{victim}"), &alice.access_token).await.json().await.unwrap();
    assert_eq!(tenant["name"], "victim");
    let members: Value =
        app.get_as(&format!("/v1/tenants/{victim}/members"), &alice.access_token).await.json().await.unwrap();
    assert_eq!(members.as_array().unwrap().len(), 2);
    let invitations: Value =
        app.get_as(&format!("/v1/tenants/{victim}/invitations"), &alice.access_token).await.json().await.unwrap();
    assert_eq!(invitations.as_array().unwrap().len(), 1);
    let keys: Value =
        app.get_as(&format!("/v1/tenants/{victim}/api-keys"), &alice.access_token).await.json().await.unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 1);
    let audit = app.audit_actions(victim).await;
    assert!(audit.iter().all(|(action, _)| !action.starts_with("tenant.update") && action != "tenant.delete"));
    let connection_now: Value =
        app.get_as(&format!("/v1/tenants/{victim}/testio-connection"), &alice.access_token).await.json().await.unwrap();
    assert_eq!(connection_now["token_last4"], "en-1");
    assert_eq!(connection_now["updated_at"], connection["updated_at"]);
    let runs: Value =
        app.get_as(&format!("/v1/tenants/{victim}/sync-runs"), &alice.access_token).await.json().await.unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1, "no run was requested by the attacker");
}

#[tokio::test]
async fn the_platform_tenant_is_not_reachable_through_the_api() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let r = app.get_as(&format!("/v1/tenants/{}", uuid::Uuid::nil()), &ann.access_token).await;
    assert_eq!(r.status(), 404);
}
