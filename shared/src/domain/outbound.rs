//! Platform → HubSpot: the change message the platform sends, how a record's changes become
//! the property values HubSpot stores, and which of them still need writing. Pure: no I/O, no
//! clock.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime, macros::format_description};

use super::relations::{MAX_RELATION_KEYS, PendingLinks, RelationChanges};
use super::{
    ConnectionConfig, ConnectionId, Direction, FieldMapping, FieldType, MatchKey, ObjectConfig, ObjectType,
    RecordSyncState, Stamped,
};

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
    /// Related object → the record's relations to it, by the related records' platform keys:
    /// `{"companies": {"set": ["acme.com"]}}`, or `add` / `remove` lists.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub associations: BTreeMap<ObjectType, RelationChanges>,
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
        let related: usize = message.associations.values().map(RelationChanges::keys).sum();
        if related > MAX_RELATION_KEYS {
            return Err(PoisonMessage::TooLarge(format!(
                "{related} related records; at most {MAX_RELATION_KEYS}: send the rest as `add` lists in further messages"
            )));
        }
        if let Some((name, _)) = message.fields.iter().find(|(_, v)| v.to_string().len() > MAX_VALUE_BYTES) {
            return Err(PoisonMessage::TooLarge(format!("field `{name}` is over {MAX_VALUE_BYTES} bytes")));
        }
        Ok((message, object))
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
    /// Fields were sent but none is mapped out: writing only the match key would create or
    /// touch a record with nothing of what the platform meant to send.
    #[error("no mapped field: {0} sent, none mapped to a HubSpot property (map them in the connection's config)")]
    NothingMapped(String),
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

/// One platform record's changes in a batch, folded into one: each HubSpot property's newest
/// value, stamped with the platform change time it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingWrite {
    /// The match key's value as HubSpot stores it (emails lower-cased, domains bare).
    pub record_key: String,
    /// Property → wire value; the match key's property is among them.
    pub properties: BTreeMap<String, Stamped<String>>,
    pub lists: ListChanges,
    /// Related object → the record's wished links to it (see [`fold_links`]).
    pub links: BTreeMap<ObjectType, PendingLinks>,
    /// Platform fields sent that no outbound mapping uses (and relations no config lets out,
    /// as `associations.<object>`): ignored, and counted.
    pub unmapped_fields: BTreeSet<String>,
}

/// Folds a record's changes (in any order) into one: each field keeps its newest value and the
/// time of the change that set it, so a change carrying only some fields never dates the
/// others; changes at the same time keep their order, the last winning. Values are mapped to
/// HubSpot's wire format by their mappings' types.
pub fn fold(changes: &[&PushMessage], config: &ObjectConfig) -> Result<PendingWrite, SkipReason> {
    let mut ordered = changes.to_vec();
    ordered.sort_by_key(|m| m.changed_at); // stable: equal times keep queue order
    let newest = ordered.last().ok_or(SkipReason::MissingMatchKey)?;
    let record_key = check_key(&newest.record_key, config)?;
    let mut fields: BTreeMap<&str, (&Value, i64)> = BTreeMap::new();
    let mut lists = ListChanges::default();
    for change in &ordered {
        let at = millis(change.changed_at);
        for (name, value) in &change.fields {
            fields.insert(name, (value, at));
        }
        lists.add.extend(change.lists.add.iter().cloned());
        lists.remove.extend(change.lists.remove.iter().cloned());
    }
    let mut properties = BTreeMap::new();
    let mut unmapped_fields = BTreeSet::new();
    for (name, (value, at)) in fields {
        let outbound: Vec<&FieldMapping> =
            config.fields.iter().filter(|f| f.platform_field == name && f.direction.goes_out()).collect();
        if outbound.is_empty() {
            unmapped_fields.insert(name.to_string());
        }
        for mapping in outbound {
            let wire = coerce(value, mapping)
                .map_err(|reason| SkipReason::InvalidValue { field: name.to_string(), reason })?;
            properties.insert(mapping.hubspot_property.clone(), Stamped::new(wire, at));
        }
    }
    let related = ordered.iter().any(|m| !m.associations.is_empty());
    let nothing_to_write = properties.is_empty() && lists.add.is_empty() && lists.remove.is_empty() && !related;
    if nothing_to_write && !unmapped_fields.is_empty() {
        let sent: Vec<&str> = unmapped_fields.iter().map(String::as_str).collect();
        return Err(SkipReason::NothingMapped(sent.join(", ")));
    }
    // The match key travels as a property too, so a created record carries it.
    let newest_at = millis(newest.changed_at);
    properties.insert(config.match_key.property().to_string(), Stamped::new(record_key.clone(), newest_at));
    Ok(PendingWrite { record_key, properties, lists, links: BTreeMap::new(), unmapped_fields })
}

