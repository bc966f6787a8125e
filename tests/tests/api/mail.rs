//! Email verification and the two mailers (file outbox, SMTP), and the promise that no secret reaches the log: a
//! real API process is driven through registration, verification, invitations and sign-ins while its log is captured.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use tests::smtp_sink::SmtpSink;
use tests::{TestApp, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_new_account_is_unverified_until_it_follows_the_link_mailed_to_it() {
    let app = spawn_app().await;
    let ann = app.register_unverified("ann@example.com").await;
    let me: Value = app.get_me(&ann).await.json().await.unwrap();
    assert_eq!(me["user"]["email_verified"], false);
    assert_eq!(me["user"]["email_verified_at"], Value::Null);

    let mails = app.outbox.to("ann@example.com");
    assert_eq!(mails.len(), 1, "one verification mail, as an .eml file in the outbox");
    let token = app.outbox.verification_token("ann@example.com").unwrap();
    assert!(
        mails[0].contains(&format!("{}/v1/auth/verify-email?token={token}", "http://127.0.0.1:8080")),
        "{}",
        mails[0]
    );
    let verified = app.get_verify_email(&token).await;
    assert_eq!(verified.status(), 200);
    assert_eq!(verified.json::<Value>().await.unwrap()["email"], "ann@example.com");
    let me: Value = app.get_me(&ann).await.json().await.unwrap();
    assert_eq!(me["user"]["email_verified"], true);
    assert!(me["user"]["email_verified_at"].is_string());

    let again = app.post_verify_email(&token).await;
    assert_eq!(again.status(), 409, "a link works once");
    let unknown = app.post_verify_email("ev_made_up").await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(unknown.json::<Value>().await.unwrap()["code"], "not_found");
    let audit = app.audit_log(uuid::Uuid::nil()).await;
    let [verification] = audit.of("user.email_verify")[..] else {
        panic!("one user.email_verify row expected: {audit:?}")
    };
    assert_eq!((verification.outcome.as_str(), verification.target_id.clone()), ("success", Some(ann.id.to_string())));
}

#[tokio::test]
async fn an_unverified_user_cannot_accept_an_invitation_until_verified() {
    let app = spawn_app().await;
    let owner = app.register("owner@example.com").await;
    let tenant = app.create_tenant(&owner, "acme").await;
    let invited = app.invite(&owner, tenant, "bob@example.com", "admin").await;
    let token = invited["token"].as_str().unwrap().to_owned();
    let invitation_mail = app.outbox.to("bob@example.com").pop().expect("the invitation was mailed");
    assert!(invitation_mail.contains(&token), "the mail carries the accept link");

    // Whoever registers the invited address first cannot use the invitation without its mailbox.
    let bob = app.register_unverified("bob@example.com").await;
    let refused = app.post_accept_invitation(&bob, &token).await;
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "email_not_verified");
    assert!(body["detail"].as_str().unwrap().contains("Verify your email address"), "{body}");
    let members: Value = app.get_members(&owner, tenant).await.json().await.unwrap();
    assert_eq!(members.as_array().unwrap().len(), 1);

    app.verify_email("bob@example.com").await;
    let accepted = app.post_accept_invitation(&bob, &token).await;
    assert_eq!(accepted.status(), 200);
}

#[tokio::test]
async fn a_new_link_replaces_the_old_one_links_expire_and_resending_is_limited() {
    let app = spawn_app().await;
    let ann = app.register_unverified("ann@example.com").await;
    let first = app.outbox.verification_token(&ann.email).unwrap();
    let resent = app.post_verification_email(&ann).await;
    assert_eq!(resent.status(), 202);
    assert!(resent.json::<Value>().await.unwrap()["expires_at"].is_string());
    let second = app.outbox.verification_token(&ann.email).unwrap();
    assert_ne!(first, second);
    assert_eq!(app.get_verify_email(&first).await.status(), 410, "replaced");

    app.sql("UPDATE email_verifications SET expires_at = now() - interval '1 second'").await;
    assert_eq!(app.get_verify_email(&second).await.status(), 410, "expired");

    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(app.post_verification_email(&ann).await.status());
    }
    assert_eq!(statuses, [202, 202, 429], "three an hour, the first resend included");
    app.verify_email(&ann.email).await;
    let done = app.post_verification_email(&ann).await;
    assert_eq!(done.status(), 409, "already verified");
}

#[tokio::test]
async fn the_smtp_mailer_delivers_the_link_and_refuses_clear_text_to_a_remote_server() {
    let sink = SmtpSink::start().await;
    let app = spawn_app_with(|s| {
        s.mail_transport = api::config::MailTransport::Smtp;
        s.smtp_url = Some(format!("smtp://127.0.0.1:{}", sink.port).into());
    })
    .await;
    let ann = app.register_unverified("ann@example.com").await;
    let received = sink.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].recipients, ["ann@example.com"]);
    let (headers, body) = tests::app::parse_eml(&received[0].data);
    assert!(headers.contains("Subject: Verify your email address"), "{headers}");
    let start = body.find("token=").unwrap() + "token=".len();
    let token = body[start..].split_whitespace().next().unwrap();
    assert_eq!(app.get_verify_email(token).await.status(), 200);
    let me: Value = app.get_me(&ann).await.json().await.unwrap();
    assert_eq!(me["user"]["email_verified"], true);
    assert!(app.outbox.messages().is_empty(), "nothing went to the file outbox");

    let db = tests::TestDatabase::migrated().await;
    let mut settings = tests::app::test_settings(&db);
    settings.mail_transport = api::config::MailTransport::Smtp;
    settings.smtp_url = Some("smtp://mail.example.com:25".to_owned().into());
    let refused =
        api::startup::Application::build(settings).await.err().expect("a clear-text remote SMTP server was accepted");
    assert!(format!("{refused:#}").contains("TLS"), "{refused:#}");
}

