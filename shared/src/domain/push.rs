//! Platform → HubSpot: the change message the platform sends, and how one becomes the property
//! values HubSpot stores. Pure: no I/O, no clock.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime, macros::format_description};

use super::{ConnectionId, FieldMapping, FieldType, MatchKey, ObjectConfig, ObjectType};

/// The only message version this build reads; a newer one is refused rather than guessed at.
pub const PUSH_MESSAGE_VERSION: u32 = 1;
/// Bounds on what one message may carry.
pub const MAX_FIELDS: usize = 500;
pub const MAX_VALUE_BYTES: usize = 65_536;
pub const MAX_LIST_CHANGES: usize = 100;
pub const MAX_RECORD_KEY_BYTES: usize = 512;
/// A message body this size or smaller can always be parked with its reason (SQS takes 256 KiB).
pub const MAX_MESSAGE_BYTES: usize = 240 * 1024;

/// One change of one platform record, as the platform sends it to the push queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushMessage {
    pub version: u32,
    pub connection_id: ConnectionId,
    /// `contact`, `company` or `deal` (plural and type-id spellings are accepted too).
    pub object: String,
    /// The platform's key for the record: the match key's value (an email, an external id, a domain).
    pub record_key: String,
    /// Platform field name → value (string, number, boolean, null to clear, or an array for
    /// multi-select enumerations).
    #[serde(default)]
    pub fields: BTreeMap<String, Value>,
    /// When the change happened on the platform (RFC 3339): orders changes to one record.
    #[serde(with = "time::serde::rfc3339")]
    pub changed_at: OffsetDateTime,
    #[serde(default)]
    pub lists: ListChanges,
    /// Set by the platform to make a re-sent message recognisable.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListChanges {
    #[serde(default)]
    pub add: Vec<String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

/// Why a message cannot be processed at all: it goes to the dead-letter queue with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoisonMessage {
    #[error("not a push message: {0}")]
    Malformed(String),
    #[error("message version {0} is not supported (this hubsync reads version {PUSH_MESSAGE_VERSION})")]
    UnknownVersion(u32),
    #[error("{0}")]
    TooLarge(String),
}

impl PushMessage {
    /// Parses and bounds-checks a queue message body.
    pub fn parse(body: &str) -> Result<(PushMessage, ObjectType), PoisonMessage> {
        if body.len() > MAX_MESSAGE_BYTES {
            return Err(PoisonMessage::TooLarge(format!(
                "the message is {} bytes; at most {MAX_MESSAGE_BYTES}: send fewer fields per message",
                body.len()
            )));
        }
        // Read the version first, so a newer message is named as such, not as "malformed".
        let raw: Value = serde_json::from_str(body).map_err(|e| PoisonMessage::Malformed(e.to_string()))?;
        match raw.get("version").and_then(Value::as_u64) {
            Some(v) if v == u64::from(PUSH_MESSAGE_VERSION) => {}
            Some(v) => return Err(PoisonMessage::UnknownVersion(v.min(u64::from(u32::MAX)) as u32)),
            None => return Err(PoisonMessage::Malformed("`version` is missing".into())),
        }
        let message: PushMessage = serde_json::from_value(raw).map_err(|e| PoisonMessage::Malformed(e.to_string()))?;
        let object = message.object.parse::<ObjectType>().map_err(|e| PoisonMessage::Malformed(e.to_string()))?;
        if message.record_key.len() > MAX_RECORD_KEY_BYTES {
            return Err(PoisonMessage::TooLarge(format!("`record_key` is over {MAX_RECORD_KEY_BYTES} bytes")));
        }
        if message.fields.len() > MAX_FIELDS {
            return Err(PoisonMessage::TooLarge(format!("{} fields; at most {MAX_FIELDS}", message.fields.len())));
        }
        if message.lists.add.len() + message.lists.remove.len() > MAX_LIST_CHANGES {
            return Err(PoisonMessage::TooLarge(format!("more than {MAX_LIST_CHANGES} list changes")));
        }
        if let Some((name, _)) = message.fields.iter().find(|(_, v)| v.to_string().len() > MAX_VALUE_BYTES) {
            return Err(PoisonMessage::TooLarge(format!("field `{name}` is over {MAX_VALUE_BYTES} bytes")));
        }
        Ok((message, object))
    }
}

