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
}

impl AuditAction {
    /// The dotted name stored in `audit_logs.action`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// What `audit_logs.resource_type` names for this action; `resource_id` is that resource's id.
    pub fn resource_type(self) -> &'static str {
        use AuditAction::*;
        match self {
            UserRegister
            | UserEmailVerify
            | UserPasswordChange
            | UserPlatformAdminGrant
            | UserPlatformAdminRevoke
            | AuthLogin
            | AuthLogout
            | AuthRefreshTokenReuse => "user",
            TenantCreate | TenantUpdate | TenantDelete | BootstrapCreate | MirrorReset => "tenant",
            MemberRoleChange | MemberRemove | MemberLeave => "member",
            InvitationCreate | InvitationRevoke | InvitationAccept => "invitation",
            ApiKeyCreate | ApiKeyRevoke => "api_key",
            TestioConnectionCreate
            | TestioConnectionReplace
            | TestioConnectionDelete
            | TestioConnectionNeedsToken
            | TestioConnectionBaseUrlNotAllowed => "testio_connection",
            SyncRunRequest => "sync_run",
        }
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
                name.starts_with(action.resource_type())
                    || name.starts_with("auth.")
                    || name.starts_with("bootstrap.")
                    || name.starts_with("mirror."),
                "{name}"
            );
        }
    }
}
