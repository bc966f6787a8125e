//! [`AuditAction`]: every action the audit log records, under the dotted name stored in `audit_logs.action`, with the
//! type of resource it acts on. One list, so a new action cannot be written with a typo, and the audit review can
//! offer the names as an enum.

use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use strum::{EnumIter, EnumString, IntoStaticStr, VariantArray};

/// An audited action. Serialised (and stored) as its dotted name, e.g. `member.role_change`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, IntoStaticStr, EnumString, EnumIter, VariantArray)]
pub enum AuditAction {
    #[strum(serialize = "user.register")]
    UserRegister,
    #[strum(serialize = "user.email_verify")]
    UserEmailVerify,
    /// A new verification link was mailed on request.
    #[strum(serialize = "user.verification_email_send")]
    UserVerificationEmailSend,
    #[strum(serialize = "user.password_change")]
    UserPasswordChange,
    #[strum(serialize = "user.platform_admin_grant")]
    UserPlatformAdminGrant,
    #[strum(serialize = "user.platform_admin_revoke")]
    UserPlatformAdminRevoke,
    #[strum(serialize = "auth.login")]
    AuthLogin,
    #[strum(serialize = "auth.logout")]
    AuthLogout,
    /// A refresh token was exchanged for a new token pair.
    #[strum(serialize = "auth.refresh")]
    AuthRefresh,
    #[strum(serialize = "auth.refresh_token_reuse")]
    AuthRefreshTokenReuse,
    #[strum(serialize = "tenant.create")]
    TenantCreate,
    #[strum(serialize = "tenant.update")]
    TenantUpdate,
    #[strum(serialize = "tenant.delete")]
    TenantDelete,
    /// A tenant (with its owner and TestIO connection) made by the zero-config demo bootstrap.
    #[strum(serialize = "bootstrap.create")]
    BootstrapCreate,
    #[strum(serialize = "member.role_change")]
    MemberRoleChange,
    #[strum(serialize = "member.remove")]
    MemberRemove,
    #[strum(serialize = "member.leave")]
    MemberLeave,
    #[strum(serialize = "invitation.create")]
    InvitationCreate,
    #[strum(serialize = "invitation.revoke")]
    InvitationRevoke,
    #[strum(serialize = "invitation.accept")]
    InvitationAccept,
    #[strum(serialize = "api_key.create")]
    ApiKeyCreate,
    #[strum(serialize = "api_key.revoke")]
    ApiKeyRevoke,
    /// A request with one of the tenant's API keys was refused: a wrong secret, a revoked key, a creator no longer
    /// a member, or a role that does not allow the action (the reason, method and path are in the metadata).
    #[strum(serialize = "api_key.use_denied")]
    ApiKeyUseDenied,
    #[strum(serialize = "testio_connection.create")]
    TestioConnectionCreate,
    #[strum(serialize = "testio_connection.replace")]
    TestioConnectionReplace,
    #[strum(serialize = "testio_connection.delete")]
    TestioConnectionDelete,
    /// The worker found the saved token refused by TestIO and stopped syncing until a new one is saved.
    #[strum(serialize = "testio_connection.needs_token")]
    TestioConnectionNeedsToken,
    /// The worker refused to call a base URL that is not on its allowlist.
    #[strum(serialize = "testio_connection.base_url_not_allowed")]
    TestioConnectionBaseUrlNotAllowed,
    #[strum(serialize = "sync_run.request")]
    SyncRunRequest,
    /// `worker reset-mirror`: the tenant's mirror was emptied by an operator.
    #[strum(serialize = "mirror.reset")]
    MirrorReset,
    /// The tenant's audit log was exported (the format and filters are in the metadata).
    #[strum(serialize = "audit_log.export")]
    AuditLogExport,
    /// The worker purged the events older than the tenant's plan keeps (how many, before when, and where the chain
    /// now starts are in the metadata).
    #[strum(serialize = "audit_log.purge")]
    AuditLogPurge,
    /// A Stripe Checkout session was opened to subscribe the tenant to a plan (the plan is in the metadata).
    #[strum(serialize = "billing.checkout_start")]
    BillingCheckoutStart,
    /// A Stripe customer portal session was opened for the tenant.
    #[strum(serialize = "billing.portal_open")]
    BillingPortalOpen,
    /// The tenant's subscription changed, as Stripe reported it (a webhook event, whose id is in the metadata, or the
    /// reconciliation): the plan, status, period end or cancellation before and after.
    #[strum(serialize = "billing.subscription_update")]
    BillingSubscriptionUpdate,
}

