//! HubSpot → platform: which of a HubSpot record's values are news for the platform, field by
//! field, and which HubSpot changes hubsync's own writes overwrote although they were newer.
//! Pure: no I/O.
//!
//! Newer wins, per field. A field mapped in only is HubSpot's: its value is news when it
//! differs from what the platform was delivered, in a newer version. A field mapped both ways
//! can change on either side, so its value is news only when a person (or another app) set it
//! in HubSpot after the platform's own latest change of it that hubsync knows of; a value
//! hubsync wrote itself is the platform's own data and never comes back. When the time of a
//! HubSpot value is unknown (a pull sees values, not who set them when), the caller reads the
//! property's history and asks again.

use std::collections::BTreeMap;

use serde_json::Value;

use super::inbound::to_platform_value;
use super::{Direction, ObjectConfig, RecordSyncState, Stamped};

/// What HubSpot says of one change of a property: the value set, when, and whether hubsync
/// itself set it. From a webhook event, or from the property's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSpotChange {
    pub value: String,
    pub at_ms: i64,
    pub own: bool,
}

/// A HubSpot record as read, for one object's config.
#[derive(Debug, Clone, Default)]
pub struct RecordReading {
    /// HubSpot property → value (`""`: none), for the object's inbound properties.
    pub values: BTreeMap<String, String>,
    /// Platform field → value, for fields read from an associated record; with that record's
    /// version when it is newer than `version_ms`.
    pub associated: BTreeMap<String, Stamped<Value>>,
    /// HubSpot's last-modified time of the record.
    pub version_ms: i64,
    /// Property → changes known (newest last or in any order).
    pub changes: BTreeMap<String, Vec<HubSpotChange>>,
    /// Whether `changes` holds the full history of the both-ways properties.
    pub history_read: bool,
}

/// The verdict on one record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Assessment {
    /// Platform field → value to deliver, stamped with its version.
    pub fields: BTreeMap<String, Stamped<Value>>,
    /// HubSpot changes hubsync's own write overwrote though they were newer: delivered, and
    /// written back to HubSpot.
    pub restore: BTreeMap<String, Stamped<Value>>,
    /// Some both-ways value can only be judged with its history: read it and assess again.
    pub needs_history: bool,
    /// Some values were hubsync's own writes showing.
    pub echoes: bool,
}

impl Assessment {
    /// Whether any both-ways field is delivered or restored: that must happen under the
    /// record's claim, so that no push of the record is written between the read and the
    /// decision.
    pub fn touches_both_ways(&self, config: &ObjectConfig) -> bool {
        self.needs_history
            || !self.restore.is_empty()
            || config
                .fields
                .iter()
                .any(|f| f.direction == Direction::Both && self.fields.contains_key(&f.platform_field))
    }
}

/// Judges a record's inbound fields. `resend` delivers every field mapped in only (a full sync,
/// or a lifecycle event such as a creation), news or not.
pub fn assess(config: &ObjectConfig, reading: &RecordReading, state: &RecordSyncState, resend: bool) -> Assessment {
    let mut assessment = Assessment::default();
    for field in config.fields.iter().filter(|f| f.direction.comes_in()) {
        let delivered = state.inbound.delivered.get(&field.platform_field);
        let name = field.platform_field.clone();
        if field.from_associated.is_some() {
            let Some(value) = reading.associated.get(&field.platform_field) else { continue };
            if resend || is_newer_value(delivered, &value.value, value.at_ms) {
                assessment.fields.insert(name, value.clone());
            }
            continue;
        }
        let raw = reading.values.get(&field.hubspot_property).map(String::as_str).unwrap_or_default();
        let value = to_platform_value(raw, field.platform_type);
        if field.direction != Direction::Both {
            if resend || is_newer_value(delivered, &value, reading.version_ms) {
                assessment.fields.insert(name, Stamped::new(value, reading.version_ms));
            }
            continue;
        }
        let changes = reading.changes.get(&field.hubspot_property).map(Vec::as_slice).unwrap_or_default();
        let others = || changes.iter().filter(|c| !c.own);
        if let Some(own_at) = state.outbound.own(&field.hubspot_property, raw) {
            // hubsync's own value shows; a newer HubSpot change it overwrote wins back.
            let overwritten = others()
                .filter(|c| c.value != raw && c.at_ms > own_at && delivered.is_none_or(|d| d.at_ms < c.at_ms))
                .max_by_key(|c| c.at_ms);
            match overwritten {
                Some(change) => {
                    let value = Stamped::new(to_platform_value(&change.value, field.platform_type), change.at_ms);
                    assessment.restore.insert(name.clone(), value.clone());
                    assessment.fields.insert(name, value);
                }
                None => assessment.echoes |= delivered.is_none_or(|d| d.value != value),
            }
            continue;
        }
        let known = delivered.map_or(Value::Null, |d| d.value.clone());
        if known == value {
            continue;
        }
        let set_by = changes.iter().filter(|c| c.value == raw).max_by_key(|c| c.at_ms);
        match set_by {
            Some(change) if change.own => assessment.echoes = true,
            Some(change) => {
                // Newer than anything the platform has of this field (its own latest change
                // hubsync wrote, or a HubSpot value delivered): else HubSpot shows an older
                // value that a pending write of hubsync's replaces.
                let platform_at =
                    [state.outbound.written.get(&field.hubspot_property).map(|w| w.at_ms), delivered.map(|d| d.at_ms)]
                        .into_iter()
                        .flatten()
                        .max();
                if platform_at.is_none_or(|at| change.at_ms > at) {
                    assessment.fields.insert(name, Stamped::new(value, change.at_ms));
                }
            }
            None if reading.history_read => {
                // No history of the value (an import, say): as old as the record's version.
                assessment.fields.insert(name, Stamped::new(value, reading.version_ms));
            }
            None => assessment.needs_history = true,
        }
    }
    assessment
}

