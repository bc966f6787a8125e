//! The harness itself: the settings tests run with are the declared defaults, whatever the environment holds.

use std::process::Command;

/// Variables that would change the tests if the settings read them, with values no default has.
const EXPORTED: [(&str, &str); 5] = [
    ("SYNC_PAGE_SIZE", "7"),
    ("WORKER_CONCURRENCY", "9"),
    ("LOGIN_MAX_FAILURES_PER_IP", "1"),
    ("APP_TRUST_FORWARDED_FOR", "true"),
    ("TESTIO_MAX_ATTEMPTS", "1"),
];

/// The test settings of the app and of the worker, one `Debug` line each.
fn settings_as_built() -> String {
    let url = "postgres://testio_app@127.0.0.1:5432/settings_probe";
    let api = tests::app::test_settings_for(url);
    let worker = tests::sync::worker_settings_for(url);
    format!("API={api:?}\nWORKER={worker:?}\n")
}

/// Not a test of its own: run by [`test_settings_ignore_exported_variables`] in a child process whose environment
/// sets [`EXPORTED`]; prints the settings it builds.
#[test]
#[ignore = "run as a child process by test_settings_ignore_exported_variables"]
fn child_settings_process() {
    if std::env::var_os("CHILD_SETTINGS_PROBE").is_none() {
        return;
    }
    for (name, value) in EXPORTED {
        assert_eq!(std::env::var(name).as_deref(), Ok(value), "the child does not see {name}");
    }
    let api = tests::app::test_settings_for("postgres://x@127.0.0.1/x");
    let worker = tests::sync::worker_settings_for("postgres://x@127.0.0.1/x");
    assert_ne!(api.login_max_failures_per_ip, 1);
    assert!(!api.trust_forwarded_for);
    assert_ne!(worker.page_size, 7);
    assert_ne!(worker.concurrency, 9);
    assert_ne!(worker.max_attempts, 1);
    // After a line break: libtest has just printed "test <name> ... " on this line.
    print!("\n{}", settings_as_built());
}

#[test]
fn test_settings_ignore_exported_variables() {
    let mut child = Command::new(std::env::current_exe().unwrap());
    child.args(["harness::child_settings_process", "--exact", "--ignored", "--nocapture", "--test-threads=1"]);
    child.env("CHILD_SETTINGS_PROBE", "1").envs(EXPORTED);
    let out = child.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the child failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let built: String = stdout
        .lines()
        .filter(|l| l.starts_with("API=") || l.starts_with("WORKER="))
        .map(|l| format!("{l}\n"))
        .collect();
    // This process may have any of them exported too: its settings ignore them just the same.
    assert_eq!(built, settings_as_built(), "the exported variables changed the test settings");
}
