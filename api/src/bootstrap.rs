//! Zero-configuration start: with `TESTIO_TOKEN` set and no user in the database yet, the API creates a default
//! tenant, its owner (also a platform admin) with a random password, and the tenant's TestIO connection, so that the
//! worker starts syncing at once. The credentials are printed once to standard error, never logged. Once any user
//! exists this does nothing, so restarts are harmless.

use std::time::Duration;

use anyhow::{Context, bail};
use common::token_cipher::TokenKeys;
use entity::audit::{self, Actor, AuditAction, Event, Origin};
use entity::tenant_users::{self, Role};
use entity::testio_connections::{self, NewConnection};
use entity::{TenantId, TenantTxn, tenants, users};
use secrecy::ExposeSecret;
use testio::allowlist::AllowedBaseUrls;
use testio::client::{ClientSettings, Endpoint, TestioClient, normalize_base_url};

use crate::config::Settings;

/// What was created.
pub struct Bootstrapped {
    pub tenant_id: TenantId,
    pub email: String,
    pub password: String,
}

/// Runs the bootstrap if `TESTIO_TOKEN` is set and the database has no user; `None` when there was nothing to do.
pub async fn run(settings: &Settings) -> anyhow::Result<Option<Bootstrapped>> {
    let Some(token) = settings.testio_token.clone().filter(|t| !t.expose_secret().trim().is_empty()) else {
        return Ok(None);
    };
    let db = entity::db::connect(settings.database_url.expose_secret(), &settings.pool())
        .await
        .context("Failed to configure the database pool")?;
    common::role_check::verify_at_startup(&db, Duration::from_secs(settings.database_startup_timeout_secs)).await?;
    if users::any(&db).await.context("Failed to count users")? {
        tracing::info!("TESTIO_TOKEN is set but users exist: skipping the zero-config bootstrap");
        return Ok(None);
    }
    let keys =
        TokenKeys::from_config(settings.testio_token_keys.as_ref()).context("Failed to read TESTIO_TOKEN_KEYS")?;
    if !keys.is_configured() {
        bail!("TESTIO_TOKEN is set but TESTIO_TOKEN_KEYS is not: the token cannot be stored (see README)");
    }
    let base_url = normalize_base_url(&settings.testio_base_url).map_err(|e| anyhow::anyhow!("TESTIO_BASE_URL {e}"))?;
    let allowed: AllowedBaseUrls = settings
        .testio_allowed_base_urls
        .parse()
        .map_err(|e| anyhow::anyhow!("Failed to read TESTIO_ALLOWED_BASE_URLS: {e}"))?;
    if !allowed.permits(&base_url) {
        bail!("TESTIO_BASE_URL {base_url} is not in TESTIO_ALLOWED_BASE_URLS ({allowed}): the token is not sent there");
    }
    let client = TestioClient::new(ClientSettings::default(), tokio_util::sync::CancellationToken::new())?;
    let endpoint = Endpoint { base_url: base_url.clone(), token: token.clone() };
    client
        .verify_token(&endpoint)
        .await
        .map_err(|e| anyhow::anyhow!("TESTIO_TOKEN was not accepted by {base_url}: {e}"))?;

    let email = settings.bootstrap_admin_email.clone();
    let password = crate::auth::secrets::random_secret()[..24].to_owned();
    let hash = crate::auth::password::PasswordHasher::new(1, Duration::from_secs(60))
        .hash(password.clone())
        .await
        .map_err(|e| anyhow::anyhow!("Failed to hash the admin's password: {e}"))?;
    let tenant_id = TenantId(uuid::Uuid::now_v7());
    let txn = TenantTxn::begin(&db, tenant_id).await.context("Failed to begin a transaction")?;
    let user = users::create(&txn, users::NewUser { email: &email, name: "Admin", password_hash: Some(hash) })
        .await
        .context("Failed to create the admin")?;
    let user = users::set_platform_admin(&txn, user, true).await.context("Failed to make the admin")?;
    // The operator chose this address: there is no one else to prove it to.
    let user = users::mark_email_verified(&txn, user).await.context("Failed to verify the admin's email")?;
    tenants::create_with_id(&txn, tenant_id, "Default", "default")
        .await
        .context("Failed to create the default tenant")?;
    tenant_users::add(&txn, user.id, &user.email, Role::Owner).await.context("Failed to add the owner")?;
    let sealed = keys.seal(tenant_id, &token).map_err(|e| anyhow::anyhow!("Failed to seal the token: {e}"))?;
    let new = NewConnection {
        base_url: base_url.to_string(),
        token: sealed,
        token_last4: testio_connections::last4(&token),
        saved_by: Some(user.id),
        sync_interval_secs: None,
    };
    testio_connections::connect(&txn, new).await.context("Failed to connect TestIO and queue the first sync")?;
    let event = Event::new(AuditAction::BootstrapCreate, Actor::system())
        .on(tenant_id)
        .metadata(serde_json::json!({ "admin_email": email, "base_url": base_url.as_str() }));
    audit::record(&txn, event, &Origin::default()).await.context("Failed to audit the bootstrap")?;
    txn.commit().await.context("Failed to commit the bootstrap")?;
    db.close().await.context("Failed to close the pool")?;
    tracing::info!(tenant_id = %tenant_id, "zero-config bootstrap done; credentials printed to standard error");
    Ok(Some(Bootstrapped { tenant_id, email, password }))
}

/// The one-time banner with the admin's credentials.
pub fn print(b: &Bootstrapped, public_url: &str) {
    eprintln!(
        "\n=== TestIO Hub bootstrapped (shown once) ===\n  tenant: Default ({})\n  admin:  {}\n  password: {}\n  \
         sign in: POST {public_url}/v1/auth/login   docs: {public_url}/docs/\n============================================\n",
        b.tenant_id, b.email, b.password
    );
}
