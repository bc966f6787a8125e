//! Billing with Stripe (issue 14), against the Stripe simulator on a real socket: upgrade through Checkout, payment
//! failure and the grace period, cancellation at the period's end, concurrent checkouts, replayed, duplicated and
//! reordered webhooks, a crash between receipt and application, Stripe down while applying, reconciliation, every
//! limit, and bad input to the webhook and to checkout.

use chrono::Utc;
use serde_json::{Value, json};
use tests::billing::BillingFixture;
use tests::stripe_sim::{Faults, PRICE_ENTERPRISE, PRICE_PRO, WEBHOOK_SECRET};
use uuid::Uuid;

async fn events_stored(f: &BillingFixture) -> i64 {
    f.app.db.count("SELECT count(*) FROM stripe_events").await
}

/// The `billing.subscription_update` rows of `tenant`: (source, event id, plan after, status after).
async fn updates(f: &BillingFixture, tenant: Uuid) -> Vec<(String, Option<String>, String, String)> {
    f.app
        .audit_log(tenant)
        .await
        .of("billing.subscription_update")
        .into_iter()
        .map(|row| {
            assert_eq!(row.actor_type, "system");
            let m = &row.metadata;
            (
                m["source"].as_str().unwrap().to_owned(),
                m["event_id"].as_str().map(str::to_owned),
                m["after"]["plan"].as_str().unwrap().to_owned(),
                m["after"]["status"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn plans_are_listed_with_their_limits_and_whether_they_are_for_sale() {
    let f = BillingFixture::start().await;
    let response = f.app.call(reqwest::Method::GET, "/v1/plans", None, None).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let plans = body["plans"].as_array().unwrap();
    let names: Vec<&str> = plans.iter().map(|p| p["plan"].as_str().unwrap()).collect();
    assert_eq!(names, ["free", "pro", "enterprise"]);
    assert_eq!(plans[0]["purchasable"], false);
    assert_eq!(plans[1]["purchasable"], true);
    assert_eq!(plans[0]["limits"]["seats"], 2);
    assert_eq!(plans[2]["limits"]["seats"], Value::Null, "no limit");
    assert_eq!(body["past_due_grace_days"], 7);
}

#[tokio::test]
async fn an_owner_upgrades_through_checkout_and_the_plan_changes_when_stripe_reports_it() {
    let f = BillingFixture::start().await;
    let owner = f.app.register("owner@example.com").await;
    let tenant = f.app.create_tenant(&owner, "acme").await;
    let before = f.billing(&owner, tenant).await;
    assert_eq!((&before["plan"], &before["subscription_status"]), (&json!("free"), &Value::Null));
    assert_eq!(before["seats"], json!({ "used": 1, "allowed": 2 }));

    let response = f.checkout(&owner.access_token, tenant, "pro").await;
    assert_eq!(response.status(), 201);
    let url = response.json::<Value>().await.unwrap()["url"].as_str().unwrap().to_owned();
    let session = f.stripe.session_of_url(&url).expect("a Checkout URL of the simulator");
    let customers = f.stripe.customers();
    assert_eq!(customers.len(), 1);
    assert_eq!(customers[0].metadata["tenant_id"], tenant.to_string(), "the customer carries the tenant id");
    assert_eq!(customers[0].email, "owner@example.com");
    assert_eq!(f.stripe.session(&session).unwrap().price, PRICE_PRO);
    // Nothing changes until Stripe says the subscription exists.
    assert_eq!(f.billing(&owner, tenant).await["plan"], "free");

    let subscription = f.stripe.complete_checkout(&session).unwrap();
    let delivered = f.stripe.deliver().await;
    assert_eq!(delivered.len(), 3, "checkout.session.completed, customer.subscription.created, invoice.paid");
    assert!(delivered.iter().all(|(_, status)| *status == 200));
    assert_eq!(f.billing(&owner, tenant).await["plan"], "free", "stored, not applied yet");
    assert_eq!(f.worker.apply_billing_events().await.unwrap(), 3);
    let after = f.billing(&owner, tenant).await;
    assert_eq!((&after["plan"], &after["plan_in_force"]), (&json!("pro"), &json!("pro")));
    assert_eq!(after["subscription_status"], "active");
    assert_eq!(after["cancel_at_period_end"], false);
    assert!(after["current_period_end"].as_str().unwrap() > Utc::now().to_rfc3339().as_str());
    assert_eq!(after["seats"]["allowed"], 5);
    assert_eq!(after["has_billing_account"], true);

    // One change, audited once (the other two events found it already applied), naming the event.
    let changes = updates(&f, tenant).await;
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!((changes[0].0.as_str(), changes[0].2.as_str(), changes[0].3.as_str()), ("webhook", "pro", "active"));
    assert!(changes[0].1.as_deref().unwrap().starts_with("evt_"));
    let log = f.app.audit_log(tenant).await;
    let started = log.of("billing.checkout_start");
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].metadata["plan"], "pro");
    assert_eq!(
        f.app.db.count(&format!("SELECT count(*) FROM tenants WHERE stripe_subscription_id = '{subscription}'")).await,
        1
    );

    // The portal opens for the customer; checking out the same plan again is a conflict, another plan too (the
    // portal changes plans).
    let portal = f.portal(&owner.access_token, tenant).await;
    assert_eq!(portal.status(), 201);
    assert!(portal.json::<Value>().await.unwrap()["url"].as_str().unwrap().contains("/portal/"));
    assert_eq!(f.checkout(&owner.access_token, tenant, "pro").await.status(), 409);
    assert_eq!(f.checkout(&owner.access_token, tenant, "enterprise").await.status(), 409);
    // A plan change in the portal arrives as an update.
    f.stripe.change_price(&subscription, PRICE_ENTERPRISE);
    f.settle().await;
    assert_eq!(f.billing(&owner, tenant).await["plan"], "enterprise");
}

#[tokio::test]
async fn a_failed_payment_keeps_the_plan_for_the_grace_period_then_the_free_limits_apply_and_nothing_is_deleted() {
    let f = BillingFixture::start().await;
    let owner = f.app.register("owner@example.com").await;
    let tenant = f.app.create_tenant(&owner, "acme").await;
    let subscription = f.subscribe(&owner, tenant, "pro").await;
    // Pro allows 3 keys; free 1.
    for k in 0..3 {
        f.app.create_api_key(&owner, tenant, &format!("key {k}"), "viewer").await;
    }

    f.stripe.set_status(&subscription, "past_due");
    f.settle().await;
    let due = f.billing(&owner, tenant).await;
    assert_eq!(
        (&due["plan"], &due["plan_in_force"], &due["subscription_status"]),
        (&json!("pro"), &json!("pro"), &json!("past_due"))
    );
    assert!(due["grace_period_ends_at"].is_string(), "{due}");
    assert_eq!(
        f.app.audit_log(tenant).await.of("billing.subscription_update").last().unwrap().metadata["after"]["status"],
        "past_due"
    );

    // The grace period runs out (seven days pass).
    f.app
        .sql(&format!(
            "UPDATE tenants SET subscription_past_due_since = now() - interval '7 days 1 minute' WHERE id = '{tenant}'"
        ))
        .await;
    let lapsed = f.billing(&owner, tenant).await;
    assert_eq!((&lapsed["plan"], &lapsed["plan_in_force"]), (&json!("pro"), &json!("free")));
    assert_eq!(lapsed["api_keys"], json!({ "used": 3, "allowed": 1 }), "the keys are kept");
    let refused = f.app.post_api_key(&owner, tenant, "one more", "viewer").await;
    assert_eq!(refused.status(), 402);
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(
        (&problem["code"], &problem["limit"], &problem["plan"]),
        (&json!("plan_limit"), &json!("api_keys"), &json!("free"))
    );
    assert_eq!(problem["upgrade_to"], "enterprise", "a fourth key: pro allows 3");
    assert_eq!(
        f.app
            .db
            .count(&format!("SELECT count(*) FROM api_keys WHERE tenant_id = '{tenant}' AND revoked_at IS NULL"))
            .await,
        3
    );

    // Paid at last: the plan is back, and so is the room.
    f.stripe.set_status(&subscription, "active");
    f.settle().await;
    let paid = f.billing(&owner, tenant).await;
    assert_eq!((&paid["plan_in_force"], &paid["grace_period_ends_at"]), (&json!("pro"), &Value::Null));
    let refused_again = f.app.post_api_key(&owner, tenant, "one more", "viewer").await;
    assert_eq!(refused_again.status(), 402, "pro allows 3");
    assert_eq!(refused_again.json::<Value>().await.unwrap()["upgrade_to"], "enterprise");
    // A fourth key on the lapsed plan would have needed enterprise too: pro allows 3.
}

#[tokio::test]
async fn a_cancellation_takes_effect_at_the_end_of_the_period() {
    let f = BillingFixture::start().await;
    let owner = f.app.register("owner@example.com").await;
    let tenant = f.app.create_tenant(&owner, "acme").await;
    let subscription = f.subscribe(&owner, tenant, "pro").await;
    f.app.invite(&owner, tenant, "a@example.com", "member").await;
    f.app.invite(&owner, tenant, "b@example.com", "member").await;

    f.stripe.cancel_at_period_end(&subscription);
    f.settle().await;
    let ending = f.billing(&owner, tenant).await;
    assert_eq!((&ending["plan"], &ending["cancel_at_period_end"]), (&json!("pro"), &json!(true)));

    f.stripe.end_period(&subscription);
    f.settle().await;
    let ended = f.billing(&owner, tenant).await;
    assert_eq!((&ended["plan"], &ended["subscription_status"]), (&json!("free"), &json!("canceled")));
    assert_eq!(ended["seats"], json!({ "used": 3, "allowed": 2 }), "the invitations stay");
    let refused = f.app.post_invitation(&owner, tenant, "c@example.com", "member").await;
    assert_eq!(refused.status(), 402);
    assert_eq!(refused.json::<Value>().await.unwrap()["limit"], "seats");
    // A new subscription can be bought again.
    assert_eq!(f.checkout(&owner.access_token, tenant, "pro").await.status(), 201);
}

#[tokio::test]
async fn concurrent_checkouts_create_one_customer() {
    let f = BillingFixture::start().await;
    let owner = f.app.register("owner@example.com").await;
    let tenant = f.app.create_tenant(&owner, "acme").await;
    let attempts = (0..8).map(|_| f.checkout(&owner.access_token, tenant, "pro"));
    let responses = futures_util::future::join_all(attempts).await;
    for response in responses {
        assert_eq!(response.status(), 201);
    }
    assert_eq!(f.stripe.customer_creations(), 1, "one customer at Stripe");
    let customer = f.stripe.customers()[0].id.clone();
    assert_eq!(
        f.app
            .db
            .count(&format!("SELECT count(*) FROM tenants WHERE id = '{tenant}' AND stripe_customer_id = '{customer}'"))
            .await,
        1
    );
    assert_eq!(f.app.audit_log(tenant).await.of("billing.checkout_start").len(), 8);
}

#[tokio::test]
async fn replayed_duplicated_and_reordered_events_never_let_older_state_win() {
    let f = BillingFixture::start().await;
    let owner = f.app.register("owner@example.com").await;
    let tenant = f.app.create_tenant(&owner, "acme").await;
    let session = f.open_checkout(&owner, tenant, "pro").await;
    let subscription = f.stripe.complete_checkout(&session).unwrap();
    f.stripe.set_status(&subscription, "past_due");
    f.stripe.set_status(&subscription, "active");
    f.stripe.cancel_at_period_end(&subscription);
    f.stripe.end_period(&subscription);
    let mut events = f.stripe.take_pending();
    assert!(events.len() >= 8);
    // Newest first, and each twice.
    events.reverse();
    for event in &events {
        for _ in 0..2 {
            assert_eq!(f.stripe.send(event, 1).await, 200);
        }
    }
    assert_eq!(events_stored(&f).await, events.len() as i64, "each event stored once");
    let body: Value = {
        // A replay answers 200 and says so.
        let header =
            tests::stripe_sim::billing_signature(WEBHOOK_SECRET, Utc::now().timestamp(), events[0].body.as_bytes());
        let replay = reqwest::Client::new()
            .post(format!("{}/v1/webhooks/stripe", f.app.address))
            .header("stripe-signature", header)
            .body(events[0].body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(replay.status(), 200);
        replay.json().await.unwrap()
    };
    assert_eq!(body["outcome"], "duplicate");
    f.worker.apply_billing_events().await.unwrap();
    let state = f.billing(&owner, tenant).await;
    assert_eq!(
        (&state["plan"], &state["subscription_status"]),
        (&json!("free"), &json!("canceled")),
        "Stripe's final word"
    );
    // The oldest event, replayed after everything, changes nothing.
    let created = events.iter().rev().find(|e| e.event_type == "customer.subscription.created").unwrap();
    assert_eq!(f.stripe.send(created, 1).await, 200);
    f.worker.apply_billing_events().await.unwrap();
    assert_eq!(f.billing(&owner, tenant).await["plan"], "free");
    let changes = updates(&f, tenant).await;
    assert_eq!(changes.len(), 1, "straight to the final state, once: {changes:?}");
    assert_eq!(f.app.db.count("SELECT count(*) FROM stripe_events WHERE status <> 'applied'").await, 0);
}

#[tokio::test]
async fn an_event_received_but_not_applied_survives_a_crash_and_stripe_being_down() {
    let f = BillingFixture::start().await;
    let owner = f.app.register("owner@example.com").await;
    let tenant = f.app.create_tenant(&owner, "acme").await;
    let session = f.open_checkout(&owner, tenant, "pro").await;
    f.stripe.complete_checkout(&session).unwrap();
    for (_, status) in f.stripe.deliver().await {
        assert_eq!(status, 200);
    }
    assert_eq!(events_stored(&f).await, 3);
    // A worker claims an event and is stuck on it: the others skip it. Then it dies; its lock goes with it.
    let runtime = f.app.db.connect_runtime().await;
    let stuck = entity::TenantTxn::begin(&runtime, entity::TenantId(tenant)).await.unwrap();
    let claimed = entity::billing::claim_event(&stuck).await.unwrap().expect("an event is due");

    // Stripe is down for the next worker: nothing applied, nothing lost, retried later.
    f.stripe.set_faults(Faults { unavailable: 100, ..Default::default() });
    let fresh = worker::Worker::build(&f.worker_settings(), tokio_util::sync::CancellationToken::new()).await.unwrap();
    assert_eq!(fresh.apply_billing_events().await.unwrap(), 0);
    assert_eq!(f.billing(&owner, tenant).await["plan"], "free");
    let failed = "SELECT count(*) FROM stripe_events WHERE status = 'pending' AND last_error IS NOT NULL \
                  AND next_attempt_at > now()";
    assert_eq!(f.app.db.count(failed).await, 1, "the first it tried failed and waits; it stopped there");
    assert_eq!(
        f.app.db.count(&format!("SELECT attempts::bigint FROM stripe_events WHERE id = '{}'", claimed.id)).await,
        0,
        "the stuck worker's event was skipped"
    );
    drop(stuck);
    // Stripe is back and the backoff has passed: the real worker loop applies them.
    f.stripe.set_faults(Faults::default());
    f.app.sql("UPDATE stripe_events SET next_attempt_at = now()").await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let running = worker::Worker::build(&f.worker_settings(), shutdown.clone()).await.unwrap();
    let task = tokio::spawn(running.run());
    f.app.db.wait_until_count("SELECT count(*) FROM stripe_events WHERE status = 'applied'", 3).await;
    shutdown.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(f.billing(&owner, tenant).await["plan"], "pro");
    assert_eq!(updates(&f, tenant).await.len(), 1);
}

#[tokio::test]
async fn the_reconciliation_fixes_drift_stripe_never_announced() {
    let f = BillingFixture::start().await;
    let owner = f.app.register("owner@example.com").await;
    let tenant = f.app.create_tenant(&owner, "acme").await;
    let subscription = f.subscribe(&owner, tenant, "pro").await;
    let quiet = f.app.register("quiet@example.com").await;
    let untouched = f.app.create_tenant(&quiet, "quiet").await;
    let other = f.subscribe(&quiet, untouched, "enterprise").await;

    // The upgrade's webhook was lost.
    f.stripe.drift(&subscription, |s| s.price = PRICE_ENTERPRISE.to_owned());
    let done = f.worker.reconcile_billing().await.unwrap();
    assert_eq!((done.tenants, done.changed, done.failed), (2, 1, 0));
    assert_eq!(f.billing(&owner, tenant).await["plan"], "enterprise");
    let last = updates(&f, tenant).await.pop().unwrap();
    assert_eq!((last.0.as_str(), last.1, last.2.as_str()), ("reconcile", None, "enterprise"));
    assert_eq!(updates(&f, untouched).await.len(), 1, "nothing drifted there: no new audit row");
    // A subscription Stripe no longer knows counts as canceled.
    f.stripe.drift(&other, |s| s.status = "canceled".to_owned());
    let done = f.worker.reconcile_billing().await.unwrap();
    assert_eq!(done.changed, 1);
    assert_eq!(f.billing(&quiet, untouched).await["plan"], "free");
    // Stripe down: reported, nothing changed.
    f.stripe.set_faults(Faults { unavailable: 100, ..Default::default() });
    let done = f.worker.reconcile_billing().await.unwrap();
    assert_eq!((done.changed, done.failed), (0, 2));
    assert_eq!(f.billing(&owner, tenant).await["plan"], "enterprise");
}

#[tokio::test]
async fn limits_refuse_with_402_naming_the_limit_and_the_plan_that_lifts_it_even_under_concurrency() {
    let f = BillingFixture::start().await;
    let owner = f.app.register("owner@example.com").await;
    let tenant = f.app.create_tenant(&owner, "acme").await;
    // Free: 2 seats (the owner is one), 1 key.
    f.app.invite(&owner, tenant, "a@example.com", "member").await;
    let refused = f.app.post_invitation(&owner, tenant, "b@example.com", "member").await;
    assert_eq!(refused.status(), 402);
    assert_eq!(refused.headers()["content-type"], "application/problem+json");
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(
        (&problem["limit"], &problem["allowed"], &problem["upgrade_to"]),
        (&json!("seats"), &json!(2), &json!("pro"))
    );
    assert!(problem["detail"].as_str().unwrap().contains("pro"), "{problem}");

    // Ten keys at once on a plan allowing one: exactly one is made.
    let names: Vec<String> = (0..10).map(|k| format!("k{k}")).collect();
    let attempts = names.iter().map(|name| f.app.post_api_key(&owner, tenant, name, "viewer"));
    let statuses: Vec<u16> =
        futures_util::future::join_all(attempts).await.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 402).count(), 9, "{statuses:?}");
    assert_eq!(f.app.db.count(&format!("SELECT count(*) FROM api_keys WHERE tenant_id = '{tenant}'")).await, 1);
    // A revoked key frees its place.
    let key = f.app.db.count(&format!("SELECT count(*) FROM api_keys WHERE tenant_id = '{tenant}'")).await;
    assert_eq!(key, 1);
    f.app.sql(&format!("UPDATE api_keys SET revoked_at = now() WHERE tenant_id = '{tenant}'")).await;
    assert_eq!(f.app.post_api_key(&owner, tenant, "again", "viewer").await.status(), 201);
    // Nothing refused was audited as made.
    assert_eq!(f.app.audit_log(tenant).await.of("api_key.create").len(), 2);
}

#[tokio::test]
async fn checkout_and_portal_refuse_what_they_cannot_do() {
    let f = BillingFixture::start().await;
    let owner = f.app.register("owner@example.com").await;
    let tenant = f.app.create_tenant(&owner, "acme").await;
    let admin = f.app.add_member(&owner, tenant, "admin@example.com", "admin").await;
    let key = f.app.create_api_key(&owner, tenant, "k", "owner").await["secret"].as_str().unwrap().to_owned();
    let stranger = f.app.register("stranger@example.com").await;

    for (plan, status) in [("free", 422), ("platinum", 422)] {
        let response = f.checkout(&owner.access_token, tenant, plan).await;
        assert_eq!(response.status(), status, "{plan}");
        assert_eq!(response.headers()["content-type"], "application/problem+json");
    }
    let extra = f
        .app
        .call(
            reqwest::Method::POST,
            &format!("/v1/tenants/{tenant}/billing/checkout-session"),
            Some(&owner.access_token),
            Some(json!({ "plan": "pro", "coupon": "free money" })),
        )
        .await;
    assert_eq!(extra.status(), 422);
    assert_eq!(f.checkout(&admin.access_token, tenant, "pro").await.status(), 403, "owners only");
    assert_eq!(f.checkout(&key, tenant, "pro").await.status(), 403, "not with an API key");
    assert_eq!(f.checkout(&stranger.access_token, tenant, "pro").await.status(), 404);
    assert_eq!(f.billing(&admin, tenant).await["plan"], "free", "admins may look");
    // A member past the seat limit, as a downgrade leaves them.
    let member = f.app.register("m@example.com").await;
    f.app
        .sql(&format!(
            "INSERT INTO tenant_users (tenant_id, user_id, email, role) VALUES ('{tenant}', '{}', 'm@example.com', 'member')",
            member.id
        ))
        .await;
    let peek = f
        .app
        .call(reqwest::Method::GET, &format!("/v1/tenants/{tenant}/billing"), Some(&member.access_token), None)
        .await;
    assert_eq!(peek.status(), 403);
    let portal = f.portal(&owner.access_token, tenant).await;
    assert_eq!(portal.status(), 409, "no billing account yet");
    assert!(f.stripe.customers().is_empty(), "nothing was created at Stripe");

    // Stripe down: 502, nothing recorded.
    f.stripe.set_faults(Faults { unavailable: 100, ..Default::default() });
    let down = f.checkout(&owner.access_token, tenant, "pro").await;
    assert_eq!(down.status(), 502);
    assert_eq!(f.app.audit_log(tenant).await.of("billing.checkout_start").len(), 0);
    assert_eq!(
        f.app
            .db
            .count(&format!("SELECT count(*) FROM tenants WHERE id = '{tenant}' AND stripe_customer_id IS NULL"))
            .await,
        1
    );
}

#[tokio::test]
async fn billing_answers_503_when_stripe_is_not_configured() {
    let app = tests::spawn_app().await;
    let owner = app.register("owner@example.com").await;
    let tenant = app.create_tenant(&owner, "acme").await;
    let checkout = app
        .call(
            reqwest::Method::POST,
            &format!("/v1/tenants/{tenant}/billing/checkout-session"),
            Some(&owner.access_token),
            Some(json!({ "plan": "pro" })),
        )
        .await;
    // No price is configured either: the plan is not for sale.
    assert_eq!(checkout.status(), 422);
    let webhook = app.post("/v1/webhooks/stripe", json!({})).await;
    assert_eq!(webhook.status(), 503);
    let plans: Value = app.call(reqwest::Method::GET, "/v1/plans", None, None).await.json().await.unwrap();
    assert!(plans["plans"].as_array().unwrap().iter().all(|p| p["purchasable"] == false));
}

#[tokio::test]
async fn a_webhook_that_is_not_signed_right_or_not_a_known_event_changes_nothing() {
    let f = BillingFixture::start().await;
    let owner = f.app.register("owner@example.com").await;
    let tenant = f.app.create_tenant(&owner, "acme").await;
    let response = f.checkout(&owner.access_token, tenant, "pro").await;
    assert_eq!(response.status(), 201);
    let customer = f.stripe.customers()[0].id.clone();
    let event = |id: &str, kind: &str, object: Value| {
        json!({ "id": id, "object": "event", "type": kind, "created": Utc::now().timestamp(), "livemode": false,
                "data": { "object": object } })
        .to_string()
    };
    let subscription = |customer: &str, price: &str| {
        json!({ "id": "sub_x", "object": "subscription", "customer": customer, "status": "active",
                "items": { "data": [{ "price": { "id": price } }] } })
    };
    let post = |body: String, signature: Option<String>| {
        let url = format!("{}/v1/webhooks/stripe", f.app.address);
        async move {
            let mut request = reqwest::Client::new().post(url).header("content-type", "application/json").body(body);
            if let Some(signature) = signature {
                request = request.header("stripe-signature", signature);
            }
            request.send().await.unwrap()
        }
    };
    let sign = |secret: &str, at: i64, body: &str| tests::stripe_sim::billing_signature(secret, at, body.as_bytes());
    let now = Utc::now().timestamp();
    let good = event("evt_good", "customer.subscription.updated", subscription(&customer, PRICE_PRO));

    let cases: Vec<(&str, String, Option<String>, &str)> = vec![
        ("unsigned", good.clone(), None, "missing"),
        ("wrong secret", good.clone(), Some(sign("whsec_wrong", now, &good)), "no signature matches"),
        ("another body", good.clone(), Some(sign(WEBHOOK_SECRET, now, "{}")), "no signature matches"),
        ("too old", good.clone(), Some(sign(WEBHOOK_SECRET, now - 400, &good)), "tolerance"),
        ("from the future", good.clone(), Some(sign(WEBHOOK_SECRET, now + 400, &good)), "tolerance"),
        ("garbled header", good.clone(), Some("t=abc,v1=zz".to_owned()), "malformed"),
        ("not JSON", "not json".to_owned(), Some(sign(WEBHOOK_SECRET, now, "not json")), "not a Stripe event"),
        (
            "not an event",
            "{\"hello\":1}".to_owned(),
            Some(sign(WEBHOOK_SECRET, now, "{\"hello\":1}")),
            "not a Stripe event",
        ),
    ];
    for (name, body, signature, words) in cases {
        let response = post(body, signature).await;
        assert_eq!(response.status(), 400, "{name}");
        assert_eq!(response.headers()["content-type"], "application/problem+json", "{name}");
        let problem: Value = response.json().await.unwrap();
        assert!(problem["detail"].as_str().unwrap().contains(words), "{name}: {problem}");
    }
    let unknown_customer = event("evt_c", "customer.subscription.updated", subscription("cus_nobody", PRICE_PRO));
    let response = post(unknown_customer.clone(), Some(sign(WEBHOOK_SECRET, now, &unknown_customer))).await;
    assert_eq!(response.status(), 400);
    assert!(response.json::<Value>().await.unwrap()["detail"].as_str().unwrap().contains("cus_nobody"));
    let unknown_price = event("evt_p", "customer.subscription.updated", subscription(&customer, "price_other"));
    let response = post(unknown_price.clone(), Some(sign(WEBHOOK_SECRET, now, &unknown_price))).await;
    assert_eq!(response.status(), 400);
    assert!(response.json::<Value>().await.unwrap()["detail"].as_str().unwrap().contains("price_other"));
    assert_eq!(events_stored(&f).await, 0, "nothing refused was stored");

    // A type not acted on: acknowledged, not stored.
    let other = event("evt_o", "customer.created", json!({ "id": customer }));
    let response = post(other.clone(), Some(sign(WEBHOOK_SECRET, now, &other))).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["outcome"], "ignored");
    assert_eq!(events_stored(&f).await, 0);

    // Signed with the previous secret during a rotation: accepted.
    let response = post(good.clone(), Some(sign("whsec_previous", now, &good))).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["outcome"], "stored");
    assert_eq!(events_stored(&f).await, 1);
    // It names a subscription Stripe does not know: applied as canceled, which changes nothing on a free tenant
    // but the status.
    f.worker.apply_billing_events().await.unwrap();
    assert_eq!(f.billing(&owner, tenant).await["plan"], "free");
}

