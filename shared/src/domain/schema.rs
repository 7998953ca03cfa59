use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{ConnectionId, ObjectType};

/// One HubSpot property, as far as mapping checks need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PropertyDef {
    pub name: String,
    pub label: String,
    /// HubSpot's `type`: bool, enumeration, string, number, date, datetime, phone_number...
    pub value_type: String,
    /// HubSpot's `fieldType`: booleancheckbox, select, radio, checkbox, text, textarea, number...
    pub field_type: String,
    /// Values an enumeration accepts.
    pub options: Vec<String>,
    /// Read-only or calculated by HubSpot: never a write target.
    pub read_only: bool,
    pub unique: bool,
}

/// A portal's property schema for one object, cached so config checks don't call HubSpot each time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PropertySchema {
    pub connection_id: ConnectionId,
    pub object_type: ObjectType,
    pub properties: Vec<PropertyDef>,
    #[serde(with = "time::serde::rfc3339")]
    pub fetched_at: OffsetDateTime,
}
