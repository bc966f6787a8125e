//! The throttles in front of password checks and registrations, and where the client address comes from: limits that
//! hold under concurrency, that a stranger cannot use to lock a user out, that count password changes too, that bound
//! password hashing, and that believe only the address a trusted proxy saw.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tests::{TestApp, spawn_app, spawn_app_with};

/// `POST path` with `body`, from `address` as a proxy would forward it (`X-Forwarded-For`).
async fn post_from(app: &TestApp, path: &str, body: Value, forwarded_for: &str) -> reqwest::Response {
    app.client.post(app.url(path)).header("x-forwarded-for", forwarded_for).json(&body).send().await.unwrap()
}

fn count(statuses: &[StatusCode], status: u16) -> usize {
    statuses.iter().filter(|s| s.as_u16() == status).count()
}

const PLATFORM: uuid::Uuid = uuid::Uuid::nil();

async fn password_hash(app: &TestApp, user: uuid::Uuid) -> String {
    use sea_orm::ConnectionTrait;
    let db = app.db.superuser().await;
    let sql = format!("SELECT password_hash FROM users WHERE id = '{user}'");
    let row = db.query_one_raw(sea_orm::Statement::from_string(sea_orm::DbBackend::Postgres, sql)).await.unwrap();
    row.unwrap().try_get("", "password_hash").unwrap()
}

#[tokio::test]
async fn forty_parallel_wrong_passwords_from_one_address_get_exactly_five_checks() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let attempts = (0..40).map(|_| app.post_login(json!({ "email": ann.email, "password": "wrong password" })));
    let statuses: Vec<StatusCode> =
        futures_util::future::join_all(attempts).await.iter().map(reqwest::Response::status).collect();
    assert_eq!((count(&statuses, 401), count(&statuses, 429)), (5, 35), "{statuses:?}");
    let right = app.post_login(json!({ "email": ann.email, "password": ann.password })).await;
    assert_eq!(right.status(), 429, "the limit holds for the right password too");
    assert!(right.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn a_stranger_failing_from_their_address_does_not_lock_the_user_out_of_theirs() {
    let app = spawn_app_with(|s| s.trust_forwarded_for = true).await;
    let ann = app.register("ann@example.com").await;
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let wrong = json!({ "email": ann.email, "password": "wrong password" });
        statuses.push(post_from(&app, "/v1/auth/login", wrong, "203.0.113.5").await.status());
    }
    assert_eq!((count(&statuses, 401), count(&statuses, 429)), (5, 5), "{statuses:?}");
    let right = json!({ "email": ann.email, "password": ann.password });
    assert_eq!(post_from(&app, "/v1/auth/login", right.clone(), "203.0.113.5").await.status(), 429);
    assert_eq!(post_from(&app, "/v1/auth/login", right, "198.51.100.7").await.status(), 200, "the victim signs in");
}

