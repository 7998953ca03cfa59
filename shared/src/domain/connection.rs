use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Generates the small string newtypes that name things: they can't be mixed up by accident.
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                $name(value.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// One customer of the platform.
    TenantId
);
id_type!(
    /// One tenant's link to one HubSpot portal.
    ConnectionId
);

impl ConnectionId {
    /// A new connection's id, from a fresh unique id (see [`crate::ports::IdSource`]).
    pub fn generate(unique: &str) -> Self {
        ConnectionId(format!("conn_{unique}"))
    }
}

/// A HubSpot account id (`hub_id`, `portalId`).
pub type PortalId = u64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    /// Created, OAuth not completed yet.
    Pending,
    /// Syncing.
    Active,
    /// HubSpot refused the refresh token: the tenant must install the app again. Jobs wait, unconsumed.
    NeedsReauth,
    /// Uninstalled or switched off: workers drop its jobs.
    Disabled,
}

impl ConnectionStatus {
    /// Whether workers may call HubSpot for this connection.
    pub fn is_syncing(self) -> bool {
        self == ConnectionStatus::Active
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub id: ConnectionId,
    pub tenant_id: TenantId,
    pub portal_id: PortalId,
    pub status: ConnectionStatus,
    /// Scopes HubSpot granted at install.
    pub scopes: Vec<String>,
    /// The HubSpot user who installed the app, as HubSpot reports it.
    pub installed_by: Option<String>,
    /// The app's id, as HubSpot reports it: its writes show in HubSpot's property history as
    /// `INTEGRATION` changes from this id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<u64>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Moved on by every save: a worker that changes the connection on its own (marking it for
    /// re-authorisation) saves only over the revision it read (`Store::update_connection`).
    #[serde(default)]
    pub revision: u64,
}
