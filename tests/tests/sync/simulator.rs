//! The simulator honours the documented behaviour of the TestIO Customer API.

use serde_json::Value;
use tests::testio_sim::{Account, Faults, Shape, Simulator, Test};

const TOKEN: &str = "token-a";

async fn sim_with(shape: Shape) -> Simulator {
    let sim = Simulator::start().await;
    sim.add_account(TOKEN, Account::generate(1, shape));
    sim
}

async fn get(sim: &Simulator, token: &str, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}{path}", sim.base_url))
        .header("Authorization", format!("Token {token}"))
        .send()
        .await
        .unwrap()
}

async fn ids(response: reqwest::Response, key: &str) -> Vec<i64> {
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} envelope: {body}"))
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn only_a_known_unrevoked_token_gets_in() {
    let sim = sim_with(Shape { products: 1, tests_per_product: 1, bugs_per_test: 0 }).await;
    assert_eq!(get(&sim, "nope", "products").await.status(), 401);
    let no_header = reqwest::get(format!("{}products", sim.base_url)).await.unwrap();
    assert_eq!(no_header.status(), 401);
    assert_eq!(ids(get(&sim, TOKEN, "products").await, "products").await.len(), 1);
    sim.revoke(TOKEN);
    assert_eq!(get(&sim, TOKEN, "products").await.status(), 401);
}

#[tokio::test]
async fn tests_are_listed_newest_end_first_25_per_page_and_only_150_without_page() {
    let sim = sim_with(Shape { products: 1, tests_per_product: 160, bugs_per_test: 0 }).await;
    let product = ids(get(&sim, TOKEN, "products").await, "products").await[0];
    let path = |q: &str| format!("products/{product}/exploratory_tests{q}");

    let first = get(&sim, TOKEN, &path("?page=1")).await.json::<Value>().await.unwrap();
    let tests = first["exploratory_tests"].as_array().unwrap();
    assert_eq!(tests.len(), 25);
    let ends: Vec<chrono::DateTime<chrono::FixedOffset>> =
        tests.iter().map(|t| chrono::DateTime::parse_from_rfc3339(t["end_at"].as_str().unwrap()).unwrap()).collect();
    assert!(ends.windows(2).all(|w| w[0] >= w[1]), "not end_at descending");
    assert!(tests[0]["test_environment"]["password"].is_string(), "the simulator sends what TestIO sends");

    assert_eq!(ids(get(&sim, TOKEN, &path("")).await, "exploratory_tests").await.len(), 150);
    assert_eq!(ids(get(&sim, TOKEN, &path("?per_page=500")).await, "exploratory_tests").await.len(), 150);
    assert_eq!(ids(get(&sim, TOKEN, &path("?page=4&per_page=50")).await, "exploratory_tests").await.len(), 10);
    assert_eq!(ids(get(&sim, TOKEN, &path("?page=5&per_page=50")).await, "exploratory_tests").await.len(), 0);
    let mut all = Vec::new();
    for page in 1..=7 {
        all.extend(ids(get(&sim, TOKEN, &path(&format!("?page={page}"))).await, "exploratory_tests").await);
    }
    assert_eq!(all.len(), 160);
}

#[tokio::test]
async fn a_new_test_appears_at_the_top_and_foreign_ids_are_404() {
    let sim = sim_with(Shape { products: 1, tests_per_product: 5, bugs_per_test: 2 }).await;
    sim.add_account("token-b", Account::generate(2, Shape { products: 1, tests_per_product: 1, bugs_per_test: 0 }));
    let product = ids(get(&sim, TOKEN, "products").await, "products").await[0];
    let foreign = ids(get(&sim, "token-b", "products").await, "products").await[0];
    assert_eq!(get(&sim, TOKEN, &format!("products/{foreign}")).await.status(), 404);
    assert_eq!(get(&sim, TOKEN, &format!("products/{foreign}/exploratory_tests")).await.status(), 404);

    sim.modify(TOKEN, |account| {
        let newest = account.tests_of(product)[0].clone();
        let fresh = Test { id: 999, end_at: newest.end_at + chrono::Duration::hours(1), ..newest };
        account.tests.insert(999, fresh);
    });
    let listed =
        ids(get(&sim, TOKEN, &format!("products/{product}/exploratory_tests?page=1")).await, "exploratory_tests").await;
    assert_eq!(listed[0], 999);
    let one: Value = get(&sim, TOKEN, "exploratory_tests/999").await.json().await.unwrap();
    assert_eq!(one["exploratory_test"]["id"], 999);
}

#[tokio::test]
async fn bugs_come_by_test_ids() {
    let sim = sim_with(Shape { products: 1, tests_per_product: 4, bugs_per_test: 3 }).await;
    let product = ids(get(&sim, TOKEN, "products").await, "products").await[0];
    let tests =
        ids(get(&sim, TOKEN, &format!("products/{product}/exploratory_tests")).await, "exploratory_tests").await;
    let two = format!("bugs?filter_test_cycle_ids={},{}", tests[0], tests[1]);
    let body: Value = get(&sim, TOKEN, &two).await.json().await.unwrap();
    let bugs = body["bugs"].as_array().unwrap();
    assert_eq!(bugs.len(), 6);
    assert!(bugs.iter().all(|b| [tests[0], tests[1]].contains(&b["test"]["id"].as_i64().unwrap())));
}

#[tokio::test]
async fn faults_are_injected_where_asked() {
    let sim = sim_with(Shape { products: 1, tests_per_product: 60, bugs_per_test: 1 }).await;
    let product = ids(get(&sim, TOKEN, "products").await, "products").await[0];
    sim.set_faults(Faults {
        failing_test_offsets: [(product, 30)].into(),
        bug_batch_limit: Some(2),
        rate_limited: None,
    });
    let page = |p: u32, per: u32| format!("products/{product}/exploratory_tests?page={p}&per_page={per}");
    assert_eq!(get(&sim, TOKEN, &page(2, 25)).await.status(), 500, "offsets 25..50 include 30");
    assert_eq!(get(&sim, TOKEN, &page(1, 25)).await.status(), 200);
    assert_eq!(get(&sim, TOKEN, &page(31, 1)).await.status(), 500, "even a page of one");
    assert_eq!(get(&sim, TOKEN, &page(32, 1)).await.status(), 200);
    assert_eq!(get(&sim, TOKEN, "bugs?filter_test_cycle_ids=1,2,3").await.status().as_u16(), 524);
    assert_eq!(get(&sim, TOKEN, "bugs?filter_test_cycle_ids=1,2").await.status(), 200);

    sim.set_faults(Faults { rate_limited: Some((2, 7)), ..Faults::default() });
    for _ in 0..2 {
        let r = get(&sim, TOKEN, "products").await;
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "7");
    }
    assert_eq!(get(&sim, TOKEN, "products").await.status(), 200);
    assert!(sim.requests() >= 9);
}
