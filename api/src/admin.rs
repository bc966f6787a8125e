//! Operator commands run from the `api` binary (`api admin ...`), with the same settings and database role as the
//! server. Each change is audited under the platform tenant, in the same transaction.

use std::time::Duration;

use anyhow::{Context, bail};
use entity::audit::{self, Actor, AuditAction, Event, Origin};
use entity::{PLATFORM_TENANT, TenantTxn, users};
use secrecy::ExposeSecret;

use crate::config::Settings;

/// Grants (`grant = true`) or revokes platform admin to the user with `email`.
pub async fn set_platform_admin(settings: &Settings, email: &str, grant: bool) -> anyhow::Result<()> {
    let db = entity::db::connect(settings.database_url.expose_secret(), &settings.pool())
        .await
        .context("Failed to configure the database pool")?;
    common::role_check::verify_at_startup(&db, Duration::from_secs(settings.database_startup_timeout_secs)).await?;
    let txn = TenantTxn::begin(&db, PLATFORM_TENANT).await.context("Failed to begin a transaction")?;
    let Some(user) = users::find_by_email(&txn, email).await.context("Failed to look up the user")? else {
        bail!("no user has the email {email:?}");
    };
    let user = users::set_platform_admin(&txn, user, grant).await.context("Failed to update the user")?;
    let action = if grant { AuditAction::UserPlatformAdminGrant } else { AuditAction::UserPlatformAdminRevoke };
    let event = Event::new(action, Actor::system())
        .on(user.id)
        .metadata(serde_json::json!({ "email": user.email, "via": "cli" }));
    audit::record(&txn, event, &Origin::default()).await.context("Failed to write the audit entry")?;
    txn.commit().await.context("Failed to commit")?;
    tracing::info!(user_id = %user.id, grant, "platform admin updated");
    Ok(())
}
