//! Response bodies shared by several resources, and the reads that build them.

use anyhow::Context;
use chrono::{DateTime, Utc};
use entity::sync_runs::{self, SyncStatus, SyncTrigger};
use entity::tenant_users::{self, Role};
use entity::{TenantId, UserId, UserTxn, tenants, users};
use serde::Serialize;
use utoipa::ToSchema;

pub use crate::auth::session::TokenPair;
use crate::error::ApiError;
use crate::state::AppState;

/// A user as shown to themselves.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub avatar_url: Option<String>,
    pub is_platform_admin: bool,
    /// Whether the user proved they hold the mailbox of `email` (needed to accept invitations).
    pub email_verified: bool,
    pub email_verified_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

impl From<users::Model> for UserView {
    fn from(u: users::Model) -> Self {
        Self {
            id: u.id,
            email: u.email,
            name: u.name,
            avatar_url: u.avatar_url,
            is_platform_admin: u.is_platform_admin,
            email_verified: u.email_verified_at.is_some(),
            email_verified_at: u.email_verified_at,
            created_at: u.created_at,
            last_login_at: u.last_login_at,
        }
    }
}

/// A tenant (organisation).
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    pub id: TenantId,
    pub name: String,
    pub slug: String,
    pub plan: tenants::Plan,
    pub subscription_status: Option<String>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<tenants::Model> for TenantView {
    fn from(t: tenants::Model) -> Self {
        Self {
            id: t.id,
            name: t.name,
            slug: t.slug,
            plan: t.plan,
            subscription_status: t.subscription_status,
            active: t.active,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// A tenant together with the caller's role in it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MembershipView {
    pub tenant: TenantView,
    pub role: Role,
}

impl MembershipView {
    /// The tenants `user` belongs to, read through the own-memberships policy.
    pub async fn all_of(state: &AppState, user: UserId) -> Result<Vec<Self>, ApiError> {
        let txn = UserTxn::begin(&state.db, user).await.context("Failed to begin the user transaction")?;
        let rows = tenant_users::memberships_of(&txn).await.context("Failed to read the memberships")?;
        txn.commit().await.context("Failed to commit")?;
        let found = tenants::find_many(&state.db, rows.iter().map(|m| m.tenant_id).collect())
            .await
            .context("Failed to read the tenants")?;
        Ok(found
            .into_iter()
            .filter_map(|t| {
                let role = rows.iter().find(|m| m.tenant_id == t.id)?.role;
                Some(Self { tenant: t.into(), role })
            })
            .collect())
    }
}

/// Created, changed and deleted rows of one kind.
#[derive(Serialize, ToSchema)]
pub struct ChangeCounts {
    pub new: i32,
    pub updated: i32,
    pub deleted: i32,
}

/// Gaps: parts of TestIO a run could not read (recorded and retried by later runs), and earlier gaps it closed.
#[derive(Serialize, ToSchema)]
pub struct GapCounts {
    pub opened: i32,
    pub resolved: i32,
}

#[derive(Serialize, ToSchema)]
pub struct SyncRunView {
    pub id: uuid::Uuid,
    pub trigger: SyncTrigger,
    /// A full run reads every product's whole history and every test's bugs.
    pub full: bool,
    pub status: SyncStatus,
    pub requested_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// From start to finish, in milliseconds.
    pub duration_ms: Option<i64>,
    /// Requests made to TestIO.
    pub requests: i32,
    /// Pages (and single items) written to the mirror.
    pub pages: i32,
    /// Products listed by TestIO.
    pub products: i32,
    pub tests: ChangeCounts,
    pub bugs: ChangeCounts,
    pub gaps: GapCounts,
    /// Why the run failed or was interrupted.
    pub error: Option<String>,
    /// Pages of product test lists the run read (its share of the rolling verification included).
    pub list_pages_read: i32,
    /// Pages of all the tenant's product test lists: what a full run reads.
    pub list_pages_total: i32,
    /// Products whose share of the rolling verification (or whole list, on a full run) the run read without a gap.
    pub products_verified: i32,
    /// When the run ended, every change TestIO had made before this time was in the mirror; `null` until every
    /// product's list has been verified once.
    pub verified_through: Option<DateTime<Utc>>,
    /// Products TestIO listed that the tenant's plan does not mirror (what was mirrored of them is kept, not updated;
    /// a plan with more products mirrors them again).
    pub skipped_product_ids: Vec<i64>,
}

impl From<sync_runs::Model> for SyncRunView {
    fn from(r: sync_runs::Model) -> Self {
        Self {
            id: r.id,
            trigger: r.trigger,
            full: r.full_sync,
            status: r.status,
            requested_by: r.requested_by,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            duration_ms: r.started_at.zip(r.finished_at).map(|(s, f)| (f - s).num_milliseconds()),
            requests: r.requests,
            pages: r.pages,
            products: r.products,
            tests: ChangeCounts { new: r.tests_new, updated: r.tests_updated, deleted: r.tests_deleted },
            bugs: ChangeCounts { new: r.bugs_new, updated: r.bugs_updated, deleted: r.bugs_deleted },
            gaps: GapCounts { opened: r.gaps_opened, resolved: r.gaps_resolved },
            error: r.error,
            list_pages_read: r.list_pages_read,
            list_pages_total: r.list_pages_total,
            products_verified: r.products_verified,
            verified_through: r.verified_through,
            skipped_product_ids: serde_json::from_value(r.skipped_product_ids).unwrap_or_default(),
        }
    }
}