/// Random journeys (upgrades, failed and recovered payments, plan changes, cancellations), their events delivered in a
/// random order with random duplicates and stale replays: the tenant always ends where Stripe's subscription is.
#[tokio::test]
async fn any_order_of_any_events_ends_in_stripes_final_state() {
    let f = BillingFixture::start().await;
    let owner = f.app.register("owner@example.com").await;
    for seed in 1..=6_u64 {
        let mut rng = tests::testio_sim::Rng::new(seed);
        let tenant = f.app.create_tenant(&owner, &format!("t{seed}")).await;
        let plan = if rng.below(2) == 0 { "pro" } else { "enterprise" };
        let session = f.open_checkout(&owner, tenant, plan).await;
        let subscription = f.stripe.complete_checkout(&session).unwrap();
        for _ in 0..rng.below(6) {
            match rng.below(5) {
                0 => f.stripe.set_status(&subscription, "past_due"),
                1 => f.stripe.set_status(&subscription, "active"),
                2 => f.stripe.change_price(&subscription, rng.pick(&[PRICE_PRO, PRICE_ENTERPRISE])),
                3 => f.stripe.cancel_at_period_end(&subscription),
                _ => f.stripe.set_status(&subscription, "unpaid"),
            }
        }
        if rng.below(3) == 0 {
            f.stripe.end_period(&subscription);
        }
        let mut events = f.stripe.take_pending();
        // Shuffle, duplicate some.
        for i in (1..events.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            events.swap(i, j);
        }
        let duplicates: Vec<_> = events.iter().filter(|_| rng.below(3) == 0).cloned().collect();
        events.extend(duplicates);
        // Applied in random batches while they arrive.
        for event in &events {
            assert_eq!(f.stripe.send(event, 1).await, 200);
            if rng.below(3) == 0 {
                f.worker.apply_billing_events().await.unwrap();
            }
        }
        f.worker.apply_billing_events().await.unwrap();
        let s = f.stripe.subscription(&subscription).unwrap();
        let paid = matches!(s.status.as_str(), "active" | "past_due");
        let want = match (paid, s.price.as_str()) {
            (false, _) => "free",
            (true, PRICE_PRO) => "pro",
            (true, _) => "enterprise",
        };
        let state = f.billing(&owner, tenant).await;
        assert_eq!(state["plan"], want, "seed {seed}: {state}");
        assert_eq!(state["subscription_status"], s.status.as_str(), "seed {seed}");
        assert_eq!(state["cancel_at_period_end"], s.cancel_at_period_end, "seed {seed}");
        let stored = f.app.db.count(&format!("SELECT count(*) FROM stripe_events WHERE tenant_id = '{tenant}'")).await;
        let unique: std::collections::HashSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(stored, unique.len() as i64, "seed {seed}: each event stored once");
        // Every audited change moved toward Stripe's state; the last one is it.
        let changes = updates(&f, tenant).await;
        if let Some(last) = changes.last() {
            assert_eq!((last.2.as_str(), last.3.as_str()), (want, s.status.as_str()), "seed {seed}");
        }
    }
}