/// The API run as a child process (see [`no_secret_reaches_the_log`]): serves on a free port, prints `PORT=<port>`,
/// logs as the binary does, at the level `RUST_LOG` says (`trace`: everything every library logs).
#[tokio::test]
#[ignore = "run as a child process by no_secret_reaches_the_log"]
async fn child_api_process() {
    let Ok(database_url) = std::env::var("CHILD_DATABASE_URL") else { return };
    common::telemetry::init(common::settings::LogFormat::Json);
    let mut settings = tests::app::test_settings_for(&database_url);
    settings.mail_outbox_dir = std::env::var("CHILD_OUTBOX").unwrap().into();
    let app = api::startup::Application::build(settings).await.unwrap();
    println!("PORT={}", app.port());
    app.run_until_stopped().await.unwrap();
}

#[tokio::test]
async fn no_secret_reaches_the_log() {
    let db = tests::TestDatabase::migrated().await;
    let outbox =
        tests::app::Outbox(std::env::temp_dir().join(format!("testio-outbox-{}", uuid::Uuid::new_v4().simple())));
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["mail::child_api_process", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env("CHILD_DATABASE_URL", db.runtime_url())
        .env("CHILD_OUTBOX", &outbox.0)
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // The whole log is read as it comes (a full pipe would stall the child), and the port is picked out of it.
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut log = String::new();
        for line in stdout.lines().map_while(Result::ok) {
            if let Some(port) = line.trim().strip_prefix("PORT=") {
                let _ = port_tx.send(port.parse::<u16>().unwrap());
            }
            log.push_str(&line);
            log.push('\n');
        }
        log
    });
    let port = port_rx.recv_timeout(std::time::Duration::from_secs(60)).expect("the child API did not start");
    let app = TestApp::served_by(port, db, outbox);
    let password = "a very secret password 1";
    let mut secrets: Vec<String> = vec![password.to_owned()];
    let mut tokens_of = |body: &Value| {
        for key in ["access_token", "refresh_token"] {
            secrets.push(body["tokens"][key].as_str().unwrap().to_owned());
        }
    };
    let owner = app.post_register(json!({ "email": "owner@example.com", "name": "O", "password": password })).await;
    let owner: Value = owner.json().await.unwrap();
    tokens_of(&owner);
    let owner_token = owner["tokens"]["access_token"].as_str().unwrap().to_owned();
    let verification = app.outbox.verification_token("owner@example.com").unwrap();
    assert_eq!(app.get_verify_email(&verification).await.status(), 200);
    let tenant: Value =
        app.post_tenants(&owner_token, json!({ "name": "Acme", "slug": "acme" })).await.json().await.unwrap();
    let tenant = tenant["id"].as_str().unwrap().to_owned();
    let invitation: Value =
        app.post_invitation(&owner_token, &tenant, "bob@example.com", "owner").await.json().await.unwrap();
    let key: Value = app.post_api_key(&owner_token, &tenant, "ci", "viewer").await.json().await.unwrap();
    let bob = app.post_register(json!({ "email": "bob@example.com", "name": "B", "password": password })).await;
    let bob: Value = bob.json().await.unwrap();
    tokens_of(&bob);
    let bob_verification = app.outbox.verification_token("bob@example.com").unwrap();
    let bob_token = bob["tokens"]["access_token"].as_str().unwrap().to_owned();
    let invitation_token = invitation["token"].as_str().unwrap();
    assert_eq!(app.post_accept_invitation(&bob_token, invitation_token).await.status(), 403);
    assert_eq!(app.post_verify_email(&bob_verification).await.status(), 200);
    assert_eq!(app.post_accept_invitation(&bob_token, invitation_token).await.status(), 200);
    let wrong = app.post_login(json!({ "email": "bob@example.com", "password": "wrong but secret 2" })).await;
    assert_eq!(wrong.status(), 401);
    secrets.extend([
        "wrong but secret 2".to_owned(),
        verification,
        bob_verification,
        invitation["token"].as_str().unwrap().to_owned(),
        invitation["accept_url"].as_str().unwrap().to_owned(),
        key["secret"].as_str().unwrap().to_owned(),
        "verify-email?token=".to_owned(),
        "invitations/accept?token=".to_owned(),
        "please confirm".to_owned(),
        "You are invited".to_owned(),
    ]);

    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    let log = reader.join().unwrap();
    assert!(log.contains("\"mail sent\""), "the mailer logged its sends (so the log was captured): {log}");
    assert!(log.contains("\"kind\":\"invitation\"") && log.contains(invitation["invitation"]["id"].as_str().unwrap()));
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "the log contains {secret:?}");
    }
}

#[tokio::test]
async fn a_verification_link_followed_many_times_at_once_works_exactly_once() {
    let app = spawn_app().await;
    let ann = app.register_unverified("ann@example.com").await;
    let token = app.outbox.verification_token(&ann.email).unwrap();
    let attempts = (0..12).map(|_| app.post_verify_email(&token));
    let statuses: Vec<u16> =
        futures_util::future::join_all(attempts).await.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 11, "{statuses:?}");
    let audit = app.audit_log(uuid::Uuid::nil()).await;
    assert_eq!(audit.of("user.email_verify").len(), 1, "{audit:?}");
}