#[tokio::test]
async fn guessing_spread_over_many_addresses_stops_at_the_account_ceiling_even_in_parallel() {
    let app = spawn_app_with(|s| {
        s.trust_forwarded_for = true;
        s.login_max_failures_per_account = 8;
    })
    .await;
    let ann = app.register("ann@example.com").await;
    let attempts = (0..30).map(|i| {
        let wrong = json!({ "email": ann.email, "password": "wrong password" });
        let app = &app;
        async move { post_from(app, "/v1/auth/login", wrong, &format!("198.51.100.{i}")).await.status() }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    assert_eq!((count(&statuses, 401), count(&statuses, 429)), (8, 22), "{statuses:?}");
    let right = json!({ "email": ann.email, "password": ann.password });
    assert_eq!(post_from(&app, "/v1/auth/login", right, "192.0.2.200").await.status(), 429);
}

#[tokio::test]
async fn only_the_address_the_trusted_proxy_saw_counts_and_is_audited() {
    let app = spawn_app_with(|s| s.trust_forwarded_for = true).await;
    let ann = app.register("ann@example.com").await;
    let mut statuses = Vec::new();
    for i in 0..20 {
        // The client writes the left part itself; the proxy appends the address it really saw.
        let forwarded = format!("198.51.100.{i}, 10.9.8.7");
        let wrong = json!({ "email": ann.email, "password": "wrong password" });
        statuses.push(post_from(&app, "/v1/auth/login", wrong, &forwarded).await.status());
    }
    assert_eq!((count(&statuses, 401), count(&statuses, 429)), (5, 15), "{statuses:?}");
    let audit = app.audit_log(PLATFORM).await;
    let logins = audit.of("auth.login");
    assert_eq!(logins.len(), 20);
    assert!(logins.iter().all(|row| row.ip_address.as_deref() == Some("10.9.8.7")), "{logins:?}");

    // With a proxy list, a connection from elsewhere (here: the test client itself) has its header ignored.
    let app = spawn_app_with(|s| s.trusted_proxies = "10.0.0.0/8".into()).await;
    let bob = app.register("bob@example.com").await;
    let wrong = json!({ "email": bob.email, "password": "wrong password" });
    assert_eq!(post_from(&app, "/v1/auth/login", wrong, "203.0.113.1").await.status(), 401);
    let audit = app.audit_log(PLATFORM).await;
    let entry = audit.of("auth.login").pop().unwrap();
    assert_eq!(entry.ip_address.as_deref(), Some("127.0.0.1"), "{entry:?}");
}

#[tokio::test]
async fn wrong_current_passwords_count_under_the_accounts_throttle() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let hash_before = password_hash(&app, ann.id).await;
    let change = |current: &str| {
        let (app, ann, current) = (&app, &ann, current.to_owned());
        async move { app.post_password(ann, &current, "a brand new password").await }
    };
    for _ in 0..5 {
        assert_eq!(change("not my password").await.status(), 422);
    }
    let locked = change(&ann.password).await;
    assert_eq!(locked.status(), 429, "the right password waits too once the limit is reached");
    assert!(locked.headers().contains_key("retry-after"));
    assert_eq!(locked.json::<Value>().await.unwrap()["code"], "rate_limited");
    assert_eq!(password_hash(&app, ann.id).await, hash_before, "the password did not change");
    let audit = app.audit_log(PLATFORM).await;
    assert_eq!(audit.of("user.password_change").iter().filter(|row| row.outcome == "failure").count(), 5);
    assert!(audit.has("user.password_change", "denied"));
    assert!(!audit.has("user.password_change", "success"));
}

#[tokio::test]
async fn registrations_are_limited_per_address() {
    let app = spawn_app_with(|s| {
        s.trust_forwarded_for = true;
        s.register_max_per_ip = 3;
    })
    .await;
    let register = |email: &str, from: &'static str| {
        let body = json!({ "email": email, "name": "N", "password": "long enough password" });
        let app = &app;
        async move { post_from(app, "/v1/auth/register", body, from).await }
    };
    assert_eq!(register("a@example.com", "203.0.113.5").await.status(), 201);
    assert_eq!(register("a@example.com", "203.0.113.5").await.status(), 409, "a taken email counts too");
    assert_eq!(register("b@example.com", "203.0.113.5").await.status(), 201);
    let refused = register("c@example.com", "203.0.113.5").await;
    assert_eq!(refused.status(), 429);
    let wait: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3600).contains(&wait), "{wait}");
    assert_eq!(register("c@example.com", "198.51.100.7").await.status(), 201, "another address is not limited");
}

#[tokio::test]
async fn a_taken_email_never_costs_a_password_hash() {
    // One hashing slot, no waiting for it: any request that hashed while another did would get 503.
    let app = spawn_app_with(|s| {
        s.password_hash_concurrency = 1;
        s.password_hash_wait_ms = 0;
    })
    .await;
    let ann = app.register("ann@example.com").await;
    let attempts =
        (0..24).map(|_| app.post_register(json!({ "email": ann.email, "name": "N", "password": "another password" })));
    let statuses: Vec<StatusCode> =
        futures_util::future::join_all(attempts).await.iter().map(reqwest::Response::status).collect();
    assert_eq!(count(&statuses, 409), 24, "{statuses:?}");
}

