use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ObjectType;

/// What a tenant chose to sync, and how. Stored with a version for optimistic locking.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionConfig {
    pub objects: BTreeMap<ObjectType, ObjectConfig>,
    #[serde(default)]
    pub options: SyncOptions,
    /// Events sent to the platform when HubSpot records are created or change (conversions...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<super::trigger::Trigger>,
}

/// A config as stored: `version` starts at 1 and grows by one on every successful save.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionedConfig {
    pub version: u64,
    pub config: ConnectionConfig,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectConfig {
    pub match_key: MatchKey,
    pub write_mode: WriteMode,
    pub fields: Vec<FieldMapping>,
    /// Static HubSpot lists (by list id) that pushed records are added to.
    #[serde(default)]
    pub lists: Vec<String>,
    /// The relations to other objects that push messages may carry, written as associations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relations: Vec<super::RelationMapping>,
}

impl ObjectConfig {
    /// The relation to `to` that goes out, if the config has one.
    pub fn relation(&self, to: ObjectType) -> Option<&super::RelationMapping> {
        self.relations.iter().find(|r| r.to == to)
    }

    /// The record's own properties that inbound deliveries read: inbound fields (not those of
    /// an associated record) and the match key, each once.
    pub fn inbound_properties(&self) -> Vec<String> {
        let mut properties: Vec<String> = self
            .fields
            .iter()
            .filter(|f| f.direction.comes_in() && f.from_associated.is_none())
            .map(|f| f.hubspot_property.clone())
            .collect();
        properties.push(self.match_key.property().to_string());
        properties.sort();
        properties.dedup();
        properties
    }
}

/// How a platform record finds its HubSpot record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MatchKey {
    Email,
    /// A HubSpot property with unique values holding the platform's id.
    UniqueProperty {
        property: String,
    },
    CompanyName,
    CompanyDomain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    Upsert,
    UpdateOnly,
    CreateOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Platform → HubSpot.
    Out,
    /// HubSpot → platform.
    In,
    Both,
}

impl Direction {
    pub fn goes_out(self) -> bool {
        matches!(self, Direction::Out | Direction::Both)
    }

    pub fn comes_in(self) -> bool {
        matches!(self, Direction::In | Direction::Both)
    }
}

/// The type of a platform field, checked against the HubSpot property it maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Boolean,
    String,
    Number,
    Date,
    Datetime,
    Enumeration,
}

impl FieldType {
    /// The name used in configs and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Boolean => "boolean",
            FieldType::String => "string",
            FieldType::Number => "number",
            FieldType::Date => "date",
            FieldType::Datetime => "datetime",
            FieldType::Enumeration => "enumeration",
        }
    }
}

impl std::fmt::Display for FieldType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldMapping {
    pub platform_field: String,
    pub hubspot_property: String,
    pub direction: Direction,
    pub platform_type: FieldType,
    /// A platform field computed by the platform: it can only go out.
    #[serde(default)]
    pub computed: bool,
    /// For enumerations: every value the platform field can take. HubSpot must accept each one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// For a contact's inbound field: read `hubspot_property` from the contact's associated
    /// company or deal instead (a user's profile carrying its company's and deal's fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_associated: Option<ObjectType>,
}

impl FieldMapping {
    /// A platform field written to a HubSpot property, platform to HubSpot only, with no
    /// enumeration values, nothing computed and nothing read from an associated record.
    pub fn out(platform_field: &str, hubspot_property: &str, platform_type: FieldType) -> Self {
        FieldMapping {
            platform_field: platform_field.into(),
            hubspot_property: hubspot_property.into(),
            direction: Direction::Out,
            platform_type,
            computed: false,
            values: vec![],
            from_associated: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncOptions {
    pub webhooks_enabled: bool,
    /// Scheduled pulls (enrichment, catch-up) from HubSpot to the platform.
    pub data_in_enabled: bool,
    /// HubSpot number property a workflow increments to ask for a pull (e.g. "Acme Changed").
    pub bidirectional_counter_property: Option<String>,
    /// Requests per 10 s this connection may spend; HubSpot's default for public apps when unset.
    pub rate_limit_per_10s: Option<u32>,
    /// The platform's endpoint that receives HubSpot changes (signed HTTPS POSTs).
    #[serde(default)]
    pub ingest_url: Option<String>,
    /// Which record lifecycle events reach the platform, besides property changes.
    #[serde(default)]
    pub inbound_events: InboundEvents,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InboundEvents {
    pub creations: bool,
    pub deletions: bool,
    pub merges: bool,
    pub restores: bool,
}

impl Default for InboundEvents {
    fn default() -> Self {
        InboundEvents { creations: true, deletions: true, merges: true, restores: true }
    }
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            webhooks_enabled: true,
            data_in_enabled: true,
            bidirectional_counter_property: None,
            rate_limit_per_10s: None,
            ingest_url: None,
            inbound_events: InboundEvents::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_through_json() {
        let mut objects = BTreeMap::new();
        objects.insert(
            ObjectType::Contacts,
            ObjectConfig {
                match_key: MatchKey::UniqueProperty { property: "platform_id".into() },
                write_mode: WriteMode::Upsert,
                fields: vec![FieldMapping {
                    direction: Direction::Both,
                    values: vec!["free".into(), "pro".into()],
                    ..FieldMapping::out("plan", "plan", FieldType::Enumeration)
                }],
                lists: vec![],
                relations: vec![],
            },
        );
        let config = ConnectionConfig { objects, options: SyncOptions::default(), triggers: vec![] };
        let json = serde_json::to_string(&config).unwrap();
        assert!(json.contains(r#""match_key":{"kind":"unique_property","property":"platform_id"}"#));
        assert_eq!(serde_json::from_str::<ConnectionConfig>(&json).unwrap(), config);
    }
}
