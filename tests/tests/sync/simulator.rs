//! The simulator honours the documented behaviour of the TestIO Customer API.

use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset};
use serde_json::{Value, json};
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

async fn body(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn first_product(sim: &Simulator) -> i64 {
    ids(get(sim, TOKEN, "products").await, "products").await[0]
}

async fn page_of(sim: &Simulator, product: i64, page: usize, per_page: usize) -> Vec<i64> {
    let path = format!("products/{product}/exploratory_tests?page={page}&per_page={per_page}");
    ids(get(sim, TOKEN, &path).await, "exploratory_tests").await
}

async fn bugs_of(sim: &Simulator, test_ids: &[i64]) -> Vec<Value> {
    let list = test_ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let found = body(get(sim, TOKEN, &format!("bugs?filter_test_cycle_ids={list}")).await).await;
    found["bugs"].as_array().unwrap().clone()
}

async fn test_by_id(sim: &Simulator, id: i64) -> Value {
    body(get(sim, TOKEN, &format!("exploratory_tests/{id}")).await).await["exploratory_test"].clone()
}

fn at(rfc3339: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap()
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
        ..Faults::default()
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

#[tokio::test]
async fn a_delay_holds_back_every_response_but_not_the_requests_served_meanwhile() {
    let sim = sim_with(Shape { products: 1, tests_per_product: 3, bugs_per_test: 1 }).await;
    let delay = Duration::from_millis(500);
    sim.set_faults(Faults { delay: Some(delay), ..Faults::default() });

    let started = Instant::now();
    assert_eq!(get(&sim, "nope", "products").await.status(), 401);
    assert!(started.elapsed() >= delay, "errors are delayed too");

    let started = Instant::now();
    let (a, b, c, d) = tokio::join!(
        get(&sim, TOKEN, "products"),
        get(&sim, TOKEN, "products"),
        get(&sim, TOKEN, "products"),
        get(&sim, TOKEN, "products"),
    );
    let elapsed = started.elapsed();
    assert!([a, b, c, d].iter().all(|r| r.status() == 200));
    assert!(elapsed >= delay, "answered after {elapsed:?}");
    assert!(elapsed < delay * 3, "four delayed requests took {elapsed:?}: they were served one after another");
}

#[tokio::test]
async fn truncated_responses_are_200_with_half_the_body_until_the_count_runs_out() {
    let sim = sim_with(Shape { products: 2, tests_per_product: 3, bugs_per_test: 1 }).await;
    let whole = get(&sim, TOKEN, "products").await.bytes().await.unwrap();
    sim.set_faults(Faults { truncate_responses: 2, ..Faults::default() });

    let cut = get(&sim, TOKEN, "products").await;
    assert_eq!(cut.status(), 200);
    let cut = cut.bytes().await.unwrap();
    assert_eq!(cut.len(), whole.len() / 2);
    assert!(serde_json::from_slice::<Value>(&cut).is_err(), "half a body is not JSON");

    let missing = get(&sim, TOKEN, "products/1").await;
    assert_eq!(missing.status(), 404);
    assert!(missing.json::<Value>().await.is_ok(), "errors are not cut and do not count");

    let cut = get(&sim, TOKEN, "products").await.bytes().await.unwrap();
    assert!(serde_json::from_slice::<Value>(&cut).is_err());
    assert_eq!(get(&sim, TOKEN, "products").await.bytes().await.unwrap(), whole, "whole again after two");
}

#[tokio::test]
async fn rate_limiting_can_name_the_retry_time_as_an_http_date() {
    let sim = sim_with(Shape { products: 1, tests_per_product: 1, bugs_per_test: 0 }).await;
    sim.set_faults(Faults { rate_limited: Some((1, 120)), retry_after_http_date: true, ..Faults::default() });
    let limited = get(&sim, TOKEN, "products").await;
    assert_eq!(limited.status(), 429);
    let value = limited.headers()["retry-after"].to_str().unwrap().to_owned();
    assert!(value.ends_with(" GMT"), "an IMF-fixdate: {value}");
    let retry_at = DateTime::parse_from_rfc2822(&value).unwrap();
    let wait = retry_at.signed_duration_since(chrono::Utc::now()).num_seconds();
    assert!((118..=121).contains(&wait), "{value} is {wait} s away, not about 120");
    assert_eq!(get(&sim, TOKEN, "products").await.status(), 200);
}

#[tokio::test]
async fn a_test_override_replaces_that_test_in_list_pages_and_single_gets_and_keeps_its_place() {
    let sim = sim_with(Shape { products: 1, tests_per_product: 5, bugs_per_test: 0 }).await;
    let product = first_product(&sim).await;
    let listed = page_of(&sim, product, 1, 25).await;
    let odd = json!({ "id": listed[2], "status": "under_review", "end_at": 17, "huge": "x".repeat(1_000_000) });
    sim.set_faults(Faults { test_overrides: [(listed[2], odd.clone())].into(), ..Faults::default() });

    let page = body(get(&sim, TOKEN, &format!("products/{product}/exploratory_tests?page=1")).await).await;
    let tests = page["exploratory_tests"].as_array().unwrap();
    assert_eq!(tests[2], odd);
    assert!(tests[1]["end_at"].is_string(), "the others are rendered as usual");
    let unpaged = body(get(&sim, TOKEN, &format!("products/{product}/exploratory_tests")).await).await;
    assert_eq!(unpaged["exploratory_tests"][2], odd);
    assert_eq!(test_by_id(&sim, listed[2]).await, odd);
    assert_eq!(test_by_id(&sim, listed[3]).await["id"], listed[3]);
}

#[tokio::test]
async fn a_bug_override_replaces_that_bug_in_bug_lists() {
    let sim = sim_with(Shape { products: 1, tests_per_product: 2, bugs_per_test: 2 }).await;
    let product = first_product(&sim).await;
    let test = page_of(&sim, product, 1, 25).await[0];
    let bugs = bugs_of(&sim, &[test]).await;
    let target = bugs[1]["id"].as_i64().unwrap();
    let odd = json!({ "id": target, "severity": "cosmic", "steps": 42 });
    sim.set_faults(Faults { bug_overrides: [(target, odd.clone())].into(), ..Faults::default() });

    let bugs = bugs_of(&sim, &[test]).await;
    assert_eq!(bugs[1], odd);
    assert_eq!(bugs[0]["test"]["id"], test, "the others are rendered as usual");
}

#[tokio::test]
async fn an_added_test_gets_a_fresh_id_and_its_end_at_decides_its_place() {
    let sim = sim_with(Shape { products: 2, tests_per_product: 5, bugs_per_test: 0 }).await;
    let product = first_product(&sim).await;
    let before = page_of(&sim, product, 1, 25).await;
    let (largest, second_end) =
        sim.read(TOKEN, |a| (*a.tests.keys().max().unwrap(), a.tests_of(product)[1].end_at)).unwrap();

    let mut added = 0;
    let end_at = second_end + chrono::Duration::minutes(1);
    sim.modify(TOKEN, |a| added = a.add_test(product, "running", end_at));
    assert!(added > largest, "{added} is not above every test id of the account");

    let after = page_of(&sim, product, 1, 25).await;
    assert_eq!(after.len(), before.len() + 1);
    assert_eq!(after[1], added, "just above the former second");
    let test = test_by_id(&sim, added).await;
    assert_eq!(test["status"], "running");
    assert_eq!(at(test["end_at"].as_str().unwrap()), end_at);
    assert_eq!(test["product"]["id"], product);
}

#[tokio::test]
async fn a_test_moves_when_its_end_at_changes_and_shows_its_new_status_everywhere() {
    let sim = sim_with(Shape { products: 1, tests_per_product: 6, bugs_per_test: 0 }).await;
    let product = first_product(&sim).await;
    let before = page_of(&sim, product, 1, 25).await;
    let last = *before.last().unwrap();
    let top_end = at(test_by_id(&sim, before[0]).await["end_at"].as_str().unwrap());

    sim.modify(TOKEN, |a| {
        a.set_test_end_at(last, top_end + chrono::Duration::days(2));
        a.set_test_status(last, "locked");
    });
    let after = page_of(&sim, product, 1, 25).await;
    assert_eq!(after[0], last, "the oldest test ends last now: first in the list");
    assert_eq!(&after[1..], &before[..before.len() - 1]);
    assert_eq!(test_by_id(&sim, last).await["status"], "locked");
    let listed = body(get(&sim, TOKEN, &format!("products/{product}/exploratory_tests?page=1")).await).await;
    assert_eq!(listed["exploratory_tests"][0]["status"], "locked");
}

#[tokio::test]
async fn a_deleted_test_is_gone_with_its_bugs() {
    let sim = sim_with(Shape { products: 1, tests_per_product: 4, bugs_per_test: 3 }).await;
    let product = first_product(&sim).await;
    let before = page_of(&sim, product, 1, 25).await;
    assert_eq!(bugs_of(&sim, &[before[1]]).await.len(), 3);

    sim.modify(TOKEN, |a| a.delete_test(before[1]));
    let after = page_of(&sim, product, 1, 25).await;
    assert_eq!(after, [before[0], before[2], before[3]]);
    assert_eq!(get(&sim, TOKEN, &format!("exploratory_tests/{}", before[1])).await.status(), 404);
    assert!(bugs_of(&sim, &[before[1]]).await.is_empty());
    assert_eq!(sim.read(TOKEN, |a| a.bugs.values().filter(|b| b.test_id == before[1]).count()), Some(0));
    assert_eq!(bugs_of(&sim, &[before[0], before[2]]).await.len(), 6, "the other tests keep theirs");
}

#[tokio::test]
async fn bugs_can_be_added_change_status_and_disappear() {
    let sim = sim_with(Shape { products: 1, tests_per_product: 2, bugs_per_test: 2 }).await;
    let product = first_product(&sim).await;
    let test = page_of(&sim, product, 1, 25).await[0];
    let largest = sim.read(TOKEN, |a| *a.bugs.keys().max().unwrap()).unwrap();

    let mut added = 0;
    sim.modify(TOKEN, |a| added = a.add_bug(test, "forwarded"));
    assert!(added > largest);
    let bugs = bugs_of(&sim, &[test]).await;
    assert_eq!(bugs.len(), 3);
    let new = bugs.iter().find(|b| b["id"] == added).unwrap();
    assert_eq!(new["status"], "forwarded");
    assert_eq!(new["test"]["id"], test);

    sim.modify(TOKEN, |a| a.set_bug_status(added, "accepted"));
    let bugs = bugs_of(&sim, &[test]).await;
    assert_eq!(bugs.iter().find(|b| b["id"] == added).unwrap()["status"], "accepted");

    let first = bugs[0]["id"].as_i64().unwrap();
    sim.modify(TOKEN, |a| a.delete_bug(first));
    let left: Vec<i64> = bugs_of(&sim, &[test]).await.iter().map(|b| b["id"].as_i64().unwrap()).collect();
    assert_eq!(left.len(), 2);
    assert!(!left.contains(&first));
}

#[tokio::test]
async fn products_can_be_added_and_deleted_with_their_tests_and_bugs() {
    let sim = sim_with(Shape { products: 2, tests_per_product: 3, bugs_per_test: 1 }).await;
    let mut product = 0;
    sim.modify(TOKEN, |a| product = a.add_product("Checkout app"));
    let products = body(get(&sim, TOKEN, "products").await).await;
    let listed = products["products"].as_array().unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().any(|p| p["id"] == product && p["name"] == "Checkout app"));
    assert!(page_of(&sim, product, 1, 25).await.is_empty(), "a new product has no tests yet");

    let end_at = at("2027-01-01T10:00:00+01:00");
    let mut test = 0;
    let mut bug = 0;
    sim.modify(TOKEN, |a| {
        test = a.add_test(product, "initialized", end_at);
        bug = a.add_bug(test, "forwarded");
    });
    assert_eq!(page_of(&sim, product, 1, 25).await, [test]);

    let other = first_product(&sim).await;
    let others = page_of(&sim, other, 1, 25).await;
    sim.modify(TOKEN, |a| a.delete_product(product));
    assert_eq!(get(&sim, TOKEN, &format!("products/{product}")).await.status(), 404);
    assert_eq!(get(&sim, TOKEN, &format!("products/{product}/exploratory_tests")).await.status(), 404);
    assert_eq!(get(&sim, TOKEN, &format!("exploratory_tests/{test}")).await.status(), 404);
    assert!(bugs_of(&sim, &[test]).await.is_empty());
    assert_eq!(sim.read(TOKEN, |a| a.bugs.contains_key(&bug)), Some(false));
    assert_eq!(page_of(&sim, other, 1, 25).await, others, "other products keep their tests");
}

#[tokio::test]
async fn a_hundred_thousand_tests_page_deep_in_list_order_and_follow_changes() {
    let sim = sim_with(Shape { products: 4, tests_per_product: 25_000, bugs_per_test: 3 }).await;
    let product = ids(get(&sim, TOKEN, "products").await, "products").await[2];
    let expected: Vec<i64> = sim.read(TOKEN, |a| a.tests_of(product).iter().map(|t| t.id).collect()).unwrap();
    assert_eq!(expected.len(), 25_000);

    let deep = page_of(&sim, product, 900, 25).await;
    assert_eq!(deep, expected[22_475..22_500]);
    assert_eq!(page_of(&sim, product, 1000, 25).await.len(), 25);
    assert!(page_of(&sim, product, 1001, 25).await.is_empty());
    assert_eq!(page_of(&sim, product, 200, 100).await, expected[19_900..20_000]);
    assert_eq!(bugs_of(&sim, &deep[..2]).await.len(), 6);

    let newest = at(test_by_id(&sim, expected[0]).await["end_at"].as_str().unwrap());
    let mut added = 0;
    sim.modify(TOKEN, |a| added = a.add_test(product, "initialized", newest + chrono::Duration::hours(1)));
    assert_eq!(page_of(&sim, product, 1, 25).await[0], added);
    assert_eq!(page_of(&sim, product, 900, 25).await, expected[22_474..22_499], "everything moved down by one");
}

#[tokio::test]
async fn evolving_adds_a_test_on_top_advances_a_status_and_accepts_a_bug() {
    let sim = sim_with(Shape { products: 2, tests_per_product: 10, bugs_per_test: 2 }).await;
    let mut evolution = None;
    sim.modify(TOKEN, |a| evolution = Some(a.evolve(7)));
    let evolution = evolution.unwrap();

    let new_test = test_by_id(&sim, evolution.new_test.expect("a new test")).await;
    assert_eq!(new_test["status"], "initialized");
    let product = new_test["product"]["id"].as_i64().unwrap();
    assert_eq!(page_of(&sim, product, 1, 25).await[0], new_test["id"], "on top of its product");

    let (advanced, status) = evolution.advanced_test.expect("an advanced test");
    assert_eq!(test_by_id(&sim, advanced).await["status"], status);
    assert_ne!(advanced, new_test["id"]);

    let accepted = evolution.accepted_bug.expect("an accepted bug");
    let test = sim.read(TOKEN, |a| a.bugs[&accepted].test_id).unwrap();
    let bugs = bugs_of(&sim, &[test]).await;
    assert_eq!(bugs.iter().find(|b| b["id"] == accepted).unwrap()["status"], "accepted");
}

#[tokio::test]
async fn start_on_serves_on_the_given_address() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let sim = Simulator::start_on(free).await.unwrap();
    assert_eq!(sim.base_url, format!("http://{free}/customer/v2/"));
    sim.add_account(TOKEN, Account::generate(1, Shape { products: 2, tests_per_product: 1, bugs_per_test: 0 }));
    assert_eq!(ids(get(&sim, TOKEN, "products").await, "products").await.len(), 2);

    let taken = Simulator::start_on(free).await;
    assert!(taken.is_err(), "an address in use is an error, not a panic");
    sim.stop().await;

    let wildcard = Simulator::start_on("0.0.0.0:0".parse().unwrap()).await.unwrap();
    assert!(wildcard.base_url.starts_with("http://127.0.0.1:"), "a reachable base URL: {}", wildcard.base_url);
    assert_eq!(get(&wildcard, TOKEN, "products").await.status(), 401);
}
