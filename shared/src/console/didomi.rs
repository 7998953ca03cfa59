//! The configuration shape Didomi's HubSpot integration posts, accepted as Didomi documents it
//! (developers.didomi.io, "Hubspot" under third-party integrations; support.didomi.io, "How to
//! configure Didomi-Hubspot integration"): one call with a fresh authorization code connects the
//! portal and saves a contacts mapping.
//!
//! What each field means there:
//! - `mappings[].id` is the HubSpot contact property, `mappings[].value` the Didomi attribute (a
//!   purpose, a preference, or a value within a preference) whose choice fills it;
//! - `upsert_mode` (default false): create a contact when none has the user's
//!   `organization_user_id` as its email; otherwise the change is not propagated;
//! - `enable_webhooks`: the bidirectional flow: a "<Platform> Changed" contact property that a
//!   HubSpot workflow increments to send a contact back, and the mapped properties coming in;
//! - `app_id`: the HubSpot account (portal) id, required with the bidirectional flow.
//!
//! Didomi's type rules (a purpose or value, a boolean, only on a property whose options are true
//! and false; a preference, a string, only on single- or multi-line text) are the general type
//! rules of `domain::mapping`, applied with each attribute's type from the field catalogue.

use serde::{Deserialize, Serialize};

use crate::connect::install::{InstallError, connect_portal};
use crate::console::catalogue::{CatalogueSource, for_tenant};
use crate::console::{configs, uninstall};
use crate::deps::Deps;
use crate::domain::{
    Connection, ConnectionConfig, Direction, FieldCatalogue, FieldMapping, FieldType, MatchKey, ObjectConfig,
    ObjectType, Secret, TenantId, VersionedConfig, WriteMode,
};
use crate::http::ApiError;