/// Folds a record's relation changes (in any order, as [`fold`] does fields) into its wished
/// links, each related key filed as the related object's match key files it. Relations the
/// object's config does not let out (or to objects not configured) are added to
/// `pending.unmapped_fields` as `associations.<object>`.
pub fn fold_links(
    changes: &[&PushMessage],
    object: &ObjectConfig,
    config: &ConnectionConfig,
    pending: &mut PendingWrite,
) {
    let mut ordered = changes.to_vec();
    ordered.sort_by_key(|m| m.changed_at);
    for change in ordered {
        let at = millis(change.changed_at);
        for (&to, relation) in &change.associations {
            let related = config.objects.get(&to).filter(|_| object.relation(to).is_some());
            let Some(related) = related else {
                pending.unmapped_fields.insert(format!("associations.{to}"));
                continue;
            };
            let links = pending.links.entry(to).or_default();
            links.apply(relation, at, |key| related.match_key.normalise(key));
        }
    }
}

/// The record key as HubSpot stores it, or why the record cannot be synced without one.
fn check_key(raw: &str, config: &ObjectConfig) -> Result<String, SkipReason> {
    let key = raw.trim();
    match &config.match_key {
        MatchKey::Email if !looks_like_email(key) => return Err(SkipReason::ContactWithoutEmail),
        MatchKey::CompanyDomain if key.is_empty() => return Err(SkipReason::CompanyWithoutDomain),
        _ if key.is_empty() => return Err(SkipReason::MissingMatchKey),
        _ => {}
    }
    let record_key = config.match_key.normalise(key);
    if record_key.is_empty() {
        return Err(SkipReason::MissingMatchKey);
    }
    Ok(record_key)
}

fn millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Which of a pending write's properties go to HubSpot, given what hubsync wrote and delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WritePlan {
    /// Properties to write, the match key among them whenever anything is written.
    pub write: BTreeMap<String, Stamped<String>>,
    /// Properties mapped both ways among `write`: HubSpot's own latest change of each must be
    /// read first (see [`settle_with_hubspot`]), since a newer one wins.
    pub check_in_hubspot: BTreeSet<String>,
    /// Properties left out: a newer change of them was written, or delivered from HubSpot.
    pub superseded: usize,
    /// Properties left out: HubSpot holds the value already.
    pub unchanged: usize,
}

/// Decides what of `pending` to write. Newer wins, per property: a change older than the one
/// hubsync last wrote (or is writing) is superseded, as is a change of a field mapped both ways
/// that is older than the HubSpot change last delivered to the platform. A value hubsync
/// already wrote is not written again, except for a both-ways field, where a person may have
/// changed it in HubSpot since: that is checked in HubSpot first.
pub fn plan_write(pending: &PendingWrite, state: &RecordSyncState, config: &ObjectConfig) -> WritePlan {
    let key_property = config.match_key.property();
    let outbound = &state.outbound;
    let mut plan = WritePlan::default();
    for (property, change) in &pending.properties {
        if property == key_property {
            continue;
        }
        let both_ways = config
            .fields
            .iter()
            .find(|f| &f.hubspot_property == property && f.direction == Direction::Both)
            .map(|f| f.platform_field.as_str());
        let written = outbound.written.get(property);
        let newer_own = [written, outbound.writing.get(property)].into_iter().flatten().any(|w| w.at_ms > change.at_ms);
        let newer_delivered = both_ways
            .and_then(|field| state.inbound.delivered.get(field))
            .is_some_and(|delivered| delivered.at_ms > change.at_ms);
        if newer_own || newer_delivered {
            plan.superseded += 1;
        } else if written == Some(change) || (both_ways.is_none() && written.is_some_and(|w| w.value == change.value)) {
            plan.unchanged += 1;
        } else {
            if both_ways.is_some() {
                plan.check_in_hubspot.insert(property.clone());
            }
            plan.write.insert(property.clone(), change.clone());
        }
    }
    let never_written = outbound.hubspot_id.is_none() && outbound.written.is_empty();
    if (!plan.write.is_empty() || never_written)
        && let Some(key) = pending.properties.get(key_property)
    {
        plan.write.insert(key_property.to_string(), key.clone());
    }
    plan
}

/// HubSpot's side of a both-ways property, read before writing it: its current value, and when
/// its latest change by someone other than hubsync happened (`None`: only hubsync wrote it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSpotSide {
    pub current: Option<String>,
    pub latest_other_change_ms: Option<i64>,
}

