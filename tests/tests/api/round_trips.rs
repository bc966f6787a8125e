//! What a request costs in database round trips, and that the cheaper path keeps every guarantee.
//!
//! A tenant read is `BEGIN`, one statement that binds the transaction to the tenant and authenticates the caller,
//! the route's statement and `COMMIT`; a route outside a tenant authenticates in one statement. The counts come from
//! a proxy between the app and Postgres that reads the wire protocol (see `tests::proxy`); the app gets one pooled
//! connection, so that requests are counted one at a time, and each request is counted the second time it is made
//! (the first prepares its statements on the connection: one more round trip each, once per connection).
//!
//! The checks that used to run before the transaction now run inside it, so the "at once" rules are tested again
//! through the API: a logout, a removal, a demotion or a revocation is seen by the very next request, and by every
//! request started after it committed, however many run at the same time.

use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use serde_json::Value;
use tests::proxy::TcpProxy;
use tests::{TestApp, TestUser, spawn_app, spawn_app_with};

/// An app whose one pooled connection runs through a counting proxy.
struct Counted {
    app: TestApp,
    proxy: TcpProxy,
}

async fn counted_app() -> Counted {
    let proxy = TcpProxy::to_postgres().await;
    let app = spawn_app_with(|s| {
        s.database_url = proxy.route_readable(s.database_url.expose_secret()).into();
        s.database_max_connections = 1;
    })
    .await;
    Counted { app, proxy }
}

impl Counted {
    /// The round trips of `request`'s second run (asserting that both runs answer `status`), and the pings sent
    /// from just before it until its connection was back in the pool.
    async fn round_trips(&self, status: u16, request: impl AsyncFn() -> reqwest::Response) -> (Vec<String>, usize) {
        assert_eq!(request().await.status(), status, "the warm-up run");
        self.settle().await;
        let response = request().await;
        assert_eq!(response.status(), status);
        tokio::time::sleep(Duration::from_millis(100)).await;
        (self.proxy.take_round_trips(), self.proxy.take_pings())
    }

    /// Lets the last request's connection go back to the pool, and forgets what was counted so far.
    async fn settle(&self) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.proxy.take_round_trips();
        self.proxy.take_pings();
    }
}

/// `true` when the round trip `sql` ran `statement` (a name that appears in it).
fn runs(sql: &str, statement: &str) -> bool {
    sql.contains(statement)
}