/// Mappings per request: as many as the OpenAPI document allows.
pub const MAX_MAPPINGS: usize = 500;
const MAX_NAME_LEN: usize = 200;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DidomiConfig {
    pub type_id: String,
    pub authentication: DidomiAuthentication,
    /// Part of Didomi's documented shape; it carries no setting for HubSpot, so it must be empty.
    #[serde(default)]
    pub properties: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub mappings: Vec<DidomiMapping>,
    /// `true`: create missing contacts; `false` (Didomi's default): only update existing ones.
    #[serde(default)]
    pub upsert_mode: bool,
    /// The HubSpot account id the code must connect (a string of digits, as Didomi sends it).
    #[serde(default)]
    pub app_id: Option<String>,
    #[serde(default)]
    pub enable_webhooks: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DidomiAuthentication {
    pub code: String,
}

/// `id`: the HubSpot contact property; `value`: the Didomi attribute that fills it.
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

/// What the request asks for, checked before the code is spent.
struct Checked {
    code: Secret,
    portal_id: Option<u64>,
}

fn check(request: &DidomiConfig) -> Result<Checked, ApiError> {
    let bad = |message: String| Err(ApiError::BadRequest(message));
    if request.type_id != "hubspot" {
        return bad(format!("type_id is `{}`; this API only connects `hubspot`", request.type_id));
    }
    let code = request.authentication.code.trim();
    if code.is_empty() || code.len() > 512 {
        return bad("authentication.code must be a HubSpot authorization code".into());
    }
    if let Some(key) = request.properties.keys().next() {
        return bad(format!("properties.{key} is not a HubSpot setting: send `\"properties\": {{}}`"));
    }
    if request.mappings.len() > MAX_MAPPINGS {
        return bad(format!("{} mappings; at most {MAX_MAPPINGS}", request.mappings.len()));
    }
    for (i, m) in request.mappings.iter().enumerate() {
        let fits = |s: &str| !s.trim().is_empty() && s.chars().count() <= MAX_NAME_LEN;
        if !fits(&m.id) || !fits(&m.value) {
            return bad(format!(
                "mappings[{i}]: `id` (the HubSpot property) and `value` (the Didomi attribute) must be 1 to \
                 {MAX_NAME_LEN} characters"
            ));
        }
    }
    let portal_id = match request.app_id.as_deref().map(str::trim) {
        None | Some("") if request.enable_webhooks => {
            return bad("app_id (your HubSpot account id) is required with `enable_webhooks`: it is the number in \
                        your HubSpot URL, app.hubspot.com/contacts/<account id>"
                .into());
        }
        None | Some("") => None,
        Some(id) => match id.parse::<u64>() {
            Ok(id) => Some(id),
            Err(_) => {
                return bad(format!(
                    "app_id `{id}` is not a HubSpot account id: give the number in your HubSpot URL, \
                     app.hubspot.com/contacts/<account id>"
                ));
            }
        },
    };
    Ok(Checked { code: Secret::new(code), portal_id })
}

pub async fn connect(deps: &Deps, tenant: &TenantId, request: DidomiConfig) -> Result<ConnectResult, ApiError> {
    let checked = check(&request)?;
    let known_before: Vec<u64> = deps.store.list_connections(tenant).await?.iter().map(|c| c.portal_id).collect();
    let connection = connect_portal(deps, tenant, &checked.code).await?;
    match configure(deps, &connection, &request, checked.portal_id).await {
        Ok(config) => Ok(ConnectResult { connection, config }),
        Err(err) => {
            // Nothing half-installed: a portal this call connected for the first time is
            // disconnected again (its code is spent either way; the next try brings a new one).
            if !known_before.contains(&connection.portal_id)
                && let Err(cleanup) = uninstall::uninstall(deps, connection).await
            {
                tracing::warn!(error = %cleanup, "could not disconnect the portal of a refused Didomi config");
            }
            Err(err)
        }
    }
}

async fn configure(
    deps: &Deps,
    connection: &Connection,
    request: &DidomiConfig,
    portal_id: Option<u64>,
) -> Result<VersionedConfig, ApiError> {
    if let Some(expected) = portal_id
        && expected != connection.portal_id
    {
        return Err(ApiError::BadRequest(format!(
            "app_id is {expected}, but the authorization code was granted on HubSpot account {}: install the app \
             on account {expected}, or correct app_id",
            connection.portal_id
        )));
    }
    let found = for_tenant(deps, &connection.tenant_id).await?;
    let catalogue = (found.source != CatalogueSource::None).then_some(&found.catalogue);
    let current = configs::get(deps, connection).await?;
    let config = build(deps, current.config, request, catalogue)?;
    configs::save(deps, connection, &VersionedConfig { version: current.version, config }).await
}

/// The tenant's config with its contacts mapping and options as Didomi's request says; the other
/// objects and options are kept.
fn build(
    deps: &Deps,
    mut config: ConnectionConfig,
    request: &DidomiConfig,
    catalogue: Option<&FieldCatalogue>,
) -> Result<ConnectionConfig, ApiError> {
    let fields = request.mappings.iter().map(|m| mapping(m, catalogue, request.enable_webhooks)).collect::<Vec<_>>();
    let existing = config.objects.get(&ObjectType::Contacts);
    let lists = existing.map(|c| c.lists.clone()).unwrap_or_default();
    let relations = existing.map(|c| c.relations.clone()).unwrap_or_default();
    config.objects.insert(
        ObjectType::Contacts,
        ObjectConfig {
            // Didomi's `organization_user_id` is the contact's email.
            match_key: MatchKey::Email,
            write_mode: if request.upsert_mode { WriteMode::Upsert } else { WriteMode::UpdateOnly },
            fields,
            lists,
            relations,
        },
    );
    let options = &mut config.options;
    options.webhooks_enabled = request.enable_webhooks;
    options.data_in_enabled = request.enable_webhooks;
    options.bidirectional_counter_property =
        request.enable_webhooks.then(|| counter_name(&deps.settings.platform_name));
    if request.enable_webhooks && options.ingest_url.is_none() {
        options.ingest_url = deps.settings.default_ingest_url.clone();
        if options.ingest_url.is_none() {
            return Err(ApiError::BadRequest(
                "the bidirectional flow delivers HubSpot's changes to the platform, and this deployment has no \
                 ingest endpoint: set the stack's DefaultIngestUrl (HUBSYNC_DEFAULT_INGEST_URL), or the \
                 connection config's options.ingest_url"
                    .into(),
            ));
        }
    }
    Ok(config)
}

/// One mapping: the attribute's type and whether it is computed come from the catalogue. A
/// deployment without a catalogue follows Didomi's attribute names: `…_enabled` is a purpose or
/// a value (a boolean), anything else a preference (a string). An attribute the catalogue does
/// not declare is typed the same way, and the save reports it as not in the catalogue.
fn mapping(m: &DidomiMapping, catalogue: Option<&FieldCatalogue>, both_ways: bool) -> FieldMapping {
    let attribute = m.value.trim();
    let declared = catalogue.and_then(|c| c.field(ObjectType::Contacts, attribute));
    let platform_type = match declared {
        Some(field) => field.field_type,
        None if attribute.ends_with("_enabled") => FieldType::Boolean,
        None => FieldType::String,
    };
    let computed = declared.is_some_and(|f| f.computed);
    FieldMapping {
        direction: if both_ways && !computed { Direction::Both } else { Direction::Out },
        computed,
        values: declared.map(|f| f.values.clone()).unwrap_or_default(),
        ..FieldMapping::out(attribute, m.id.trim(), platform_type)
    }
}

/// The counter property's internal name: the platform's name in lower case, then `_changed`
/// ("Didomi" gives `didomi_changed`, labelled "Didomi Changed").
pub fn counter_name(platform_name: &str) -> String {
    let mut name: String = platform_name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
        .collect::<String>()
        .split('_')
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("_");
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name.insert_str(0, "platform_");
    }
    name.push_str("_changed");
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Didomi's documented example, unchanged.
    const DOCUMENTED: &str = r#"{ "type_id": "hubspot", "authentication": { "code": "AUTH_CODE" }, "properties": {},
      "mappings": [ { "id": "hubspot_email_enabled", "value": "consents_preferences_newsletter_enabled" } ],
      "upsert_mode": true, "app_id": "YOUR_PORTAL_ID", "enable_webhooks": true }"#;

    fn parse(json: &str) -> DidomiConfig {
        serde_json::from_str(json).expect("Didomi's shape")
    }

    #[test]
    fn the_documented_example_parses_and_reads_id_as_the_hubspot_property() {
        let request = parse(DOCUMENTED);
        assert!(request.properties.is_empty());
        assert!(request.upsert_mode);
        let field = mapping(&request.mappings[0], None, true);
        assert_eq!(field.hubspot_property, "hubspot_email_enabled");
        assert_eq!(field.platform_field, "consents_preferences_newsletter_enabled");
        assert_eq!(field.platform_type, FieldType::Boolean);
        assert_eq!(field.direction, Direction::Both);
        // Its app_id is a placeholder: the check says what to put there.
        let err = check(&request).err().expect("a placeholder is not an account id");
        assert!(err.to_string().contains("app_id `YOUR_PORTAL_ID` is not a HubSpot account id"), "{err}");
    }

    #[test]
    fn upsert_mode_defaults_to_false_as_didomi_documents() {
        let request = parse(r#"{"type_id":"hubspot","authentication":{"code":"c"}}"#);
        assert!(!request.upsert_mode);
        assert!(!request.enable_webhooks);
        assert_eq!(check(&request).unwrap().portal_id, None);
    }

    #[test]
    fn the_bidirectional_flow_needs_the_account_id_and_properties_must_be_empty() {
        let request = parse(r#"{"type_id":"hubspot","authentication":{"code":"c"},"enable_webhooks":true}"#);
        assert!(check(&request).err().unwrap().to_string().contains("app_id (your HubSpot account id) is required"));
        let request = parse(r#"{"type_id":"hubspot","authentication":{"code":"c"},"properties":{"x":1}}"#);
        assert!(check(&request).err().unwrap().to_string().contains("properties.x is not a HubSpot setting"));
        let request = parse(r#"{"type_id":"hubspot","authentication":{"code":"c"},"app_id":" 123 "}"#);
        assert_eq!(check(&request).unwrap().portal_id, Some(123));
    }

    #[test]
    fn types_come_from_the_catalogue_and_computed_attributes_only_go_out() {
        let catalogue: FieldCatalogue = serde_json::from_str(
            r#"{"fields":[
                {"object":"contacts","name":"consents_preferences_topics","label":"Topics","type":"string"},
                {"object":"contacts","name":"consents_updated_at","label":"Updated","type":"datetime","computed":true}
            ]}"#,
        )
        .unwrap();
        let topics = DidomiMapping { id: "topics".into(), value: "consents_preferences_topics".into() };
        assert_eq!(mapping(&topics, Some(&catalogue), true).platform_type, FieldType::String);
        let updated = DidomiMapping { id: "consent_date".into(), value: "consents_updated_at".into() };
        let updated = mapping(&updated, Some(&catalogue), true);
        assert_eq!(
            (updated.platform_type, updated.direction, updated.computed),
            (FieldType::Datetime, Direction::Out, true)
        );
        let preference = DidomiMapping { id: "topics".into(), value: "consents_preferences_topics".into() };
        assert_eq!(mapping(&preference, None, false).platform_type, FieldType::String, "Didomi's naming");
    }

    #[test]
    fn the_counter_is_named_after_the_platform() {
        assert_eq!(counter_name("Didomi"), "didomi_changed");
        assert_eq!(counter_name("Acme CRM!"), "acme_crm_changed");
        assert_eq!(counter_name("42"), "platform_42_changed");
    }
}