/// A record ready for HubSpot: property name → HubSpot's string wire value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedRecord {
    pub record_key: String,
    pub properties: BTreeMap<String, String>,
    /// Platform fields that were sent but are not mapped out: ignored, and counted.
    pub unmapped_fields: Vec<String>,
}

impl MappedRecord {
    /// A fingerprint of what would be written: an unchanged payload is not sent again.
    pub fn payload_hash(&self) -> String {
        let mut hasher = Sha256::new();
        for (name, value) in &self.properties {
            // Length-prefixed, so ("ab","c") and ("a","bc") hash differently.
            hasher.update((name.len() as u64).to_be_bytes());
            hasher.update(name.as_bytes());
            hasher.update((value.len() as u64).to_be_bytes());
            hasher.update(value.as_bytes());
        }
        hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Why a record is deliberately not synced. The text is what the run history shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    #[error("contact has no valid email")]
    ContactWithoutEmail,
    #[error("company has no website domain")]
    CompanyWithoutDomain,
    #[error("record has no value for its match key")]
    MissingMatchKey,
    #[error("{0} are not configured for this connection")]
    ObjectNotConfigured(ObjectType),
    #[error("connection is disabled")]
    ConnectionDisabled,
    #[error("connection {0} does not exist (uninstalled)")]
    ConnectionGone(ConnectionId),
    #[error("superseded: a newer change of this record was already written")]
    Superseded,
    #[error("not found in HubSpot (update-only mode)")]
    NotFoundForUpdate,
    #[error("already exists in HubSpot (create-only mode)")]
    ExistsForCreate,
    #[error("merged into a newer change of the same record")]
    Merged,
    #[error("field `{field}` has an invalid value: {reason}")]
    InvalidValue { field: String, reason: String },
}

impl MatchKey {
    /// The HubSpot property that holds the match key's value.
    pub fn property(&self) -> &str {
        match self {
            MatchKey::Email => "email",
            MatchKey::UniqueProperty { property } => property,
            MatchKey::CompanyName => "name",
            MatchKey::CompanyDomain => "domain",
        }
    }

    /// Whether HubSpot can find records by this key itself (batch upsert and batch read by
    /// `idProperty`); company names and domains are not unique and are found by search.
    pub fn is_unique_in_hubspot(&self) -> bool {
        matches!(self, MatchKey::Email | MatchKey::UniqueProperty { .. })
    }

