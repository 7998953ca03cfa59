//! The configuration shape Didomi's HubSpot integration posts, accepted as-is: one call with a
//! fresh authorization code connects the portal and saves a contacts mapping.

use serde::{Deserialize, Serialize};

use crate::connect::install::{InstallError, connect_portal};
use crate::console::{configs, schemas};
use crate::deps::Deps;
use crate::domain::{
    Connection, ConnectionConfig, FieldMapping, FieldType, MatchKey, ObjectConfig, ObjectType, PropertyDef, Secret,
    TenantId, VersionedConfig, WriteMode,
};
use crate::http::ApiError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DidomiConfig {
    pub type_id: String,
    pub authentication: DidomiAuthentication,
    #[serde(default)]
    pub mappings: Vec<DidomiMapping>,
    /// `true`: create missing contacts; `false`: only update existing ones.
    #[serde(default = "yes")]
    pub upsert_mode: bool,
    #[serde(default)]
    pub app_id: Option<String>,
    #[serde(default)]
    pub enable_webhooks: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DidomiAuthentication {
    pub code: String,
}

/// `id`: the platform's field; `value`: the HubSpot contact property it fills.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DidomiMapping {
    pub id: String,
    pub value: String,
}

#[derive(Debug, Serialize)]
pub struct ConnectResult {
    pub connection: Connection,
    pub config: VersionedConfig,
}

impl From<InstallError> for ApiError {
    fn from(err: InstallError) -> Self {
        match err {
            InstallError::PortalClaimed(_) => ApiError::Conflict(err.to_string()),
            InstallError::HubSpotUnavailable => ApiError::HubSpot(err.to_string()),
            InstallError::Internal(detail) => ApiError::Internal(detail),
            other => ApiError::BadRequest(other.to_string()),
        }
    }
}

pub async fn connect(deps: &Deps, tenant: &TenantId, request: DidomiConfig) -> Result<ConnectResult, ApiError> {
    if request.type_id != "hubspot" {
        return Err(ApiError::BadRequest(format!(
            "type_id is `{}`; this API only connects `hubspot`",
            request.type_id
        )));
    }
    let code = request.authentication.code.trim();
    if code.is_empty() || code.len() > 512 {
        return Err(ApiError::BadRequest("authentication.code must be a HubSpot authorization code".into()));
    }
    let connection = connect_portal(deps, tenant, &Secret::new(code)).await?;

    let contacts = schemas::refresh(deps, &connection, &[ObjectType::Contacts]).await?;
    let properties = contacts.get(&ObjectType::Contacts).map(|s| s.properties.as_slice()).unwrap_or_default();
    let fields = request.mappings.iter().map(|m| mapping(m, properties)).collect();
    let mut config = ConnectionConfig::default();
    config.objects.insert(
        ObjectType::Contacts,
        ObjectConfig {
            match_key: MatchKey::Email,
            write_mode: if request.upsert_mode { WriteMode::Upsert } else { WriteMode::UpdateOnly },
            fields,
            lists: vec![],
        },
    );
    config.options.webhooks_enabled = request.enable_webhooks;
    let current = configs::get(deps, &connection).await?;
    let saved = configs::save(deps, &connection, &VersionedConfig { version: current.version, config }).await?;
    Ok(ConnectResult { connection, config: saved })
}

/// Didomi's mappings carry no types: the platform field takes the HubSpot property's type, so
/// only a missing or read-only property can make the mapping invalid.
fn mapping(m: &DidomiMapping, properties: &[PropertyDef]) -> FieldMapping {
    let property = properties.iter().find(|p| p.name == m.value);
    let (platform_type, values) = match property {
        Some(p) if p.value_type == "bool" => (FieldType::Boolean, vec![]),
        Some(p) if p.value_type == "enumeration" => {
            let mut options = p.options.clone();
            options.sort();
            if options == ["false", "true"] {
                (FieldType::Boolean, vec![])
            } else {
                (FieldType::Enumeration, p.options.clone())
            }
        }
        Some(p) if p.value_type == "number" => (FieldType::Number, vec![]),
        Some(p) if p.value_type == "date" => (FieldType::Date, vec![]),
        Some(p) if p.value_type == "datetime" => (FieldType::Datetime, vec![]),
        _ => (FieldType::String, vec![]),
    };
    FieldMapping { values, ..FieldMapping::out(&m.id, &m.value, platform_type) }
}
