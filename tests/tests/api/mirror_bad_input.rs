//! Bad input to the query API (issue 12): every malformed, out-of-range, unknown or forged parameter is a 400
//! problem+json (`invalid_query_parameter`) whose `detail` names the parameter; nothing is ever a 500; LIKE and regex
//! characters in `q` are matched literally (200, not 400).

use futures_util::StreamExt;
use serde_json::Value;
use tests::mirror::{MirrorFixture, at, ids, query, rfc3339, try_get};

/// What a refused request must look like; `None` when it does, else what was wrong.
async fn refusal(f: &MirrorFixture, tenant: uuid::Uuid, path: &str, names: &[&str]) -> Option<String> {
    let response = f.app.get_mirror(&f.owner, tenant, path).await;
    let status = response.status().as_u16();
    let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap_or("").to_owned());
    let body = response.text().await.unwrap_or_default();
    let problem: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let detail = problem["detail"].as_str().unwrap_or("");
    let mut wrong = Vec::new();
    if status != 400 {
        wrong.push(format!("status {status}"));
    }
    if content_type.as_deref() != Some("application/problem+json") {
        wrong.push(format!("content-type {content_type:?}"));
    }
    if problem["status"] != 400 {
        wrong.push(format!("body status {}", problem["status"]));
    }
    if problem["code"] != "invalid_query_parameter" {
        wrong.push(format!("code {}", problem["code"]));
    }
    if !names.iter().any(|name| detail.contains(name)) {
        wrong.push(format!("the detail does not name {}", names.join(" or ")));
    }
    (!wrong.is_empty()).then(|| format!("GET {path}: {} — body: {body}", wrong.join(", ")))
}

