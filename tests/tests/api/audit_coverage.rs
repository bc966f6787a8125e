//! Every mutating operation of the API leaves exactly one audit event (issue 13): a scenario calls each POST, PUT,
//! PATCH and DELETE of the OpenAPI spec once, successfully, and counts the events the call added across every
//! tenant's log; the spec's list of mutating operations must be exactly the scenario's, so a new route fails here
//! until it is audited and added. Security events too: a failed sign-in, a refused API key (wrong secret, revoked,
//! lacking the role, its creator gone).

use std::collections::BTreeSet;

use serde_json::{Value, json};
use tests::app::TestApp;
use tests::spawn_app_with;

/// Every audit event there is, as the superuser counts them.
async fn events(app: &TestApp) -> i64 {
    use sea_orm::ConnectionTrait;
    app.db
        .superuser()
        .await
        .query_one_raw(sea_orm::Statement::from_string(sea_orm::DbBackend::Postgres, "SELECT count(*) FROM audit_logs"))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap()
}

/// The newest event: (tenant, action, outcome, actor type).
async fn newest(app: &TestApp) -> (uuid::Uuid, String, String, String) {
    use sea_orm::ConnectionTrait;
    let row = app
        .db
        .superuser()
        .await
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT tenant_id, action, outcome, actor_type FROM audit_logs ORDER BY created_at DESC, id DESC LIMIT 1",
        ))
        .await
        .unwrap()
        .unwrap();
    (
        row.try_get_by_index(0).unwrap(),
        row.try_get_by_index(1).unwrap(),
        row.try_get_by_index(2).unwrap(),
        row.try_get_by_index(3).unwrap(),
    )
}

struct Walk<'a> {
    app: &'a TestApp,
    done: BTreeSet<String>,
}

impl Walk<'_> {
    /// Runs `call` (operation `id`), which must answer `status`, and checks it added exactly one event: `action`.
    async fn step(
        &mut self,
        id: &str,
        status: u16,
        action: &str,
        call: impl std::future::Future<Output = reqwest::Response>,
    ) -> Value {
        let before = events(self.app).await;
        let response = call.await;
        assert_eq!(response.status(), status, "{id}");
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        assert_eq!(events(self.app).await - before, 1, "{id} must leave exactly one audit event");
        assert_eq!(newest(self.app).await.1, action, "{id}");
        self.done.insert(id.to_owned());
        body
    }
}

