use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The HubSpot CRM objects hubsync reads and writes. Contacts, companies and deals are synced
/// ([`ObjectType::ALL`]); line items are only read, for the deals they belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectType {
    Contacts,
    Companies,
    Deals,
    LineItems,
}

impl ObjectType {
    /// The objects a connection can sync.
    pub const ALL: [ObjectType; 3] = [ObjectType::Contacts, ObjectType::Companies, ObjectType::Deals];

    /// The name HubSpot uses in paths (`/crm/objects/2026-09/contacts`).
    pub fn api_name(self) -> &'static str {
        match self {
            ObjectType::Contacts => "contacts",
            ObjectType::Companies => "companies",
            ObjectType::Deals => "deals",
            ObjectType::LineItems => "line_items",
        }
    }

    /// HubSpot's object type id (`0-1`), used by the lists API and generic webhooks.
    pub fn type_id(self) -> &'static str {
        match self {
            ObjectType::Contacts => "0-1",
            ObjectType::Companies => "0-2",
            ObjectType::Deals => "0-3",
            ObjectType::LineItems => "0-8",
        }
    }

    /// The property HubSpot updates on every change: contacts differ from the others.
    pub fn last_modified_property(self) -> &'static str {
        match self {
            ObjectType::Contacts => "lastmodifieddate",
            ObjectType::Companies | ObjectType::Deals | ObjectType::LineItems => "hs_lastmodifieddate",
        }
    }
}

impl fmt::Display for ObjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.api_name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown object type `{0}`: expected contacts, companies or deals")]
pub struct UnknownObjectType(pub String);

impl FromStr for ObjectType {
    type Err = UnknownObjectType;

    /// Accepts the plural name, the singular name and the type id, as HubSpot does.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "contacts" | "contact" | "0-1" => Ok(ObjectType::Contacts),
            "companies" | "company" | "0-2" => Ok(ObjectType::Companies),
            "deals" | "deal" | "0-3" => Ok(ObjectType::Deals),
            "line_items" | "line_item" | "0-8" => Ok(ObjectType::LineItems),
            other => Err(UnknownObjectType(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_spelling_hubspot_uses() {
        for t in ObjectType::ALL {
            assert_eq!(t.api_name().parse::<ObjectType>(), Ok(t));
            assert_eq!(t.type_id().parse::<ObjectType>(), Ok(t));
        }
        assert_eq!("deal".parse::<ObjectType>(), Ok(ObjectType::Deals));
        assert!("tickets".parse::<ObjectType>().is_err());
    }
}