    /// The key as HubSpot stores it (emails lower-cased, domains bare), which is also how
    /// hubsync files the record's sync state.
    pub fn normalise(&self, value: &str) -> String {
        let value = value.trim();
        match self {
            MatchKey::Email => value.to_ascii_lowercase(),
            MatchKey::CompanyDomain => normalise_domain(value),
            MatchKey::UniqueProperty { .. } | MatchKey::CompanyName => value.to_string(),
        }
    }
}

/// Maps a message's fields to HubSpot properties per the object's config.
pub fn map_record(message: &PushMessage, config: &ObjectConfig) -> Result<MappedRecord, SkipReason> {
    let key = message.record_key.trim();
    match &config.match_key {
        MatchKey::Email if !looks_like_email(key) => return Err(SkipReason::ContactWithoutEmail),
        MatchKey::CompanyDomain if key.is_empty() => return Err(SkipReason::CompanyWithoutDomain),
        _ if key.is_empty() => return Err(SkipReason::MissingMatchKey),
        _ => {}
    }
    let mut properties = BTreeMap::new();
    let mut unmapped_fields = Vec::new();
    for (name, value) in &message.fields {
        let outbound: Vec<&FieldMapping> =
            config.fields.iter().filter(|f| &f.platform_field == name && f.direction.goes_out()).collect();
        if outbound.is_empty() {
            unmapped_fields.push(name.clone());
            continue;
        }
        for mapping in outbound {
            let wire =
                coerce(value, mapping).map_err(|reason| SkipReason::InvalidValue { field: name.clone(), reason })?;
            properties.insert(mapping.hubspot_property.clone(), wire);
        }
    }
    // The match key travels as a property too, so a created record carries it.
    let record_key = config.match_key.normalise(key);
    if record_key.is_empty() {
        return Err(SkipReason::MissingMatchKey);
    }
    properties.insert(config.match_key.property().to_string(), record_key.clone());
    Ok(MappedRecord { record_key, properties, unmapped_fields })
}

fn looks_like_email(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else { return false };
    !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !value.contains(char::is_whitespace)
}

/// `https://www.Example.com/about` → `example.com`: HubSpot stores companies' bare domains.
pub fn normalise_domain(value: &str) -> String {
    let value = value.trim().to_ascii_lowercase();
    let value = value.split_once("://").map_or(value.as_str(), |(_, rest)| rest);
    let host = value.split(['/', '?', '#']).next().unwrap_or_default();
    host.strip_prefix("www.").unwrap_or(host).to_string()
}

/// A platform value in HubSpot's wire format: everything is a string; booleans `true`/`false`;
/// dates are midnight UTC in epoch milliseconds; datetimes epoch milliseconds; multi-select
/// values joined with `;`; null clears the property (`""`).
pub fn coerce(value: &Value, mapping: &FieldMapping) -> Result<String, String> {
    if value.is_null() {
        return Ok(String::new());
    }
    match mapping.platform_type {
        FieldType::String => match value {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            _ => Err("expected text".into()),
        },
        FieldType::Boolean => match value {
            Value::Bool(b) => Ok(b.to_string()),
            Value::String(s) if matches!(s.to_ascii_lowercase().as_str(), "true" | "false") => {
                Ok(s.to_ascii_lowercase())
            }
            _ => Err("expected true or false".into()),
        },
        FieldType::Number => match value {
            Value::Number(n) => Ok(n.to_string()),
            Value::String(s) if s.trim().parse::<f64>().is_ok_and(f64::is_finite) => Ok(s.trim().to_string()),
            _ => Err("expected a number".into()),
        },
        FieldType::Date => {
            let date = match value {
                Value::String(s) => parse_date(s).ok_or("expected a date like 2024-05-31")?,
                _ => return Err("expected a date like 2024-05-31".into()),
            };
            Ok((date.midnight().assume_utc().unix_timestamp() * 1000).to_string())
        }
        FieldType::Datetime => match value {
            Value::Number(n) if n.as_i64().is_some() => Ok(n.to_string()),
            Value::String(s) => OffsetDateTime::parse(s, &Rfc3339)
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000).to_string())
                .map_err(|_| "expected an RFC 3339 date-time like 2024-05-31T12:00:00Z".into()),
            _ => Err("expected an RFC 3339 date-time".into()),
        },
        FieldType::Enumeration => {
            let values: Vec<&str> = match value {
                Value::String(s) => vec![s.as_str()],
                Value::Array(items) => {
                    items.iter().map(|v| v.as_str().ok_or("expected strings")).collect::<Result<_, _>>()?
                }
                _ => return Err("expected one of the declared values".into()),
            };
            if let Some(unknown) = values.iter().find(|v| !mapping.values.iter().any(|d| d == *v)) {
                return Err(format!("`{unknown}` is not one of the declared values"));
            }
            Ok(values.join(";"))
        }
    }
}

/// A calendar date, from `2024-05-31` or the date part of an RFC 3339 date-time.
fn parse_date(value: &str) -> Option<Date> {
    let format = format_description!("[year]-[month]-[day]");
    Date::parse(value, format).ok().or_else(|| OffsetDateTime::parse(value, &Rfc3339).ok().map(|t| t.date()))
}

