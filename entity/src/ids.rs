//! Id newtypes, so that a user id can never be passed where a tenant id is expected.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
            sea_orm::DeriveValueType, utoipa::ToSchema,
        )]
        #[serde(transparent)]
        #[schema(value_type = String, format = Uuid)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new random (v4) id.
            pub fn new_random() -> Self {
                Self(Uuid::new_v4())
            }
        }

        impl sea_orm::TryFromU64 for $name {
            fn try_from_u64(n: u64) -> Result<Self, sea_orm::DbErr> {
                Uuid::try_from_u64(n).map(Self)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_newtype!(
    /// Identifies a tenant (an organisation); the key of row-level security.
    TenantId
);
id_newtype!(
    /// Identifies a user account.
    UserId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_from_and_print_as_plain_uuids() {
        let raw = "0b7c6f0e-2f55-4b8e-9a53-0d4bb1d2b0c1";
        let id: TenantId = raw.parse().unwrap();
        assert_eq!(id.to_string(), raw);
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{raw}\""));
        assert!("not-a-uuid".parse::<UserId>().is_err());
    }
}