fn secret(created: &Value) -> String {
    created["secret"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_members_tenant_read_is_begin_one_authorizing_statement_the_query_and_commit() {
    let c = counted_app().await;
    let alice = c.app.register("alice@example.com").await;
    let tenant = c.app.create_tenant(&alice, "acme").await;

    let (trips, pings) =
        c.round_trips(200, async || c.app.get_sync_runs(&alice, tenant, &[("limit", "50")]).await).await;

    assert_eq!(trips.len(), 4, "{trips:#?}");
    assert_eq!(trips[0], "BEGIN");
    assert!(runs(&trips[1], "app_authorize_user("), "binds and authenticates in one statement: {trips:#?}");
    assert!(runs(&trips[2], "sync_runs"), "{trips:#?}");
    assert_eq!(trips[3], "COMMIT");
    assert_eq!(pings, 0, "a connection in use is neither pinged when taken nor when given back");
}

#[tokio::test]
async fn an_api_keys_tenant_read_is_begin_one_authorizing_statement_the_query_and_commit() {
    let c = counted_app().await;
    let alice = c.app.register("alice@example.com").await;
    let tenant = c.app.create_tenant(&alice, "acme").await;
    let key = secret(&c.app.create_api_key(&alice, tenant, "ci", "viewer").await);

    // The warm-up run is the key's first use, which records it (at most once a minute): the counted run does not.
    let (trips, pings) = c.round_trips(200, async || c.app.get_sync_runs(&key, tenant, &[("limit", "50")]).await).await;

    assert_eq!(trips.len(), 4, "{trips:#?}");
    assert_eq!(trips[0], "BEGIN");
    assert!(runs(&trips[1], "app_authorize_api_key("), "{trips:#?}");
    assert!(runs(&trips[2], "sync_runs"), "{trips:#?}");
    assert_eq!(trips[3], "COMMIT");
    assert_eq!(pings, 0);
}

/// Asserts that `request` (answering `status`) authorizes in the statement after `BEGIN` and does not read the session
/// or bind the tenant again.
async fn authorizes_after_begin(c: &Counted, name: &str, status: u16, request: impl AsyncFn() -> reqwest::Response) {
    let (trips, _) = c.round_trips(status, request).await;
    assert!(trips.len() >= 3, "{name}: {trips:#?}");
    assert_eq!(trips[0], "BEGIN", "{name}");
    assert!(runs(&trips[1], "app_authorize_user("), "{name}: {trips:#?}");
    assert!(
        trips.iter().skip(2).all(|t| !runs(t, "sessions") && !runs(t, "app.tenant_id") && !runs(t, "app_authorize")),
        "{name} reads the session and binds the tenant once only: {trips:#?}"
    );
}

#[tokio::test]
async fn every_tenant_read_authorizes_in_the_statement_after_begin() {
    let c = counted_app().await;
    let alice = c.app.register("alice@example.com").await;
    let t = c.app.create_tenant(&alice, "acme").await;
    authorizes_after_begin(&c, "tenant", 200, async || c.app.get_tenant(&alice, t).await).await;
    authorizes_after_begin(&c, "members", 200, async || c.app.get_members(&alice, t).await).await;
    authorizes_after_begin(&c, "invitations", 200, async || c.app.get_invitations(&alice, t).await).await;
    authorizes_after_begin(&c, "api keys", 200, async || c.app.get_api_keys(&alice, t).await).await;
    authorizes_after_begin(&c, "no connection", 404, async || c.app.get_connection(&alice, t).await).await;
    authorizes_after_begin(&c, "sync runs", 200, async || c.app.get_sync_runs(&alice, t, &[]).await).await;
}

#[tokio::test]
async fn a_route_outside_a_tenant_authenticates_in_one_round_trip() {
    let c = counted_app().await;
    let alice = c.app.register("alice@example.com").await;
    c.app.create_tenant(&alice, "acme").await;

    let (trips, pings) = c.round_trips(200, async || c.app.get_me(&alice).await).await;

    assert!(runs(&trips[0], "FROM sessions s") && runs(&trips[0], "JOIN users u"), "{trips:#?}");
    assert!(trips[1..].iter().all(|t| !runs(t, "sessions")), "the session is read once: {trips:#?}");
    // The rest is the handler's own: the memberships in a user-scoped transaction (BEGIN, app.user_id, the select,
    // COMMIT), then their tenants.
    assert_eq!(trips[1], "BEGIN", "{trips:#?}");
    assert!(runs(&trips[2], "app.user_id"), "{trips:#?}");
    assert_eq!(trips[4], "COMMIT", "{trips:#?}");
    assert_eq!(trips.len(), 6, "{trips:#?}");
    assert_eq!(pings, 0);
}

#[tokio::test]
async fn a_refused_request_rolls_back_before_its_connection_serves_the_next() {
    let c = counted_app().await;
    let alice = c.app.register("alice@example.com").await;
    let bob = c.app.register("bob@example.com").await;
    let acme = c.app.create_tenant(&alice, "acme").await;
    let globex = c.app.create_tenant(&bob, "globex").await;
    c.settle().await;

    // Refused after its transaction was bound to acme: it is dropped, and its ROLLBACK sent as the connection goes
    // back to the pool (without a ping), so the next request on that one connection starts clean.
    assert_eq!(c.app.get_members(&bob, acme).await.status(), 404);
    let members: Value = c.app.get_members(&bob, globex).await.json().await.unwrap();
    assert_eq!(members.as_array().unwrap().len(), 1);
    assert_eq!(members[0]["email"], "bob@example.com", "only globex's rows: {members}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let trips = c.proxy.take_round_trips();
    let rollback = trips.iter().position(|t| t == "ROLLBACK").unwrap_or_else(|| panic!("no ROLLBACK: {trips:#?}"));
    assert_eq!(trips[rollback + 1], "BEGIN", "{trips:#?}");
    assert_eq!(c.proxy.take_pings(), 0);
}

#[tokio::test]
async fn a_request_on_a_pooled_connection_that_postgres_dropped_is_retried_on_a_fresh_one() {
    let proxy = TcpProxy::to_postgres().await;
    let app = spawn_app_with(|s| s.database_url = proxy.route(s.database_url.expose_secret()).into()).await;
    let alice = app.register("alice@example.com").await;
    let tenant = app.create_tenant(&alice, "acme").await;
    // Fill the pool (4 connections) with connections that will all be dead.
    let busy = futures_util::future::join_all((0..8).map(|_| app.get_sync_runs(&alice, tenant, &[]))).await;
    assert!(busy.iter().all(|r| r.status() == 200));

    proxy.cut();
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.restore();

    // No ping on checkout finds them dead: the first statement does, and is sent again on another connection.
    let read = app.get_sync_runs(&alice, tenant, &[]).await;
    assert_eq!(read.status(), 200, "{}", read.text().await.unwrap());
    let key = app.create_api_key(&alice, tenant, "ci", "viewer").await;
    assert_eq!(app.get_members(&secret(&key), tenant).await.status(), 200);
    assert_eq!(app.get_me(&alice).await.status(), 200);
}

#[tokio::test]
async fn a_tenant_request_right_after_logout_or_a_disabled_account_or_an_expired_session_is_refused() {
    let app = spawn_app().await;
    let alice = app.register("alice@example.com").await;
    let tenant = app.create_tenant(&alice, "acme").await;
    assert_eq!(app.get_sync_runs(&alice, tenant, &[]).await.status(), 200);

    assert_eq!(app.post_logout(&alice).await.status(), 204);
    let refused = app.get_sync_runs(&alice, tenant, &[]).await;
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().contains_key("www-authenticate"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(
        (body["code"].as_str(), body["detail"].as_str()),
        (Some("unauthenticated"), Some("The session has ended; sign in again."))
    );

    let carol = app.add_member(&signed_in_again(&app, &alice).await, tenant, "carol@example.com", "member").await;
    assert_eq!(app.get_members(&carol, tenant).await.status(), 200);
    app.sql(&format!("UPDATE users SET disabled_at = now() WHERE id = '{}'", carol.id)).await;
    let refused = app.get_members(&carol, tenant).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.json::<Value>().await.unwrap()["detail"], "The account is disabled.");

    let dave = app.add_member(&signed_in_again(&app, &alice).await, tenant, "dave@example.com", "viewer").await;
    assert_eq!(app.get_tenant(&dave, tenant).await.status(), 200);
    app.sql(&format!("UPDATE sessions SET expires_at = now() - interval '1 second' WHERE user_id = '{}'", dave.id))
        .await;
    assert_eq!(app.get_tenant(&dave, tenant).await.status(), 401, "an expired session ends before its token does");
    assert_eq!(app.get_me(&dave).await.status(), 401, "outside a tenant too");
}

/// A fresh access token for `user` (after a logout ended theirs).
async fn signed_in_again(app: &TestApp, user: &TestUser) -> TestUser {
    let body = app.login(&user.email, &user.password).await;
    TestUser { access_token: body["tokens"]["access_token"].as_str().unwrap().to_owned(), ..user.clone() }
}

#[tokio::test]
async fn a_removed_member_gets_404_on_their_very_next_request() {
    let app = spawn_app().await;
    let alice = app.register("alice@example.com").await;
    let tenant = app.create_tenant(&alice, "acme").await;
    let bob = app.add_member(&alice, tenant, "bob@example.com", "admin").await;
    assert_eq!(app.get_sync_runs(&bob, tenant, &[]).await.status(), 200);

    assert_eq!(app.delete_member(&alice, tenant, bob.id).await.status(), 204);

    let refused = app.get_sync_runs(&bob, tenant, &[]).await;
    assert_eq!(refused.status(), 404);
    let missing = app.get_sync_runs(&bob, uuid::Uuid::now_v7(), &[]).await;
    assert_eq!(missing.status(), 404);
    let (refused, missing): (Value, Value) = (refused.json().await.unwrap(), missing.json().await.unwrap());
    assert_eq!((&refused["code"], &refused["detail"]), (&missing["code"], &missing["detail"]), "no existence leak");
    assert_eq!(app.get_me(&bob).await.status(), 200, "still signed in, just not a member");
}

#[tokio::test]
async fn a_key_acts_with_its_creators_lowered_role_and_dies_with_their_membership_on_the_next_request() {
    let app = spawn_app().await;
    let alice = app.register("alice@example.com").await;
    let tenant = app.create_tenant(&alice, "acme").await;
    let carol = app.add_member(&alice, tenant, "carol@example.com", "admin").await;
    let key = secret(&app.create_api_key(&carol, tenant, "ci", "admin").await);
    assert_eq!(app.get_api_keys(&key, tenant).await.status(), 200, "an admin key manages keys");

    assert_eq!(app.patch_member(&alice, tenant, carol.id, "viewer").await.status(), 200);
    let refused = app.get_api_keys(&key, tenant).await;
    assert_eq!(refused.status(), 403, "capped at the creator's new role");
    assert_eq!(refused.json::<Value>().await.unwrap()["detail"], "Your role (viewer) does not allow this.");
    assert_eq!(app.get_sync_runs(&key, tenant, &[]).await.status(), 200, "a viewer still reads");

    assert_eq!(app.delete_member(&alice, tenant, carol.id).await.status(), 204);
    let refused = app.get_sync_runs(&key, tenant, &[]).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.json::<Value>().await.unwrap()["code"], "unauthenticated");

    // Revoked by hand, without removing its creator: refused at once too.
    let other = app.create_api_key(&alice, tenant, "other", "viewer").await;
    assert_eq!(app.get_sync_runs(&secret(&other), tenant, &[]).await.status(), 200);
    let id = other["api_key"]["id"].as_str().unwrap();
    assert_eq!(app.delete_api_key(&alice, tenant, id).await.status(), 204);
    assert_eq!(app.get_sync_runs(&secret(&other), tenant, &[]).await.status(), 401);
}

#[tokio::test]
async fn no_request_started_after_a_logout_committed_succeeds_however_many_run_at_once() {
    let app = spawn_app().await;
    let alice = app.register("alice@example.com").await;
    let tenant = app.create_tenant(&alice, "acme").await;
    let logged_out_at = std::sync::OnceLock::<Instant>::new();

    let (app, alice, at) = (&app, &alice, &logged_out_at);
    let client = |_| async move {
        let mut seen = Vec::new();
        loop {
            let sent = Instant::now();
            let status = app.get_sync_runs(alice, tenant, &[]).await.status().as_u16();
            seen.push((sent, status));
            if at.get().is_some_and(|t| t.elapsed() > Duration::from_millis(200)) {
                return seen;
            }
        }
    };
    let logout = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(app.post_logout(alice).await.status(), 204);
        // The revocation committed before the answer was sent.
        at.set(Instant::now()).unwrap();
    };
    let (seen, ()) = tokio::join!(futures_util::future::join_all((0..20).map(client)), logout);

    let logged_out_at = *logged_out_at.get().unwrap();
    let all: Vec<(Instant, u16)> = seen.into_iter().flatten().collect();
    let after: Vec<u16> = all.iter().filter(|(sent, _)| *sent > logged_out_at).map(|(_, s)| *s).collect();
    assert!(all.iter().any(|(sent, s)| *sent < logged_out_at && *s == 200), "sanity: requests ran before it");
    assert!(after.len() >= 20, "requests ran after it: {}", after.len());
    assert!(after.iter().all(|s| *s == 401), "a request started after the logout got through: {after:?}");
    assert!(all.iter().all(|(_, s)| *s == 200 || *s == 401), "only 200 or 401");
}

#[tokio::test]
async fn stats_between_two_syncs_are_one_statement_and_a_mirror_write_is_seen_by_the_next_read() {
    let c = counted_app().await;
    let alice = c.app.register("alice@example.com").await;
    let tenant = c.app.create_tenant(&alice, "acme").await;
    tests::mirror::KnownData::main().write(&c.app.db, tenant).await;
    let stats = async || c.app.get_mirror(&alice, tenant, "stats").await;

    // Warm: the sync state and the counters' version, nothing else.
    let (trips, _) = c.round_trips(200, stats).await;
    assert_eq!(trips.len(), 4, "{trips:#?}");
    assert!(runs(&trips[2], "testio_mirror_versions"), "{trips:#?}");
    let before: Value = stats().await.json().await.unwrap();

    // A write to the mirror (here as the superuser, which no cache sees) moves the version: the next read counts
    // again and shows it.
    let superuser = c.app.db.superuser().await;
    sea_orm::ConnectionTrait::execute_unprepared(
        superuser,
        &format!("UPDATE testio_tests SET status = 'archived' WHERE tenant_id = '{tenant}' AND status <> 'archived'"),
    )
    .await
    .unwrap();
    sea_orm::ConnectionTrait::execute_unprepared(
        superuser,
        &format!("UPDATE testio_products SET name = 'Renamed' WHERE tenant_id = '{tenant}' AND testio_id = 101"),
    )
    .await
    .unwrap();
    c.settle().await;
    let after = stats().await;
    assert_eq!(after.status(), 200);
    let recounted = c.proxy.take_round_trips();
    assert_eq!(recounted.len(), 6, "the state, the products and the counters: {recounted:#?}");
    let after: Value = after.json().await.unwrap();
    assert_ne!(before["overall"], after["overall"]);
    let archived = &after["overall"]["tests_by_status"]["archived"];
    assert_eq!(archived, &after["overall"]["tests_total"], "{after}");
    let renamed = after["products"].as_array().unwrap().iter().find(|p| p["product_id"] == 101).unwrap().clone();
    assert_eq!(renamed["name"], "Renamed", "{after}");
}

/// With the rate limits on, a tenant read costs one more round trip, before its transaction: the statement that takes
/// from the address's and the tenant's buckets at once. The connection is back in the pool before `BEGIN` (the request
/// never holds two).
#[tokio::test]
async fn with_the_rate_limits_on_a_tenant_read_adds_one_statement_for_both_buckets() {
    let proxy = TcpProxy::to_postgres().await;
    let app = spawn_app_with(|s| {
        s.database_url = proxy.route_readable(s.database_url.expose_secret()).into();
        s.database_max_connections = 1;
        s.rate_limit_per_ip_per_minute = 10_000;
        s.rate_limit_per_tenant_per_minute = 10_000;
    })
    .await;
    let c = Counted { app, proxy };
    let alice = c.app.register("alice@example.com").await;
    let tenant = c.app.create_tenant(&alice, "acme").await;
    let (trips, _) = c.round_trips(200, async || c.app.get_sync_runs(&alice, tenant, &[("limit", "50")]).await).await;
    assert_eq!(trips.len(), 5, "{trips:#?}");
    assert!(runs(&trips[0], "rate_limit_take("), "{trips:#?}");
    assert_eq!(trips[1], "BEGIN");
    assert!(runs(&trips[2], "app_authorize_user("), "{trips:#?}");
    assert_eq!(trips[4], "COMMIT");
}