impl AuditAction {
    /// The dotted name stored in `audit_logs.action`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// What `audit_logs.target_type` names for this action; `target_id` is that resource's id.
    pub fn target_type(self) -> &'static str {
        use AuditAction::*;
        match self {
            UserRegister
            | UserEmailVerify
            | UserVerificationEmailSend
            | UserPasswordChange
            | UserPlatformAdminGrant
            | UserPlatformAdminRevoke
            | AuthLogin
            | AuthLogout
            | AuthRefresh
            | AuthRefreshTokenReuse => "user",
            TenantCreate | TenantUpdate | TenantDelete | BootstrapCreate | MirrorReset => "tenant",
            MemberRoleChange | MemberRemove | MemberLeave => "member",
            InvitationCreate | InvitationRevoke | InvitationAccept => "invitation",
            ApiKeyCreate | ApiKeyRevoke | ApiKeyUseDenied => "api_key",
            TestioConnectionCreate
            | TestioConnectionReplace
            | TestioConnectionDelete
            | TestioConnectionNeedsToken
            | TestioConnectionBaseUrlNotAllowed => "testio_connection",
            SyncRunRequest => "sync_run",
            AuditLogExport | AuditLogPurge => "audit_log",
            BillingCheckoutStart | BillingPortalOpen | BillingSubscriptionUpdate => "tenant",
        }
    }
}

impl AuditAction {
    /// Every action name.
    pub fn names() -> Vec<&'static str> {
        <Self as VariantArray>::VARIANTS.iter().map(|a| a.as_str()).collect()
    }

    /// The prefixes a filter may name as `prefix.*` (`member.*`): the first word of every action, once.
    pub fn prefixes() -> Vec<&'static str> {
        let mut prefixes: Vec<&'static str> =
            Self::names().into_iter().filter_map(|n| n.split_once('.').map(|(p, _)| p)).collect();
        prefixes.sort_unstable();
        prefixes.dedup();
        prefixes
    }

    /// The actions a filter value selects: itself if it is an action's name, every action under a prefix for
    /// `prefix.*`; `None` for anything else.
    pub fn selected_by(value: &str) -> Option<Vec<AuditAction>> {
        if let Some(prefix) = value.strip_suffix(".*") {
            let under: Vec<AuditAction> = <Self as VariantArray>::VARIANTS
                .iter()
                .copied()
                .filter(|a| a.as_str().split_once('.').is_some_and(|(p, _)| p == prefix))
                .collect();
            return (!under.is_empty()).then_some(under);
        }
        Self::from_str(value).ok().map(|a| vec![a])
    }

    /// Every target type an action names, once.
    pub fn target_types() -> Vec<&'static str> {
        let mut types: Vec<&'static str> = <Self as VariantArray>::VARIANTS.iter().map(|a| a.target_type()).collect();
        types.sort_unstable();
        types.dedup();
        types
    }
}

impl Serialize for AuditAction {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for AuditAction {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Self::from_str(&name).map_err(|_| serde::de::Error::custom(format!("unknown audit action {name:?}")))
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::AuditAction;

    #[test]
    fn filters_select_a_name_or_everything_under_a_prefix() {
        assert_eq!(AuditAction::selected_by("member.remove"), Some(vec![AuditAction::MemberRemove]));
        let members = AuditAction::selected_by("member.*").unwrap();
        assert_eq!(members.len(), 3);
        assert!(members.iter().all(|a| a.as_str().starts_with("member.")));
        assert_eq!(AuditAction::selected_by("member"), None);
        assert_eq!(AuditAction::selected_by("mem.*"), None);
        assert_eq!(AuditAction::selected_by("*"), None);
        assert!(AuditAction::prefixes().contains(&"auth"));
        assert!(AuditAction::target_types().contains(&"api_key"));
    }

    #[test]
    fn the_stored_name_is_the_serde_name_and_matches_the_schema_check() {
        // The `audit_logs.action` CHECK: lower-case dotted words.
        let shape = |s: &str| {
            s.split('.').count() >= 2
                && s.split('.').all(|w| {
                    w.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                        && w.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                })
        };
        for action in <AuditAction as strum::VariantArray>::VARIANTS {
            let name = action.as_str();
            assert!(shape(name), "{name}");
            assert_eq!(serde_json::to_value(action).unwrap(), serde_json::json!(name));
            assert_eq!(serde_json::from_value::<AuditAction>(serde_json::json!(name)).unwrap(), *action);
            assert!(
                name.starts_with(action.target_type())
                    || name.starts_with("auth.")
                    || name.starts_with("bootstrap.")
                    || name.starts_with("billing.")
                    || name.starts_with("mirror."),
                "{name}"
            );
        }
    }
}