#[tokio::test]
async fn every_mutating_operation_leaves_exactly_one_audit_event() {
    let sim = tests::testio_sim::Simulator::start().await;
    let stripe = tests::stripe_sim::StripeSim::start().await;
    let app = spawn_app_with(|s| {
        s.testio_allowed_base_urls = sim.base_url.clone();
        tests::billing::use_stripe(s, &stripe);
    })
    .await;
    stripe.set_webhook(&format!("{}/v1/webhooks/stripe", app.address), tests::stripe_sim::WEBHOOK_SECRET);
    let shape = tests::testio_sim::Shape { products: 1, tests_per_product: 1, bugs_per_test: 0 };
    sim.add_account("acme-token-1", tests::testio_sim::Account::generate(1, shape));
    let mut walk = Walk { app: &app, done: BTreeSet::new() };

    let body = json!({ "email": "ann@example.com", "name": "Ann", "password": "correct horse battery" });
    let registered = walk.step("register", 201, "user.register", app.post_register(body)).await;
    let ann_token = registered["tokens"]["access_token"].as_str().unwrap().to_owned();
    walk.step(
        "resend_verification",
        202,
        "user.verification_email_send",
        app.post_verification_email(ann_token.as_str()),
    )
    .await;
    let link = app.outbox.verification_token("ann@example.com").unwrap();
    walk.step("verify_email", 200, "user.email_verify", app.post_verify_email(&link)).await;
    let login = json!({ "email": "ann@example.com", "password": "correct horse battery" });
    let signed_in = walk.step("login", 200, "auth.login", app.post_login(login.clone())).await;
    let refresh = signed_in["tokens"]["refresh_token"].as_str().unwrap().to_owned();
    let refreshed = walk.step("refresh", 200, "auth.refresh", app.post_refresh(&refresh)).await;
    let ann = refreshed["access_token"].as_str().unwrap().to_owned();
    walk.step(
        "change_password",
        200,
        "user.password_change",
        app.post_password(ann.as_str(), "correct horse battery", "another fine password"),
    )
    .await;
    let ann = app.login("ann@example.com", "another fine password").await["tokens"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let created = walk
        .step(
            "create_tenant",
            201,
            "tenant.create",
            app.post_tenants(ann.as_str(), json!({ "name": "Acme", "slug": "acme" })),
        )
        .await;
    let tenant: uuid::Uuid = created["id"].as_str().unwrap().parse().unwrap();
    walk.step(
        "update_tenant",
        200,
        "tenant.update",
        app.patch_tenant(ann.as_str(), tenant, json!({ "name": "Acme 2" })),
    )
    .await;
    let key =
        walk.step("create_api_key", 201, "api_key.create", app.post_api_key(ann.as_str(), tenant, "ci", "admin")).await;
    let key_id = key["api_key"]["id"].as_str().unwrap().to_owned();
    let secret = key["secret"].as_str().unwrap().to_owned();
    walk.step("revoke_api_key", 204, "api_key.revoke", app.delete_api_key(ann.as_str(), tenant, &key_id)).await;
    let invited = walk
        .step(
            "create_invitation",
            201,
            "invitation.create",
            app.post_invitation(ann.as_str(), tenant, "x@example.com", "viewer"),
        )
        .await;
    let invitation = invited["invitation"]["id"].as_str().unwrap().to_owned();
    walk.step("revoke_invitation", 204, "invitation.revoke", app.delete_invitation(ann.as_str(), tenant, &invitation))
        .await;
    let bob = app.register("bob@example.com").await;
    let invitation = app.invite(ann.as_str(), tenant, "bob@example.com", "member").await;
    walk.step(
        "accept_invitation",
        200,
        "invitation.accept",
        app.post_accept_invitation(&bob, invitation["token"].as_str().unwrap()),
    )
    .await;
    walk.step("update_member", 200, "member.role_change", app.patch_member(ann.as_str(), tenant, bob.id, "viewer"))
        .await;
    walk.step("remove_member", 204, "member.remove", app.delete_member(ann.as_str(), tenant, bob.id)).await;
    let connection = json!({ "token": "acme-token-1", "base_url": sim.base_url });
    walk.step("save_connection", 200, "testio_connection.create", app.put_connection(ann.as_str(), tenant, connection))
        .await;
    walk.step(
        "request_sync_run",
        202,
        "sync_run.request",
        app.post_sync_run(ann.as_str(), tenant, json!({ "full": true })),
    )
    .await;
    walk.step("delete_connection", 204, "testio_connection.delete", app.delete_connection(ann.as_str(), tenant)).await;
    let (checkout_path, portal_path) = (
        format!("/v1/tenants/{tenant}/billing/checkout-session"),
        format!("/v1/tenants/{tenant}/billing/portal-session"),
    );
    let checkout = app.call(reqwest::Method::POST, &checkout_path, Some(ann.as_str()), Some(json!({ "plan": "pro" })));
    let session = walk.step("create_checkout_session", 201, "billing.checkout_start", checkout).await;
    let portal = app.call(reqwest::Method::POST, &portal_path, Some(ann.as_str()), None);
    walk.step("create_portal_session", 201, "billing.portal_open", portal).await;
    // Stripe's webhook only stores the event; the worker's application of it is the audited change, once.
    let session = stripe.session_of_url(session["url"].as_str().unwrap()).unwrap();
    stripe.complete_checkout(&session).unwrap();
    let before = events(&app).await;
    assert!(stripe.deliver().await.iter().all(|(_, status)| *status == 200));
    assert_eq!(events(&app).await, before, "receiving changes nothing yet");
    let mut settings = tests::sync::worker_settings(&app.db);
    settings.plans.stripe_price_pro = Some(tests::stripe_sim::PRICE_PRO.to_owned());
    settings.stripe.stripe_secret_key = Some(tests::stripe_sim::SECRET_KEY.into());
    settings.stripe.stripe_api_base = stripe.base_url.clone();
    let worker = tests::sync::build_worker(&settings).await;
    assert_eq!(worker.apply_billing_events().await.unwrap(), 3);
    assert_eq!(events(&app).await - before, 1, "the subscription's arrival is one event");
    let (_, action, _, actor) = newest(&app).await;
    assert_eq!((action.as_str(), actor.as_str()), ("billing.subscription_update", "system"));
    walk.done.insert("stripe_webhook".to_owned());

    // Security events: one each.
    let wrong = json!({ "email": "ann@example.com", "password": "not the password" });
    let before = events(&app).await;
    assert_eq!(app.post_login(wrong).await.status(), 401);
    assert_eq!(events(&app).await - before, 1);
    assert_eq!(newest(&app).await.1, "auth.login");
    assert_eq!(newest(&app).await.2, "failure");
    // A revoked key, a key with a wrong secret, a key whose role does not allow the action, a key whose creator left.
    let before = events(&app).await;
    assert_eq!(app.get_members(secret.as_str(), tenant).await.status(), 401);
    assert_eq!(events(&app).await - before, 1, "a revoked key's use is recorded");
    let (in_tenant, action, outcome, actor) = newest(&app).await;
    assert_eq!(
        (in_tenant, action.as_str(), outcome.as_str(), actor.as_str()),
        (tenant, "api_key.use_denied", "denied", "api_key")
    );
    let viewer_key =
        app.create_api_key(ann.as_str(), tenant, "viewer", "viewer").await["secret"].as_str().unwrap().to_owned();
    let mut forged = viewer_key.clone();
    forged.replace_range(forged.len() - 4.., "AAAA");
    for (credential, status, what) in
        [(forged.as_str(), 401, "a wrong secret"), (viewer_key.as_str(), 403, "a role too low")]
    {
        let before = events(&app).await;
        assert_eq!(app.post_api_key(credential, tenant, "more", "viewer").await.status(), status, "{what}");
        assert_eq!(events(&app).await - before, 1, "{what} is recorded");
        assert_eq!(newest(&app).await.1, "api_key.use_denied", "{what}");
    }

    walk.step("logout", 204, "auth.logout", app.post_logout(bob.access_token.as_str())).await;
    walk.step("delete_tenant", 204, "tenant.delete", app.delete_tenant(ann.as_str(), tenant)).await;

    // The scenario covered exactly the spec's mutating operations.
    let spec: Value = serde_json::from_str(&api::openapi::spec_json().unwrap()).unwrap();
    let mutating: BTreeSet<String> = spec["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().iter())
        .filter(|(method, _)| matches!(method.as_str(), "post" | "put" | "patch" | "delete"))
        .map(|(_, op)| op["operationId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(walk.done, mutating, "audit every new mutating operation, and add it to this walk");
}

#[tokio::test]
async fn concurrent_sign_ins_of_one_account_all_succeed_and_are_each_recorded() {
    let app = tests::spawn_app_with(|s| {
        s.login_max_failures_per_account_and_ip = 1_000;
        s.login_max_failures_per_account = 1_000;
        s.login_max_failures_per_ip = 1_000;
    })
    .await;
    app.register("ann@example.com").await;
    let before = events(&app).await;
    let body = json!({ "email": "ann@example.com", "password": "correct horse battery" });
    // 16 clients signing in over and over: every admission and settling of the same keys overlaps.
    let clients = (0..16).map(|_| {
        let (app, body) = (&app, body.clone());
        async move {
            let mut statuses = Vec::new();
            for _ in 0..30 {
                statuses.push(app.post_login(body.clone()).await.status().as_u16());
            }
            statuses
        }
    });
    let statuses: Vec<u16> = futures_util::future::join_all(clients).await.into_iter().flatten().collect();
    assert!(statuses.iter().all(|s| *s == 200 || *s == 503), "{statuses:?}");
    let ok = statuses.iter().filter(|s| **s == 200).count() as i64;
    assert!(ok > 0);
    assert_eq!(events(&app).await - before, ok, "one auth.login per sign-in");
}
