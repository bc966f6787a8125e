//! The platform-admin CLI.

use serde_json::Value;
use tests::app::test_settings;
use tests::spawn_app;

#[tokio::test]
async fn the_cli_grants_and_revokes_platform_admin_and_audits_it() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let settings = test_settings(&app.db);

    api::admin::set_platform_admin(&settings, "ANN@example.com", true).await.unwrap();
    let me: Value = app.get_me(&ann).await.json().await.unwrap();
    assert_eq!(me["user"]["is_platform_admin"], true);

    api::admin::set_platform_admin(&settings, "ann@example.com", false).await.unwrap();
    let me: Value = app.get_me(&ann).await.json().await.unwrap();
    assert_eq!(me["user"]["is_platform_admin"], false);

    let err = api::admin::set_platform_admin(&settings, "nobody@example.com", true).await.unwrap_err();
    assert!(err.to_string().contains("no user"), "{err}");
    let audit = app.audit_log(uuid::Uuid::nil()).await;
    assert!(audit.has("user.platform_admin_grant", "success"));
    assert!(audit.has("user.platform_admin_revoke", "success"));
}