#[tokio::test]
async fn deleting_a_tenant_cancels_its_live_subscription_first_and_deletes_nothing_when_stripe_fails() {
    let f = BillingFixture::start().await;
    let owner = f.app.register("owner@example.com").await;
    let tenant = f.app.create_tenant(&owner, "acme").await;
    let subscription = f.subscribe(&owner, tenant, "pro").await;

    // Stripe is down: the tenant stays, and so does the subscription.
    f.stripe.set_faults(Faults { unavailable: 100, ..Default::default() });
    let refused = f.app.delete_tenant(&owner, tenant).await;
    assert_eq!(refused.status(), 502);
    assert_eq!(f.app.get_tenant(&owner, tenant).await.status(), 200);
    assert_eq!(f.stripe.subscription(&subscription).unwrap().status, "active");

    f.stripe.set_faults(Faults::default());
    assert_eq!(f.app.delete_tenant(&owner, tenant).await.status(), 204);
    assert_eq!(f.stripe.subscription(&subscription).unwrap().status, "canceled", "nothing charges a deleted tenant");
    let audited = f
        .app
        .db
        .count(&format!(
            "SELECT count(*) FROM audit_logs WHERE action = 'tenant.delete' AND target_id = '{tenant}'
               AND metadata->>'subscription_cancelled' = '{subscription}'"
        ))
        .await;
    assert_eq!(audited, 1);
    // Stripe's news of the end is acknowledged (no retries), and applies to nobody: nothing is stored.
    let stored = events_stored(&f).await;
    let delivered = f.stripe.deliver().await;
    assert!(!delivered.is_empty() && delivered.iter().all(|(_, status)| *status == 200), "{delivered:?}");
    assert_eq!(events_stored(&f).await, stored);

    // A tenant without a subscription is deleted without asking Stripe (down again).
    let other = f.app.create_tenant(&owner, "other").await;
    f.stripe.set_faults(Faults { unavailable: 100, ..Default::default() });
    assert_eq!(f.app.delete_tenant(&owner, other).await.status(), 204);
}