#[tokio::test]
async fn password_work_beyond_the_bound_is_refused_with_503_and_retry_after_and_changes_nothing() {
    let app = spawn_app_with(|s| {
        s.password_hash_concurrency = 1;
        s.password_hash_wait_ms = 0;
    })
    .await;
    let attempts = (0..12).map(|i| {
        let body = json!({ "email": format!("user{i}@example.com"), "name": "N", "password": "long enough password" });
        app.post_register(body)
    });
    let responses = futures_util::future::join_all(attempts).await;
    let mut created = 0;
    let mut busy = 0;
    for response in responses {
        match response.status().as_u16() {
            201 => created += 1,
            503 => {
                busy += 1;
                assert_eq!(response.headers()["retry-after"], "1");
                assert_eq!(response.headers()["content-type"], "application/problem+json");
                assert_eq!(response.json::<Value>().await.unwrap()["code"], "service_unavailable");
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(busy > 0 && created > 0, "created {created}, busy {busy}");
    let users = app.audit_log(PLATFORM).await.of("user.register").len();
    assert_eq!(users, created, "a refused registration created nothing");
}

#[tokio::test]
async fn a_success_clears_the_callers_own_counts_but_only_returns_its_attempt_to_the_address() {
    // The pair's count (limit 5) is cleared by a success: four failures, a success, then five more are checked.
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let login = |password: &str| app.post_login(json!({ "email": ann.email, "password": password }));
    for _ in 0..4 {
        assert_eq!(login("wrong password").await.status(), 401);
    }
    assert_eq!(login(&ann.password).await.status(), 200);
    for _ in 0..5 {
        assert_eq!(login("wrong password").await.status(), 401, "the earlier failures were cleared by the success");
    }
    assert_eq!(login(&ann.password).await.status(), 429);

    // The address's count (here limit 4) is shared by every account: a success takes back only its own attempt.
    let app = spawn_app_with(|s| s.login_max_failures_per_ip = 4).await;
    let ann = app.register("ann@example.com").await;
    let login = |password: &str| app.post_login(json!({ "email": ann.email, "password": password }));
    for _ in 0..3 {
        assert_eq!(login("wrong password").await.status(), 401);
    }
    for _ in 0..10 {
        assert_eq!(login(&ann.password).await.status(), 200, "successes do not use up the address's limit");
    }
    assert_eq!(login("wrong password").await.status(), 401, "the fourth failure from the address is checked");
    assert_eq!(login(&ann.password).await.status(), 429, "and locks the address");
}

/// For any thresholds and any spread of parallel wrong attempts over addresses, the number of attempts let through
/// is exactly what the limits allow, whatever order Postgres serialises them in: every address gets up to the pair
/// limit until the account ceiling is reached.
#[tokio::test]
async fn property_parallel_attempts_let_through_exactly_what_the_limits_allow() {
    use entity::auth_throttle::{Limit, Policy, admit};
    use rand::{RngExt, SeedableRng};
    let db = tests::TestDatabase::migrated().await;
    let pool = entity::db::connect(
        &db.runtime_url(),
        &entity::db::PoolSettings {
            max_connections: 8,
            acquire_timeout: std::time::Duration::from_secs(10),
            connect_timeout: std::time::Duration::from_secs(10),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let seed: u64 = rand::rng().random();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let policy = |threshold| Policy {
        threshold,
        window: std::time::Duration::from_secs(900),
        base_lock: std::time::Duration::from_secs(30),
        max_lock: std::time::Duration::from_secs(900),
    };
    for round in 0..25 {
        let (pair_limit, account_limit) = (rng.random_range(1..=6), rng.random_range(1..=20));
        let addresses = rng.random_range(1..=5);
        let attempts: Vec<usize> = (0..rng.random_range(1..=40)).map(|_| rng.random_range(0..addresses)).collect();
        let account = format!("account:{round}-{}", uuid::Uuid::new_v4());
        let outcomes = futures_util::future::join_all(attempts.iter().map(|address| {
            let limits = vec![
                Limit::new(format!("{account}|{address}"), policy(pair_limit)),
                Limit::new(account.clone(), policy(account_limit)),
            ];
            let pool = &pool;
            async move { admit(pool, &limits).await.unwrap().is_none() }
        }))
        .await;
        let admitted = outcomes.iter().filter(|ok| **ok).count();
        let per_address: usize =
            (0..addresses).map(|a| attempts.iter().filter(|x| **x == a).count().min(pair_limit as usize)).sum();
        let expected = per_address.min(account_limit as usize);
        assert_eq!(
            admitted, expected,
            "seed {seed} round {round}: pair limit {pair_limit}, account limit {account_limit}, attempts {attempts:?}"
        );
    }
}
