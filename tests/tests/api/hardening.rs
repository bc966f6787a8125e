//! Defence in depth: the `tenants` table guards itself against the runtime role, API-key prefixes tell keys apart,
//! and names and emails cannot hide what they say.

use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::{Value, json};
use tests::{TestApp, spawn_app};

/// Runs `sql` as the runtime role in a transaction bound to `tenant` (or to none), committing if it succeeds.
async fn as_runtime(app: &TestApp, tenant: Option<uuid::Uuid>, sql: &str) -> Result<u64, String> {
    let db = app.db.connect_runtime().await;
    let txn = db.begin().await.unwrap();
    if let Some(tenant) = tenant {
        txn.execute_unprepared(&format!("SELECT set_config('app.tenant_id', '{tenant}', true)")).await.unwrap();
    }
    let result = txn.execute_unprepared(sql).await.map(|r| r.rows_affected()).map_err(|e| e.to_string());
    if result.is_ok() {
        txn.commit().await.unwrap();
    }
    result
}

#[tokio::test]
async fn the_runtime_role_changes_or_deletes_a_tenant_only_inside_that_tenants_transaction() {
    let app = spawn_app().await;
    let alice = app.register("alice@example.com").await;
    let a = app.create_tenant(&alice, "alpha").await;
    let bob = app.register("bob@example.com").await;
    let b = app.create_tenant(&bob, "beta").await;
    app.add_member(&bob, b, "carol@example.com", "admin").await;
    app.create_api_key(&bob, b, "k", "viewer").await;
    let db = &app.db;
    let rows_of_b = || async move {
        (
            db.count(&format!("SELECT count(*) FROM tenant_users WHERE tenant_id = '{b}'")).await,
            db.count(&format!("SELECT count(*) FROM api_keys WHERE tenant_id = '{b}'")).await,
        )
    };
    assert_eq!(rows_of_b().await, (2, 1));

    for (bound, sql) in [
        (None, format!("DELETE FROM tenants WHERE id = '{b}'")),
        (Some(a), format!("DELETE FROM tenants WHERE id = '{b}'")),
        (None, format!("UPDATE tenants SET name = 'pwned' WHERE id = '{b}'")),
        (Some(a), format!("UPDATE tenants SET plan = 'enterprise' WHERE id = '{b}'")),
        (None, "DELETE FROM tenants".to_owned()),
    ] {
        let refused = as_runtime(&app, bound, &sql).await;
        assert!(refused.as_ref().is_err_and(|e| e.contains("inside its own transaction")), "{sql}: {refused:?}");
    }
    assert_eq!(rows_of_b().await, (2, 1), "nothing cascaded");
    assert_eq!(db.count(&format!("SELECT count(*) FROM tenants WHERE id = '{b}' AND name = 'beta'")).await, 1);

    // The scheduler's cross-tenant path: due times and leases only.
    assert_eq!(
        as_runtime(&app, None, &format!("UPDATE tenants SET sync_due_at = now() WHERE id = '{b}'")).await,
        Ok(1)
    );
    assert_eq!(as_runtime(&app, Some(b), &format!("UPDATE tenants SET name = 'Beta' WHERE id = '{b}'")).await, Ok(1));
    // And the API, which binds the tenant, still deletes its own.
    let deleted = app.delete_tenant(&bob, b).await;
    assert_eq!(deleted.status(), 204);
    assert_eq!(rows_of_b().await, (0, 0));
    assert_eq!(db.count(&format!("SELECT count(*) FROM tenants WHERE id = '{a}'")).await, 1);
}

#[tokio::test]
async fn keys_made_in_the_same_moment_show_different_prefixes_that_start_their_secret() {
    let app = spawn_app().await;
    let ann = app.register("ann@example.com").await;
    let tenant = app.create_tenant(&ann, "acme").await;
    let mut prefixes = std::collections::HashSet::new();
    for i in 0..3 {
        let created = app.post_api_key(&ann, tenant, &format!("k{i}"), "viewer").await;
        let created: Value = created.json().await.unwrap();
        let prefix = created["api_key"]["prefix"].as_str().unwrap().to_owned();
        assert!(created["secret"].as_str().unwrap().starts_with(&prefix));
        assert_eq!(prefix.len(), "thk_".len() + 12, "{prefix}");
        prefixes.insert(prefix);
    }
    assert_eq!(prefixes.len(), 3, "{prefixes:?}");
}

#[tokio::test]
async fn names_and_emails_with_invisible_or_direction_changing_characters_are_refused() {
    let app = spawn_app().await;
    let register = |email: &str, name: &str| {
        app.post_register(json!({ "email": email, "name": name, "password": "long enough password" }))
    };
    for (email, name, field) in [
        ("ann@example.com", "Admin\u{202e}gnp.exe", "name"),
        ("ann@example.com", "Ann\u{200b}", "name"),
        ("a\u{200b}nn@example.com", "Ann", "email"),
        ("ann@exa\u{202e}mple.com", "Ann", "email"),
    ] {
        let r = register(email, name).await;
        assert_eq!(r.status(), 422, "{email:?} {name:?}");
        assert_eq!(r.json::<Value>().await.unwrap()["errors"][0]["field"], field);
    }
    let ann = app.register("ann@example.com").await;
    let r = app.post_tenants(&ann, json!({ "name": "Acme\u{202e}", "slug": "acme" })).await;
    assert_eq!(r.status(), 422);
    let tenant = app.create_tenant(&ann, "acme").await;
    let r = app.post_api_key(&ann, tenant, "ci\u{2066}", "viewer").await;
    assert_eq!(r.status(), 422);
    let r = app.post_invitation(&ann, tenant, "b\u{200d}ob@example.com", "viewer").await;
    assert_eq!(r.status(), 422);
}

#[tokio::test]
async fn emails_are_stored_nfkc_normalised_with_a_lower_cased_domain() {
    let app = spawn_app().await;
    // Fullwidth letters (a compatibility form) and an upper-case domain.
    let body = json!({ "email": "\u{ff21}nn@Example.COM", "name": "Ann", "password": "long enough password" });
    let created = app.post_register(body).await;
    assert_eq!(created.status(), 201);
    assert_eq!(created.json::<Value>().await.unwrap()["user"]["email"], "Ann@example.com");
    let again = app.post_register(json!({ "email": "ann@EXAMPLE.com", "name": "A", "password": "another password" }));
    assert_eq!(again.await.status(), 409, "the same address in another form is the same account");
    let login = app.post_login(json!({ "email": "\u{ff41}nn@example.com", "password": "long enough password" }));
    assert_eq!(login.await.status(), 200);
}
