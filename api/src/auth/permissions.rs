//! The permission table: the one place that says what each role may do.

use entity::tenant_users::Role;

/// Something a member may be allowed to do in a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// See the tenant and its members.
    ReadTenant,
    /// Rename the tenant or change its slug.
    UpdateTenant,
    DeleteTenant,
    /// Change roles, remove members, invite, revoke invitations.
    ManageMembers,
    ManageApiKeys,
    /// See the plan, the subscription and what the tenant uses of its limits.
    ReadBilling,
    /// Subscribe, change or cancel (Checkout and the customer portal).
    ManageBilling,
    ManageTestioConnection,
    ReadAuditLogs,
    TriggerSync,
    ReadSyncedData,
}

/// Whether `role` grants `permission`.
pub const fn allows(role: Role, permission: Permission) -> bool {
    use Permission::*;
    match permission {
        ReadTenant | ReadSyncedData => true,
        TriggerSync => matches!(role, Role::Owner | Role::Admin | Role::Member),
        UpdateTenant | ManageMembers | ManageApiKeys | ManageTestioConnection | ReadAuditLogs | ReadBilling => {
            matches!(role, Role::Owner | Role::Admin)
        }
        DeleteTenant | ManageBilling => matches!(role, Role::Owner),
    }
}

/// Whether a member with role `actor` may give someone role `target` (by invitation, role change or API key), or act
/// on someone who has it. Owners may do anything; admins may handle admins, members and viewers but never owners;
/// nobody else manages roles.
pub const fn may_manage_role(actor: Role, target: Role) -> bool {
    match actor {
        Role::Owner => true,
        Role::Admin => !matches!(target, Role::Owner),
        Role::Member | Role::Viewer => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_grows_with_the_role() {
        use Permission::*;
        let all = [
            ReadTenant,
            UpdateTenant,
            DeleteTenant,
            ManageMembers,
            ManageApiKeys,
            ReadBilling,
            ManageBilling,
            ManageTestioConnection,
            ReadAuditLogs,
            TriggerSync,
            ReadSyncedData,
        ];
        let count = |role| all.iter().filter(|p| allows(role, **p)).count();
        assert_eq!(count(Role::Owner), all.len());
        assert!(count(Role::Owner) > count(Role::Admin));
        assert!(count(Role::Admin) > count(Role::Member));
        assert!(count(Role::Member) > count(Role::Viewer));
        assert!(!allows(Role::Admin, DeleteTenant) && !allows(Role::Admin, ManageBilling));
        assert!(allows(Role::Member, TriggerSync) && !allows(Role::Viewer, TriggerSync));
        assert!(allows(Role::Viewer, ReadSyncedData));
    }

    #[test]
    fn admins_never_touch_owners() {
        assert!(may_manage_role(Role::Owner, Role::Owner));
        assert!(may_manage_role(Role::Admin, Role::Admin));
        assert!(!may_manage_role(Role::Admin, Role::Owner));
        assert!(!may_manage_role(Role::Member, Role::Viewer));
    }
}