/// Takes out of `plan` each both-ways property HubSpot already holds (unchanged) or changed
/// after the platform did (superseded: the platform is sent HubSpot's newer value instead).
/// `sides` has what was read of each property in `plan.check_in_hubspot`; a property of a
/// record HubSpot does not have yet is written.
pub fn settle_with_hubspot(plan: &mut WritePlan, sides: &BTreeMap<String, HubSpotSide>) {
    for property in std::mem::take(&mut plan.check_in_hubspot) {
        let (Some(side), Some(change)) = (sides.get(&property), plan.write.get(&property)) else { continue };
        if side.current.as_deref().unwrap_or_default() == change.value {
            plan.write.remove(&property);
            plan.unchanged += 1;
        } else if side.latest_other_change_ms.is_some_and(|at| at > change.at_ms) {
            plan.write.remove(&property);
            plan.superseded += 1;
        }
    }
}

impl WritePlan {
    /// Whether nothing but the match key is left to write (a record HubSpot has needs no call).
    pub fn only_key(&self, key_property: &str) -> bool {
        self.write.keys().all(|property| property == key_property)
    }
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::{Direction, WriteMode};

    fn mapping(platform_field: &str, property: &str, platform_type: FieldType) -> FieldMapping {
        FieldMapping {
            values: vec!["gold".into(), "silver".into()],
            ..FieldMapping::out(platform_field, property, platform_type)
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
        ObjectConfig {
            match_key: MatchKey::Email,
            write_mode: WriteMode::Upsert,
            fields,
            lists: vec![],
            relations: vec![],
        }
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

    fn values(pending: &PendingWrite) -> BTreeMap<&str, (&str, i64)> {
        pending.properties.iter().map(|(p, v)| (p.as_str(), (v.value.as_str(), v.at_ms))).collect()
    }

    const T1: &str = "2024-01-01T00:00:00Z";
    const T2: &str = "2024-01-02T00:00:00Z";
    const MS1: i64 = 1_704_067_200_000;
    const MS2: i64 = 1_704_153_600_000;

    #[test]
    fn a_record_maps_its_outbound_fields_and_its_match_key() {
        let mut inbound = mapping("score", "hs_score", FieldType::Number);
        inbound.direction = Direction::In;
        let config = contacts(vec![mapping("plan", "tier", FieldType::Enumeration), inbound]);
        let m = message("Ada@Example.com", json!({"plan": "gold", "score": 3, "favourite_colour": "red"}), T1);
        let pending = fold(&[&m], &config).unwrap();
        assert_eq!(values(&pending), BTreeMap::from([("email", ("ada@example.com", MS1)), ("tier", ("gold", MS1))]));
        assert_eq!(pending.unmapped_fields, BTreeSet::from(["favourite_colour".to_string(), "score".to_string()]));
    }

    #[test]
    fn records_that_must_not_sync_are_skipped_with_a_reason() {
        let m = message("not-an-email", json!({}), T1);
        assert_eq!(fold(&[&m], &contacts(vec![])), Err(SkipReason::ContactWithoutEmail));
        let company = ObjectConfig { match_key: MatchKey::CompanyDomain, ..contacts(vec![]) };
        let m = message(" ", json!({}), T1);
        assert_eq!(fold(&[&m], &company), Err(SkipReason::CompanyWithoutDomain));
        let bad = message("a@b.co", json!({"plan": "bronze"}), T1);
        let config = contacts(vec![mapping("plan", "tier", FieldType::Enumeration)]);
        assert!(matches!(fold(&[&bad], &config), Err(SkipReason::InvalidValue { .. })));
    }

    #[test]
    fn a_change_of_only_unmapped_fields_is_skipped_rather_than_creating_an_empty_record() {
        let config = contacts(vec![mapping("plan", "tier", FieldType::Enumeration)]);
        let unmapped = message("a@b.co", json!({"nickname": "Ada", "colour": "red"}), T1);
        let skipped = fold(&[&unmapped], &config).unwrap_err();
        assert_eq!(skipped, SkipReason::NothingMapped("colour, nickname".into()));
        assert!(skipped.to_string().starts_with("no mapped field:"), "the reason's class stays one metric");

        let mut with_list = unmapped.clone();
        with_list.lists.add.push("vip".into());
        assert!(fold(&[&with_list], &config).is_ok(), "a list membership is still something to write");
        let key_only = message("a@b.co", json!({}), T1);
        assert!(fold(&[&key_only], &config).is_ok(), "a record sent with no fields is made to exist");
    }

    #[test]
    fn domains_are_stored_bare() {
        assert_eq!(normalise_domain("https://www.Example.com/about?x=1"), "example.com");
        assert_eq!(normalise_domain("shop.example.co.uk"), "shop.example.co.uk");
    }

    #[test]
    fn folded_changes_keep_each_fields_newest_value_and_its_own_time() {
        let config = contacts(vec![
            mapping("plan", "tier", FieldType::Enumeration),
            mapping("name", "firstname", FieldType::String),
        ]);
        let older = message("a@b.co", json!({"plan": "gold", "name": "Ada"}), T1);
        let newer = message("a@b.co", json!({"plan": "silver"}), T2);
        let pending = fold(&[&newer, &older], &config).unwrap();
        assert_eq!(values(&pending)["tier"], ("silver", MS2));
        assert_eq!(values(&pending)["firstname"], ("Ada", MS1), "a field only the older change carried keeps its time");
        // A value that was wrong once and corrected later is folded to the corrected one.
        let wrong = message("a@b.co", json!({"plan": "bronze"}), T1);
        assert_eq!(values(&fold(&[&wrong, &newer], &config).unwrap())["tier"], ("silver", MS2));
    }

    fn state_with(written: &[(&str, &str, i64)], delivered: &[(&str, &str, i64)]) -> RecordSyncState {
        let key = crate::domain::RecordKey::new(ConnectionId::new("c1"), ObjectType::Contacts, "a@b.co");
        let mut state = RecordSyncState::new(key);
        state.outbound.hubspot_id = Some("501".into());
        for (property, value, at) in written {
            state.outbound.written.insert(property.to_string(), Stamped::new(value.to_string(), *at));
        }
        for (field, value, at) in delivered {
            state.inbound.delivered.insert(field.to_string(), Stamped::new(json!(value), *at));
        }
        state
    }

    /// `name` both ways (firstname), `plan` out only (tier).
    fn both_ways_config() -> ObjectConfig {
        let mut name = mapping("name", "firstname", FieldType::String);
        name.direction = Direction::Both;
        contacts(vec![mapping("plan", "tier", FieldType::Enumeration), name])
    }

    #[test]
    fn only_newer_and_changed_values_are_written() {
        let config = both_ways_config();
        let pending = fold(&[&message("a@b.co", json!({"plan": "gold", "name": "Ada"}), T1)], &config).unwrap();

        let nothing_yet = plan_write(&pending, &state_with(&[], &[]), &config);
        assert_eq!(nothing_yet.write.keys().collect::<Vec<_>>(), ["email", "firstname", "tier"]);
        assert_eq!(nothing_yet.check_in_hubspot, BTreeSet::from(["firstname".to_string()]));

        let newer_written =
            plan_write(&pending, &state_with(&[("tier", "silver", MS2), ("firstname", "Bo", MS2)], &[]), &config);
        assert!(newer_written.write.is_empty());
        assert_eq!(newer_written.superseded, 2);

        let same =
            plan_write(&pending, &state_with(&[("tier", "gold", MS1 - 1), ("firstname", "Ada", MS1)], &[]), &config);
        assert!(same.write.is_empty(), "the same values again cost no call: {same:?}");
        assert_eq!(same.unchanged, 2);
    }

    #[test]
    fn a_both_ways_value_is_checked_in_hubspot_unless_the_platform_was_sent_a_newer_one() {
        let config = both_ways_config();
        let pending = fold(&[&message("a@b.co", json!({"name": "Ada"}), T1)], &config).unwrap();
        let delivered_newer = plan_write(&pending, &state_with(&[], &[("name", "Grace", MS1 + 1)]), &config);
        assert!(delivered_newer.write.is_empty());
        assert_eq!(delivered_newer.superseded, 1);

        // Written before, but a newer platform change with the same value: HubSpot may differ now.
        let again = fold(&[&message("a@b.co", json!({"name": "Ada"}), T2)], &config).unwrap();
        let mut plan = plan_write(&again, &state_with(&[("firstname", "Ada", MS1)], &[]), &config);
        assert!(plan.check_in_hubspot.contains("firstname"));

        let changed_later = HubSpotSide { current: Some("Grace".into()), latest_other_change_ms: Some(MS2 + 1) };
        settle_with_hubspot(&mut plan, &BTreeMap::from([("firstname".to_string(), changed_later)]));
        assert_eq!((plan.superseded, plan.only_key("email")), (1, true), "a newer HubSpot change wins");

        let mut plan = plan_write(&again, &state_with(&[], &[]), &config);
        let changed_earlier = HubSpotSide { current: Some("Grace".into()), latest_other_change_ms: Some(MS1) };
        settle_with_hubspot(&mut plan, &BTreeMap::from([("firstname".to_string(), changed_earlier)]));
        assert_eq!(plan.write["firstname"].value, "Ada", "an older HubSpot change gives way");

        let mut plan = plan_write(&again, &state_with(&[], &[]), &config);
        let holds_it = HubSpotSide { current: Some("Ada".into()), latest_other_change_ms: None };
        settle_with_hubspot(&mut plan, &BTreeMap::from([("firstname".to_string(), holds_it)]));
        assert_eq!((plan.unchanged, plan.only_key("email")), (1, true));
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
