//! A portal's property schema: what mappings are checked against, and the properties hubsync
//! creates (such as the counter a HubSpot workflow increments to ask for a pull).

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::client::HubSpotClient;
use super::error::HubSpotError;
use super::lenient;
use crate::domain::{ObjectType, Secret};

/// A HubSpot property definition, reduced to what sync needs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Property {
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub name: String,
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub label: String,
    /// HubSpot's `type`: `bool`, `enumeration`, `date`, `datetime`, `string`, `number`,
    /// `phone_number`, and others on the read side.
    #[serde(rename = "type", default, deserialize_with = "lenient::or_default")]
    pub property_type: String,
    /// HubSpot's `fieldType`: `select`, `radio`, `checkbox` (multi-select, `;`-joined), `text`...
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub field_type: String,
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub group_name: String,
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub options: Vec<PropertyOption>,
    /// Computed by HubSpot: never a write target.
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub calculated: bool,
    /// Values are unique across records: usable as an upsert `idProperty`.
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub has_unique_value: bool,
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub hubspot_defined: bool,
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub hidden: bool,
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub modification_metadata: ModificationMetadata,
}

impl Property {
    /// Read-only values and calculated properties cannot be written.
    pub fn is_read_only(&self) -> bool {
        self.modification_metadata.read_only_value || self.calculated
    }
}

/// One allowed value of an enumeration property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyOption {
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub label: String,
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub value: String,
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub hidden: bool,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient::opt_text")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_order: Option<i64>,
}

/// What may be changed about a property.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModificationMetadata {
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub read_only_value: bool,
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub read_only_definition: bool,
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub archivable: bool,
}

/// A property to create. `options` are required for enumerations; `has_unique_value` cannot
/// be changed afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyCreate {
    pub name: String,
    pub label: String,
    #[serde(rename = "type")]
    pub property_type: String,
    pub field_type: String,
    pub group_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<PropertyOption>,
    pub has_unique_value: bool,
}

#[derive(Deserialize)]
struct PropertiesBody {
    #[serde(default, deserialize_with = "lenient::or_default")]
    results: Vec<Property>,
}

/// The property schema of one object type in one portal.
#[derive(Debug, Clone, Copy)]
pub struct Properties<'a> {
    client: &'a HubSpotClient,
    token: &'a Secret,
    object: ObjectType,
}

impl HubSpotClient {
    pub fn properties<'a>(&'a self, token: &'a Secret, object: ObjectType) -> Properties<'a> {
        Properties { client: self, token, object }
    }

    /// Shorthand for `properties(token, object).list()`.
    pub async fn list_properties(&self, token: &Secret, object: ObjectType) -> Result<Vec<Property>, HubSpotError> {
        self.properties(token, object).list().await
    }

    /// Shorthand for `properties(token, object).create(property)`.
    pub async fn create_property(
        &self,
        token: &Secret,
        object: ObjectType,
        property: &PropertyCreate,
    ) -> Result<Property, HubSpotError> {
        self.properties(token, object).create(property).await
    }
}

impl Properties<'_> {
    /// Every property of the object (HubSpot does not page this list).
    pub async fn list(&self) -> Result<Vec<Property>, HubSpotError> {
        let op = format!("list {} properties", self.object);
        let segments = self.client.paths.properties(self.object);
        let reply = self.client.call_with_token(&op, self.token, Method::GET, &segments, None, &[]).await?;
        let body: PropertiesBody = reply.json(&op)?;
        Ok(body.results)
    }

    /// Creates a property. A name already taken is [`HubSpotError::Conflict`].
    pub async fn create(&self, property: &PropertyCreate) -> Result<Property, HubSpotError> {
        let op = format!("create a {} property", self.object);
        let body = serde_json::to_value(property).map_err(|e| HubSpotError::Setup(e.to_string()))?;
        let segments = self.client.paths.properties(self.object);
        self.client.call_with_token(&op, self.token, Method::POST, &segments, Some(&body), &[]).await?.json(&op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hubspot_property_definitions() {
        let body: PropertiesBody = serde_json::from_str(
            r#"{"results":[
                {"updatedAt":"2019-10-30T03:30:17.883Z","createdAt":"2019-08-06T02:41:52.016Z","name":"hs_lead_status","label":"Lead Status","type":"enumeration","fieldType":"radio","description":"The contact's sales status","groupName":"sales_properties","options":[{"label":"New","value":"NEW","displayOrder":0,"hidden":false},{"label":"Open","value":"OPEN","displayOrder":1,"hidden":false}],"displayOrder":-1,"calculated":false,"externalOptions":false,"hasUniqueValue":false,"hidden":false,"hubspotDefined":true,"modificationMetadata":{"archivable":true,"readOnlyDefinition":true,"readOnlyValue":false},"formField":true},
                {"name":"hs_object_id","label":"Record ID","type":"number","fieldType":"number","groupName":"contactinformation","options":[],"calculated":false,"hasUniqueValue":true,"hubspotDefined":true,"modificationMetadata":{"readOnlyValue":true}},
                {"name":"weird","options":null,"calculated":null}
            ]}"#,
        )
        .unwrap();
        let [status, id, weird] = &body.results[..] else { panic!() };
        assert_eq!(status.property_type, "enumeration");
        assert_eq!(status.field_type, "radio");
        assert_eq!(status.options.iter().map(|o| o.value.as_str()).collect::<Vec<_>>(), ["NEW", "OPEN"]);
        assert!(status.hubspot_defined && !status.is_read_only());
        assert!(id.is_read_only() && id.has_unique_value);
        assert!(weird.options.is_empty() && !weird.calculated);
    }

    #[test]
    fn create_body_uses_hubspot_names() {
        let create = PropertyCreate {
            name: "tier".into(),
            label: "Tier".into(),
            property_type: "enumeration".into(),
            field_type: "select".into(),
            group_name: "contactinformation".into(),
            description: None,
            options: vec![PropertyOption {
                label: "Gold".into(),
                value: "gold".into(),
                hidden: false,
                description: None,
                display_order: Some(0),
            }],
            has_unique_value: false,
        };
        let json = serde_json::to_value(&create).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"name":"tier","label":"Tier","type":"enumeration","fieldType":"select","groupName":"contactinformation","options":[{"label":"Gold","value":"gold","hidden":false,"displayOrder":0}],"hasUniqueValue":false})
        );
    }
}