/// A value the platform does not have yet, in a version newer than the one it was delivered.
/// A field never delivered counts as empty at the platform.
fn is_newer_value(delivered: Option<&Stamped<Value>>, value: &Value, version_ms: i64) -> bool {
    match delivered {
        Some(known) => known.value != *value && version_ms > known.at_ms,
        None => !value.is_null(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::{ConnectionId, ObjectType, RecordKey};

    /// First names both ways, job titles in.
    fn contacts() -> ObjectConfig {
        serde_json::from_value(json!({
            "match_key": { "kind": "email" }, "write_mode": "upsert",
            "fields": [
                { "platform_field": "first_name", "hubspot_property": "firstname", "direction": "both", "platform_type": "string" },
                { "platform_field": "job_title", "hubspot_property": "jobtitle", "direction": "in", "platform_type": "string" }
            ] }))
        .unwrap()
    }

    fn state() -> RecordSyncState {
        RecordSyncState::new(RecordKey::new(ConnectionId::new("c1"), ObjectType::Contacts, "ada@example.com"))
    }

    fn reading(firstname: &str, jobtitle: &str, version_ms: i64) -> RecordReading {
        RecordReading {
            values: BTreeMap::from([("firstname".into(), firstname.into()), ("jobtitle".into(), jobtitle.into())]),
            version_ms,
            ..RecordReading::default()
        }
    }

    fn change(value: &str, at_ms: i64, own: bool) -> HubSpotChange {
        HubSpotChange { value: value.into(), at_ms, own }
    }

    #[test]
    fn an_inbound_field_is_news_when_it_differs_in_a_newer_version() {
        let mut known = state();
        known.inbound.delivered.insert("job_title".into(), Stamped::new(json!("CTO"), 10));
        let same = assess(&contacts(), &reading("", "CTO", 20), &known, false);
        assert!(same.fields.is_empty());
        let older = assess(&contacts(), &reading("", "CEO", 5), &known, false);
        assert!(older.fields.is_empty(), "an older version never wins");
        let newer = assess(&contacts(), &reading("", "CEO", 20), &known, false);
        assert_eq!(newer.fields["job_title"], Stamped::new(json!("CEO"), 20));
        let empty = assess(&contacts(), &reading("", "", 20), &state(), false);
        assert!(empty.fields.is_empty(), "a field never delivered counts as empty");
    }

    #[test]
    fn hubsyncs_own_values_never_come_back() {
        let mut written = state();
        written.outbound.written.insert("firstname".into(), Stamped::new("Ada".into(), 10));
        let echo = assess(&contacts(), &reading("Ada", "", 30), &written, false);
        assert!(echo.fields.is_empty() && echo.echoes);
        let mut writing = state();
        writing.outbound.writing.insert("firstname".into(), Stamped::new("Augusta".into(), 10));
        assert!(assess(&contacts(), &reading("Augusta", "", 30), &writing, false).echoes);
    }

    #[test]
    fn a_both_ways_value_needs_its_time_and_is_news_only_if_newer_than_the_platforms() {
        let mut known = state();
        known.outbound.written.insert("firstname".into(), Stamped::new("Ada".into(), 100));
        let unknown_time = assess(&contacts(), &reading("Grace", "", 300), &known, false);
        assert!(unknown_time.needs_history && unknown_time.touches_both_ways(&contacts()));

        let mut later = reading("Grace", "", 300);
        later.changes.insert("firstname".into(), vec![change("Ada", 150, true), change("Grace", 200, false)]);
        later.history_read = true;
        assert_eq!(assess(&contacts(), &later, &known, false).fields["first_name"], Stamped::new(json!("Grace"), 200));

        let mut earlier = reading("Grace", "", 300);
        earlier.changes.insert("firstname".into(), vec![change("Grace", 50, false)]);
        assert!(assess(&contacts(), &earlier, &known, false).fields.is_empty(), "the platform's change is newer");
    }

    #[test]
    fn a_newer_hubspot_change_that_hubsyncs_write_overwrote_wins_back() {
        let mut known = state();
        known.outbound.written.insert("firstname".into(), Stamped::new("Ada".into(), 100));
        let mut overwritten = reading("Ada", "", 300);
        overwritten.changes.insert("firstname".into(), vec![change("Grace", 200, false)]);
        let assessment = assess(&contacts(), &overwritten, &known, false);
        assert_eq!(assessment.restore["first_name"], Stamped::new(json!("Grace"), 200));
        assert_eq!(assessment.fields["first_name"], Stamped::new(json!("Grace"), 200));

        let mut older = reading("Ada", "", 300);
        older.changes.insert("firstname".into(), vec![change("Grace", 50, false)]);
        assert!(assess(&contacts(), &older, &known, false).restore.is_empty(), "an older change stays overwritten");

        known.inbound.delivered.insert("first_name".into(), Stamped::new(json!("Grace"), 200));
        assert!(assess(&contacts(), &overwritten, &known, false).restore.is_empty(), "already handled");
    }

    #[test]
    fn a_resend_delivers_every_inbound_field() {
        let mut known = state();
        known.inbound.delivered.insert("job_title".into(), Stamped::new(json!("CTO"), 10));
        let all = assess(&contacts(), &reading("", "CTO", 20), &known, true);
        assert_eq!(all.fields["job_title"], Stamped::new(json!("CTO"), 20));
    }
}