/// Checks every `(path, names)` on `tenant`, reporting every failure at once.
async fn assert_refused(f: &MirrorFixture, tenant: uuid::Uuid, cases: Vec<(String, Vec<&str>)>) {
    let total = cases.len();
    let failures: Vec<String> = futures_util::stream::iter(cases)
        .map(|(path, names)| async move { refusal(f, tenant, &path, &names).await })
        .buffer_unordered(4)
        .filter_map(|r| async move { r })
        .collect()
        .await;
    assert!(
        failures.is_empty(),
        "{} of {total} bad requests were not refused as the contract says:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn case(path: &str, names: &[&'static str]) -> (String, Vec<&'static str>) {
    (path.to_owned(), names.to_vec())
}

async fn malformed_unknown_and_out_of_range_parameters_are_400_naming_the_parameter(f: &MirrorFixture) {
    let (h1, h5) = (rfc3339(at(24)), rfc3339(at(5 * 24)));
    let long_q = "a".repeat(10_000);
    let q201 = "b".repeat(201);
    let q201_wide = "é".repeat(201);
    let mut cases = vec![
        // Enumerations.
        case("tests?status=bogus", &["status"]),
        case("tests?status=running,bogus", &["status"]),
        case("tests?status=running&status=bogus", &["status"]),
        case("tests?testing_type=bogus", &["testing_type"]),
        case("bugs?severity=bogus", &["severity"]),
        case("bugs?severity=low,blocker", &["severity"]),
        case("bugs?status=bogus", &["status"]),
        case("bugs?status=running", &["status"]),
        case("bugs?known=maybe", &["known"]),
        case("bugs?known=yes", &["known"]),
        // Ids.
        case("tests?product_id=abc", &["product_id"]),
        case("tests?product_id=1.5", &["product_id"]),
        case("tests?product_id=101,abc", &["product_id"]),
        case("tests?product_id=99999999999999999999", &["product_id"]),
        case("bugs?test_id=abc", &["test_id"]),
        case("bugs?product_id=x", &["product_id"]),
        // Limits and pages.
        case("tests?limit=0", &["limit"]),
        case("tests?limit=201", &["limit"]),
        case("tests?limit=100000", &["limit"]),
        case("tests?limit=-1", &["limit"]),
        case("tests?limit=abc", &["limit"]),
        case("tests?limit=1e3", &["limit"]),
        case("bugs?limit=0", &["limit"]),
        case("bugs?limit=100000", &["limit"]),
        case("products?limit=0", &["limit"]),
        case("products?limit=201", &["limit"]),
        case("tests?page=0", &["page"]),
        case("tests?page=-1", &["page"]),
        case("tests?per_page=0", &["per_page"]),
        case("tests?per_page=201", &["per_page"]),
        case("tests?page=1&per_page=100000", &["per_page"]),
        case("bugs?page=1&per_page=201", &["per_page"]),
        case("products?per_page=0", &["per_page"]),
        // Past 10,000 rows: use the cursor.
        case("tests?page=201&per_page=50", &["page"]),
        case("tests?page=10001&per_page=1", &["page"]),
        case("bugs?page=51&per_page=200", &["page"]),
        // Ranges: inverted, malformed, not a date-time with an offset.
        (format!("tests?{}", enc(&[("start_from", &h5), ("start_to", &h1)])), vec!["start_from", "start_to"]),
        (format!("tests?{}", enc(&[("end_from", &h5), ("end_to", &h1)])), vec!["end_from", "end_to"]),
        (
            format!("bugs?{}", enc(&[("reported_from", &h5), ("reported_to", &h1)])),
            vec!["reported_from", "reported_to"],
        ),
        case("tests?start_from=not-a-date", &["start_from"]),
        case("tests?end_to=2026-13-01T00:00:00Z", &["end_to"]),
        case("tests?start_to=2026-10-01T25:00:00Z", &["start_to"]),
        case("tests?start_from=2026-10-01", &["start_from"]),
        case("tests?end_from=2026-10-01T00:00:00", &["end_from"]),
        case("tests?end_from=1727740800", &["end_from"]),
        case("bugs?reported_from=yesterday", &["reported_from"]),
        case("bugs?reported_to=2026-02-30T00:00:00Z", &["reported_to"]),
        // Text.
        case("tests?q=", &["q"]),
        case("tests?q=%20%20%20", &["q"]),
        case("bugs?q=", &["q"]),
        (format!("tests?{}", enc(&[("q", &long_q)])), vec!["q"]),
        (format!("bugs?{}", enc(&[("q", &long_q)])), vec!["q"]),
        (format!("tests?{}", enc(&[("q", &q201)])), vec!["q"]),
        (format!("tests?{}", enc(&[("q", &q201_wide)])), vec!["q"]),
        // Sorts.
        case("tests?sort=bogus", &["sort"]),
        case("tests?sort=reported_at", &["sort"]),
        case("tests?sort=--title", &["sort"]),
        case("tests?sort=id", &["sort"]),
        case("tests?sort=", &["sort"]),
        case("bugs?sort=end_at", &["sort"]),
        case("bugs?sort=bogus", &["sort"]),
        case("products?sort=title", &["sort"]),
        case("products?sort=bogus", &["sort"]),
        // Includes.
        case("tests?include=other", &["include"]),
        case("bugs?include=raws", &["include"]),
        case("products?include=counts", &["include"]),
        // Parameters that do not exist (here).
        case("tests?foo=bar", &["foo"]),
        case("tests?Status=running", &["Status"]),
        case("tests?severity=low", &["severity"]),
        case("bugs?testing_type=coverage", &["testing_type"]),
        case("bugs?foo=1", &["foo"]),
        case("products?status=running", &["status"]),
        case("products?q=shop", &["q"]),
    ];
    // Each list also refuses an unknown parameter next to valid ones.
    cases.push(case("tests?status=running&sort=title&limit=5&bogus_param=1", &["bogus_param"]));
    assert_refused(f, f.main, cases).await;
}

fn enc(pairs: &[(&str, &str)]) -> String {
    query("", pairs).trim_start_matches('?').to_owned()
}

/// A cursor with one character changed in the middle (to another character of the same alphabet).
fn flip(cursor: &str) -> String {
    let mut chars: Vec<char> = cursor.chars().collect();
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

async fn next_cursor(f: &MirrorFixture, tenant: uuid::Uuid, path: &str) -> String {
    let page = try_get(&f.app, &f.owner, tenant, path).await.unwrap();
    page["next_cursor"].as_str().unwrap_or_else(|| panic!("GET {path}: no next_cursor in {page}")).to_owned()
}

async fn forged_foreign_and_reused_cursors_are_400_naming_the_cursor(f: &MirrorFixture) {
    let tests_cursor = next_cursor(f, f.main, "tests?sort=title&status=archived,running&limit=2").await;
    let bugs_cursor = next_cursor(f, f.main, "bugs?limit=2").await;
    let products_cursor = next_cursor(f, f.main, "products?limit=1").await;
    let other_tenants = next_cursor(f, f.other, "tests?sort=title&status=archived,running&limit=1").await;

    // The cursor works with what it was made for (and another limit).
    let base = [("sort", "title"), ("status", "archived,running")];
    for limit in ["2", "3"] {
        let mut params = base.to_vec();
        params.extend([("limit", limit), ("cursor", tests_cursor.as_str())]);
        let page = try_get(&f.app, &f.owner, f.main, &query("tests", &params)).await;
        assert!(page.is_ok(), "the cursor was refused with its own list, sort and filters: {page:?}");
    }
    // The repeated form of the same filter is the same filter.
    let repeated = query(
        "tests",
        &[("sort", "title"), ("status", "archived"), ("status", "running"), ("cursor", tests_cursor.as_str())],
    );
    let repeated = try_get(&f.app, &f.owner, f.main, &repeated).await;
    assert!(repeated.is_ok(), "the cursor was refused with the repeated form of its own filter: {repeated:?}");

    let with = |extra: &[(&str, &str)], cursor: &str| {
        let mut params: Vec<(&str, &str)> = extra.to_vec();
        params.push(("cursor", cursor));
        params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>()
    };
    let tests_list = |params: Vec<(String, String)>| {
        let borrowed: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        query("tests", &borrowed)
    };
    let truncated = &tests_cursor[..tests_cursor.len() - 4];
    let extended = format!("{tests_cursor}AAAA");
    let cursor_only = vec!["cursor"];
    let cases: Vec<(String, Vec<&str>)> = vec![
        // Forged or damaged.
        (tests_list(with(&base, &flip(&tests_cursor))), cursor_only.clone()),
        (tests_list(with(&base, truncated)), cursor_only.clone()),
        (tests_list(with(&base, &extended)), cursor_only.clone()),
        (tests_list(with(&base, "not-a-cursor")), cursor_only.clone()),
        (tests_list(with(&base, "AAAA")), cursor_only.clone()),
        (tests_list(with(&base, &"A".repeat(5000))), cursor_only.clone()),
        // Another sort, another direction, the default sort.
        (tests_list(with(&[("sort", "-title"), ("status", "archived,running")], &tests_cursor)), cursor_only.clone()),
        (tests_list(with(&[("sort", "end_at"), ("status", "archived,running")], &tests_cursor)), cursor_only.clone()),
        (tests_list(with(&[("status", "archived,running")], &tests_cursor)), cursor_only.clone()),
        // Other filters: fewer, more, different.
        (tests_list(with(&[("sort", "title")], &tests_cursor)), cursor_only.clone()),
        (tests_list(with(&[("sort", "title"), ("status", "archived")], &tests_cursor)), cursor_only.clone()),
        (
            tests_list(with(
                &[("sort", "title"), ("status", "archived,running"), ("product_id", "101")],
                &tests_cursor,
            )),
            cursor_only.clone(),
        ),
        (
            tests_list(with(&[("sort", "title"), ("status", "archived,running"), ("q", "checkout")], &tests_cursor)),
            cursor_only.clone(),
        ),
        (
            tests_list(with(
                &[("sort", "title"), ("status", "archived,running"), ("end_from", "2026-10-01T00:00:00Z")],
                &tests_cursor,
            )),
            cursor_only.clone(),
        ),
        // Another list.
        (query("bugs", &[("cursor", tests_cursor.as_str())]), cursor_only.clone()),
        (query("products", &[("cursor", tests_cursor.as_str())]), cursor_only.clone()),
        (query("tests", &[("cursor", bugs_cursor.as_str())]), cursor_only.clone()),
        (query("bugs", &[("cursor", products_cursor.as_str())]), cursor_only.clone()),
        (query("bugs", &[("sort", "-reported_at"), ("cursor", flip(&bugs_cursor).as_str())]), cursor_only.clone()),
        // Another tenant's cursor for the same list, sort and filters (the same user may read both).
        (tests_list(with(&[("sort", "title"), ("status", "archived,running")], &other_tenants)), cursor_only.clone()),
        // A cursor and a page: one or the other.
        (
            tests_list(with(&[("sort", "title"), ("status", "archived,running"), ("page", "1")], &tests_cursor)),
            vec!["cursor", "page"],
        ),
        (
            tests_list(with(&[("sort", "title"), ("status", "archived,running"), ("per_page", "10")], &tests_cursor)),
            vec!["cursor", "per_page", "page"],
        ),
    ];
    assert_refused(f, f.main, cases).await;
    // The main tenant's cursor is refused on the other tenant too.
    let mine_there = tests_list(with(&base, &tests_cursor));
    assert_refused(f, f.other, vec![(mine_there, vec!["cursor"])]).await;
}

/// `%`, `_`, `\` and regex characters in `q` are characters like any other: 200 and a literal substring match.
async fn like_and_regex_characters_in_q_match_literally(f: &MirrorFixture) {
    let texts = |t: &entity::mirror::TestRow| {
        [
            Some(t.title.clone()),
            t.raw["goal_text"].as_str().map(str::to_owned),
            t.raw["instructions_text"].as_str().map(str::to_owned),
        ]
    };
    let qs = [
        "%",
        "_",
        "\\",
        "%%",
        "_%_",
        "\\%",
        "\\\\",
        ".*",
        "[",
        "]",
        "(",
        ")",
        "[a-z]+",
        "(x|y)",
        "^",
        "$",
        "^$",
        "*",
        "?",
        "+",
        "|",
        "{}",
        "'",
        "\"",
        "'; DROP TABLE testio_tests; --",
        "$1",
        "%d",
        "0%",
        "e_s",
        "c:\\",
        ":\\t",
    ];
    let mut failures = Vec::new();
    for q in qs {
        let expected: Vec<i64> = {
            let lower = q.to_lowercase();
            let mut ids: Vec<i64> = f
                .data
                .tests
                .iter()
                .filter(|t| texts(t).iter().flatten().any(|text| text.to_lowercase().contains(&lower)))
                .map(|t| t.testio_id)
                .collect();
            ids.sort_unstable();
            ids
        };
        let path = query("tests", &[("q", q), ("limit", "200")]);
        match try_get(&f.app, &f.owner, f.main, &path).await {
            Err(e) => failures.push(format!("GET {path} (q={q:?}): {e}")),
            Ok(page) => {
                let mut got = ids(&page);
                got.sort_unstable();
                if got != expected {
                    failures.push(format!("GET {path} (q={q:?}): expected {expected:?}, got {got:?}"));
                }
            }
        }
        let bugs = query("bugs", &[("q", q), ("limit", "200")]);
        if let Err(e) = try_get(&f.app, &f.owner, f.main, &bugs).await {
            failures.push(format!("GET {bugs} (q={q:?}): {e}"));
        }
    }
    // 200 characters is allowed, and characters are characters, not bytes; the spaces around count too (the schema's
    // maxLength is about what is sent), but are not searched for.
    for q in ["x".repeat(200), "é".repeat(200), format!("  {}  ", "y".repeat(196))] {
        let path = query("tests", &[("q", &q)]);
        if let Err(e) = try_get(&f.app, &f.owner, f.main, &path).await {
            failures.push(format!("GET tests?q=<{} chars>: {e}", q.chars().count()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Whatever arrives, the answer is never a 500.
async fn nothing_is_a_500(f: &MirrorFixture) {
    let paths = [
        "tests?q=%00",
        "tests?q=a%00b",
        "bugs?q=%00",
        "tests?q=%FF",
        "tests?q=%",
        "tests?%FF=1",
        "tests?limit=",
        "tests?cursor=",
        "tests?cursor=%00",
        "tests?status=",
        "tests?status=running,",
        "tests?status=,",
        "tests?product_id=",
        "tests?product_id=-1",
        "tests?product_id=9223372036854775807",
        "tests?product_id=9223372036854775808",
        "tests?start_from=0001-01-01T00:00:00Z",
        "tests?end_to=9999-12-31T23:59:59Z",
        "tests?start_from=-4713-01-01T00:00:00Z",
        "tests?start_from=294277-01-01T00:00:00Z",
        "tests?end_from=2026-10-01T00:00:00%2B99:00",
        "tests?sort=%00",
        "tests?include=",
        "tests?include=raw&include=raw",
        "tests?page=99999999999999999999",
        "tests?per_page=99999999999999999999",
        "tests?limit=99999999999999999999",
        "tests?page=1&limit=5",
        "tests?a=1&a=2&a=3",
        "bugs?known=",
        "bugs?known=TRUE",
        "bugs?status=auto_accepted,auto_accepted",
        "bugs?reported_from=2026-10-01T00:00:00.123456789Z",
        "tests/abc",
        "tests/-1",
        "tests/0",
        "tests/99999999999999999999",
        "tests/9223372036854775807",
        "bugs/1.5",
        "bugs/%00",
        "products/abc",
        "products/-9223372036854775808",
        "stats?foo=1",
        "tests/1001?include=bogus",
    ];
    let mut failures = Vec::new();
    for path in paths {
        let response = f.app.get_mirror(&f.owner, f.main, path).await;
        let status = response.status().as_u16();
        let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap_or("").to_owned());
        let body = response.text().await.unwrap_or_default();
        if status >= 500 {
            failures.push(format!("GET {path}: {status} {body}"));
        } else if status >= 400 && content_type.as_deref() != Some("application/problem+json") {
            failures.push(format!("GET {path}: {status} as {content_type:?}: {body}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// The entry points: one seeded app each (spawning one is most of a small test's cost).

#[tokio::test]
async fn bad_parameters_and_cursors_are_refused() {
    let f = MirrorFixture::seeded().await;
    malformed_unknown_and_out_of_range_parameters_are_400_naming_the_parameter(&f).await;
    forged_foreign_and_reused_cursors_are_400_naming_the_cursor(&f).await;
}

#[tokio::test]
async fn odd_text_is_literal_and_nothing_is_a_500() {
    let f = MirrorFixture::seeded().await;
    like_and_regex_characters_in_q_match_literally(&f).await;
    nothing_is_a_500(&f).await;
}