/// Folds several changes to one record into one, oldest first, so each field ends with its newest
/// value and the result carries the newest change time. Messages are expected to be snapshots
/// of the record's mapped fields; folding also keeps fields that only older ones carried.
pub fn merge_changes(mut changes: Vec<&PushMessage>) -> Option<PushMessage> {
    changes.sort_by_key(|m| m.changed_at); // stable: equal times keep queue order, last wins
    let mut merged = changes.first().map(|m| (*m).clone())?;
    for change in &changes[1..] {
        merged.fields.extend(change.fields.iter().map(|(k, v)| (k.clone(), v.clone())));
        merged.changed_at = change.changed_at;
        merged.lists.add.extend(change.lists.add.iter().cloned());
        merged.lists.remove.extend(change.lists.remove.iter().cloned());
        merged.idempotency_key = change.idempotency_key.clone().or(merged.idempotency_key);
    }
    Some(merged)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::{Direction, WriteMode};

    fn mapping(platform_field: &str, property: &str, platform_type: FieldType) -> FieldMapping {
        FieldMapping {
            platform_field: platform_field.into(),
            hubspot_property: property.into(),
            direction: Direction::Out,
            platform_type,
            computed: false,
            values: vec!["gold".into(), "silver".into()],
            from_associated: None,
        }
    }

    fn message(key: &str, fields: Value, changed_at: &str) -> PushMessage {
        serde_json::from_value(json!({
            "version": 1, "connection_id": "c1", "object": "contact", "record_key": key,
            "fields": fields, "changed_at": changed_at
        }))
        .unwrap()
    }

    fn contacts(fields: Vec<FieldMapping>) -> ObjectConfig {
        ObjectConfig { match_key: MatchKey::Email, write_mode: WriteMode::Upsert, fields, lists: vec![] }
    }

    #[test]
    fn values_take_hubspots_wire_format() {
        let cases = [
            (FieldType::Boolean, json!(true), "true"),
            (FieldType::Boolean, json!("FALSE"), "false"),
            (FieldType::Number, json!(12.5), "12.5"),
            (FieldType::Number, json!(" 7 "), "7"),
            (FieldType::Date, json!("2024-05-31"), "1717113600000"),
            (FieldType::Date, json!("2024-05-31T23:59:00+00:00"), "1717113600000"),
            (FieldType::Datetime, json!("2024-05-31T12:00:00Z"), "1717156800000"),
            (FieldType::Datetime, json!(1717156800000i64), "1717156800000"),
            (FieldType::Enumeration, json!(["gold", "silver"]), "gold;silver"),
            (FieldType::String, json!(42), "42"),
            (FieldType::String, Value::Null, ""),
        ];
        for (platform_type, value, wire) in cases {
            assert_eq!(coerce(&value, &mapping("f", "p", platform_type)).unwrap(), wire, "{platform_type:?} {value}");
        }
    }

    #[test]
    fn values_of_the_wrong_type_are_refused_with_a_reason() {
        let cases = [
            (FieldType::Boolean, json!("yes")),
            (FieldType::Number, json!("twelve")),
            (FieldType::Date, json!("31/05/2024")),
            (FieldType::Datetime, json!("yesterday")),
            (FieldType::Enumeration, json!("bronze")),
            (FieldType::String, json!({"nested": true})),
        ];
        for (platform_type, value) in cases {
            assert!(coerce(&value, &mapping("f", "p", platform_type)).is_err(), "{platform_type:?} {value}");
        }
    }

    #[test]
    fn a_record_maps_its_outbound_fields_and_its_match_key() {
        let mut inbound = mapping("score", "hs_score", FieldType::Number);
        inbound.direction = Direction::In;
        let config = contacts(vec![mapping("plan", "tier", FieldType::Enumeration), inbound]);
        let m = message(
            "Ada@Example.com",
            json!({"plan": "gold", "score": 3, "favourite_colour": "red"}),
            "2024-01-01T00:00:00Z",
        );
        let record = map_record(&m, &config).unwrap();
        assert_eq!(
            record.properties,
            BTreeMap::from([("email".into(), "ada@example.com".into()), ("tier".into(), "gold".into())])
        );
        assert_eq!(record.unmapped_fields, vec!["favourite_colour".to_string(), "score".to_string()]);
    }

    #[test]
    fn records_that_must_not_sync_are_skipped_with_a_reason() {
        let m = message("not-an-email", json!({}), "2024-01-01T00:00:00Z");
        assert_eq!(map_record(&m, &contacts(vec![])), Err(SkipReason::ContactWithoutEmail));
        let company = ObjectConfig { match_key: MatchKey::CompanyDomain, ..contacts(vec![]) };
        let m = message(" ", json!({}), "2024-01-01T00:00:00Z");
        assert_eq!(map_record(&m, &company), Err(SkipReason::CompanyWithoutDomain));
        let bad = message("a@b.co", json!({"plan": "bronze"}), "2024-01-01T00:00:00Z");
        let config = contacts(vec![mapping("plan", "tier", FieldType::Enumeration)]);
        assert!(matches!(map_record(&bad, &config), Err(SkipReason::InvalidValue { .. })));
    }

    #[test]
    fn domains_are_stored_bare() {
        assert_eq!(normalise_domain("https://www.Example.com/about?x=1"), "example.com");
        assert_eq!(normalise_domain("shop.example.co.uk"), "shop.example.co.uk");
    }

    #[test]
    fn the_payload_hash_changes_with_any_value_and_only_then() {
        let config = contacts(vec![mapping("plan", "tier", FieldType::Enumeration)]);
        let a = map_record(&message("a@b.co", json!({"plan": "gold"}), "2024-01-01T00:00:00Z"), &config).unwrap();
        let again = map_record(&message("a@b.co", json!({"plan": "gold"}), "2024-02-01T00:00:00Z"), &config).unwrap();
        let changed =
            map_record(&message("a@b.co", json!({"plan": "silver"}), "2024-01-01T00:00:00Z"), &config).unwrap();
        assert_eq!(a.payload_hash(), again.payload_hash());
        assert_ne!(a.payload_hash(), changed.payload_hash());
    }

    #[test]
    fn merged_changes_keep_each_fields_newest_value() {
        let older = message("a@b.co", json!({"plan": "gold", "name": "Ada"}), "2024-01-01T00:00:00Z");
        let newer = message("a@b.co", json!({"plan": "silver"}), "2024-01-02T00:00:00Z");
        let merged = merge_changes(vec![&newer, &older]).unwrap();
        assert_eq!(merged.fields["plan"], json!("silver"));
        assert_eq!(merged.fields["name"], json!("Ada"));
        assert_eq!(merged.changed_at, newer.changed_at);
    }

    #[test]
    fn poison_messages_are_named() {
        assert!(matches!(PushMessage::parse("{oops"), Err(PoisonMessage::Malformed(_))));
        assert_eq!(
            PushMessage::parse(
                r#"{"version":2,"connection_id":"c","object":"contact","record_key":"a@b.co","changed_at":"2024-01-01T00:00:00Z"}"#
            ),
            Err(PoisonMessage::UnknownVersion(2))
        );
        assert!(matches!(
            PushMessage::parse(r#"{"version":1,"connection_id":"c","object":"ticket","record_key":"a","changed_at":"2024-01-01T00:00:00Z"}"#),
            Err(PoisonMessage::Malformed(m)) if m.contains("ticket")
        ));
        let ok = r#"{"version":1,"connection_id":"c","object":"contacts","record_key":"a@b.co","changed_at":"2024-01-01T00:00:00Z"}"#;
        assert_eq!(PushMessage::parse(ok).unwrap().1, ObjectType::Contacts);
    }
}
