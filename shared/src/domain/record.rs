//! What hubsync remembers about one record of one connection, and who may change which part.
//!
//! # The per-record write protocol
//!
//! Several Lambda instances may hold changes of one record at once, and any of them may stop
//! between any two steps. The record's state is one item with three parts, each with one way of
//! being written, so that no writer ever overwrites another's part:
//!
//! - **The claim** (`Store::claim_record`): a holder and an expiry, taken with a condition (free,
//!   expired, or already the caller's). Only the holder writes the record to HubSpot, reads
//!   HubSpot to decide what both-ways fields to deliver, or changes the outbound part. A worker
//!   sends a HubSpot write only while its claim has at least [`CLAIM_MARGIN`] left, so its
//!   write is over before anyone else can take the claim: HubSpot sees one record's writes in
//!   the order the claims were held. Claims are taken without waiting; a record claimed by
//!   someone else is handed back to the queue for a little later.
//! - **The outbound part** ([`OutboundState`]): what hubsync wrote to HubSpot, per property, with
//!   the platform change time each value came from. Written only by the claim holder
//!   (`Store::save_outbound`, conditional on the claim), never by inbound work.
//! - **The inbound part** ([`InboundState`]): what the platform was delivered, per field, with the
//!   HubSpot change time of each value. Written by compare-and-set on its `revision`
//!   (`Store::save_inbound`): a writer that lost a race reads again and merges, keeping the
//!   newer value of each field. It never touches the claim or the outbound part.
//!
//! Every time only moves forward: a property's written change time, a field's delivered version.
//!
//! Newer wins, per field: a platform change is written to HubSpot only if it is newer than the
//! HubSpot change the platform was last delivered for that field and than HubSpot's own latest
//! change of it; a HubSpot change is delivered only if it is newer than what the platform has.
//! The store contract suite proves the store's half of this on DynamoDB and the embedded store;
//! `tests/chaos.rs` proves the whole under concurrent workers, crashes and redeliveries.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::relations::WrittenLink;
use super::{ConnectionId, ObjectType};

/// How long a claim lasts: longer than any HubSpot call a holder may still start.
pub const CLAIM_TTL: time::Duration = time::Duration::minutes(2);
/// A holder starts no HubSpot write with less than this left on its claim: the HubSpot client's
/// timeout (30 s), the longest wait for a rate-limit slot (20 s), and a margin.
pub const CLAIM_MARGIN: time::Duration = time::Duration::seconds(60);

/// A value and the time of the change that produced it (epoch ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamped<T> {
    pub value: T,
    pub at_ms: i64,
}

impl<T> Stamped<T> {
    pub fn new(value: T, at_ms: i64) -> Self {
        Stamped { value, at_ms }
    }
}

/// Which record: a connection's object by the platform's key (email, domain, external id...).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecordKey {
    pub connection_id: ConnectionId,
    pub object_type: ObjectType,
    pub record_key: String,
}

impl RecordKey {
    pub fn new(connection_id: ConnectionId, object_type: ObjectType, record_key: impl Into<String>) -> Self {
        RecordKey { connection_id, object_type, record_key: record_key.into() }
    }
}

/// What hubsync wrote to HubSpot for a record. Changed only by the holder of its claim.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundState {
    pub hubspot_id: Option<String>,
    /// HubSpot property → the value last written, stamped with the platform's change time.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub written: BTreeMap<String, Stamped<String>>,
    /// Values announced before a HubSpot write whose outcome is not known yet: HubSpot may
    /// show them before (or without) the write being recorded, and they are the platform's
    /// own either way. Cleared when the write is known to have failed or is recorded.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub writing: BTreeMap<String, Stamped<String>>,
    /// Per related object and the related record's platform key: the link last written.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub links: BTreeMap<ObjectType, BTreeMap<String, WrittenLink>>,
    /// Links announced before a HubSpot call whose outcome is not known yet (as `writing` is for
    /// values): while one is here, what `links` says of it may no longer hold.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub linking: BTreeMap<ObjectType, BTreeMap<String, Stamped<bool>>>,
    /// Per related object and key: since when (epoch ms, hubsync's clock) a link waits for its
    /// other record to exist in HubSpot (see [`super::relations::LINK_WAIT`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub waiting: BTreeMap<ObjectType, BTreeMap<String, i64>>,
    /// Per related object: the platform change time of the newest `set` of its links applied.
    /// A link wished before it that it left out stays out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub link_sets: BTreeMap<ObjectType, i64>,
}

impl OutboundState {
    /// When `value` is hubsync's own (written or being written) value of `property`: the
    /// platform change time it came from.
    pub fn own(&self, property: &str, value: &str) -> Option<i64> {
        [&self.written, &self.writing]
            .iter()
            .filter_map(|values| values.get(property))
            .filter(|own| own.value == value)
            .map(|own| own.at_ms)
            .max()
    }

    /// Records a successful write: each property's value and change time (never older ones).
    pub fn record_written(&mut self, properties: &BTreeMap<String, Stamped<String>>) {
        for (property, value) in properties {
            let newer = self.written.get(property).is_none_or(|known| known.at_ms <= value.at_ms);
            if newer {
                self.written.insert(property.clone(), value.clone());
            }
            self.writing.remove(property);
        }
    }

    /// Records a link written to (or removed from) `to`'s record `key`, unless a newer change
    /// of it was; the link no longer waits.
    pub fn record_link(&mut self, to: ObjectType, key: &str, link: WrittenLink) {
        let at_ms = link.at_ms;
        let links = self.links.entry(to).or_default();
        if links.get(key).is_none_or(|known| known.at_ms <= link.at_ms) {
            links.insert(key.to_string(), link);
        }
        self.stop_waiting(to, key);
        self.settle_linking(to, key, at_ms);
    }

    /// Forgets an announced link write of `to`'s record `key` made for the change at `at_ms`:
    /// its outcome is known now (recorded, or known not to have happened).
    pub fn settle_linking(&mut self, to: ObjectType, key: &str, at_ms: i64) {
        if let Some(linking) = self.linking.get_mut(&to) {
            if linking.get(key).is_some_and(|announced| announced.at_ms <= at_ms) {
                linking.remove(key);
            }
            if linking.is_empty() {
                self.linking.remove(&to);
            }
        }
    }

    /// Records that a `set` of the links to `to` made at `at_ms` was applied (times only grow).
    pub fn record_link_set(&mut self, to: ObjectType, at_ms: i64) {
        let newest = self.link_sets.entry(to).or_insert(at_ms);
        *newest = (*newest).max(at_ms);
    }

    /// Forgets that a link to `to`'s record `key` waits.
    pub fn stop_waiting(&mut self, to: ObjectType, key: &str) {
        if let Some(waiting) = self.waiting.get_mut(&to) {
            waiting.remove(key);
            if waiting.is_empty() {
                self.waiting.remove(&to);
            }
        }
    }
}

/// What the platform was delivered for a record. Written by compare-and-set on `revision`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundState {
    /// Bumped by every save; a save names the revision it read.
    #[serde(default)]
    pub revision: u64,
    /// HubSpot's last-modified time of the newest record version delivered.
    pub applied_version_ms: Option<i64>,
    /// Platform field → the value delivered, stamped with that value's HubSpot version.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub delivered: BTreeMap<String, Stamped<Value>>,
}

impl InboundState {
    /// Adds what the platform applied: each field keeps its newer value, the version only grows.
    pub fn merge_delivered(&mut self, version_ms: i64, fields: &BTreeMap<String, Stamped<Value>>) {
        self.applied_version_ms = Some(self.applied_version_ms.unwrap_or(i64::MIN).max(version_ms));
        for (field, value) in fields {
            if self.delivered.get(field).is_none_or(|known| known.at_ms <= value.at_ms) {
                self.delivered.insert(field.clone(), value.clone());
            }
        }
    }
}

/// What hubsync remembers about one record of one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSyncState {
    pub key: RecordKey,
    pub outbound: OutboundState,
    pub inbound: InboundState,
}

impl RecordSyncState {
    /// The state of a record hubsync has not synced yet.
    pub fn new(key: RecordKey) -> Self {
        RecordSyncState { key, outbound: OutboundState::default(), inbound: InboundState::default() }
    }
}

/// A claim on a record: only its holder writes the record to HubSpot or changes its outbound part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub holder: String,
    pub until: OffsetDateTime,
}

impl Claim {
    /// Whether the holder may still start a HubSpot write under this claim at `now`.
    pub fn leaves_time_to_write(&self, now: OffsetDateTime) -> bool {
        self.until - now >= CLAIM_MARGIN
    }
}

/// The record state item as versions of hubsync before the per-record protocol stored it, in
/// one JSON body. Read so that existing deployments keep their history; never written.
#[derive(Debug, Deserialize)]
pub struct LegacyRecordState {
    pub hubspot_id: Option<String>,
    #[serde(default)]
    pub last_pushed_change_ms: Option<i64>,
    pub last_applied_version_ms: Option<i64>,
    #[serde(default)]
    pub pushed_values: BTreeMap<String, String>,
    #[serde(default)]
    pub delivered_values: BTreeMap<String, Value>,
}

impl LegacyRecordState {
    /// The two parts, with the record-wide times standing for each value's own.
    pub fn into_parts(self) -> (OutboundState, InboundState) {
        let pushed_at = self.last_pushed_change_ms.unwrap_or(0);
        let applied_at = self.last_applied_version_ms.unwrap_or(0);
        let outbound = OutboundState {
            hubspot_id: self.hubspot_id,
            written: self.pushed_values.into_iter().map(|(p, v)| (p, Stamped::new(v, pushed_at))).collect(),
            ..OutboundState::default()
        };
        let inbound = InboundState {
            revision: 0,
            applied_version_ms: self.last_applied_version_ms,
            delivered: self.delivered_values.into_iter().map(|(f, v)| (f, Stamped::new(v, applied_at))).collect(),
        };
        (outbound, inbound)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_written_value_never_gives_way_to_an_older_change() {
        let mut state = OutboundState::default();
        state.writing.insert("firstname".into(), Stamped::new("Ada".into(), 20));
        state.record_written(&BTreeMap::from([("firstname".into(), Stamped::new("Ada".into(), 20))]));
        state.record_written(&BTreeMap::from([("firstname".into(), Stamped::new("Old".into(), 10))]));
        assert_eq!(state.written["firstname"], Stamped::new("Ada".to_string(), 20));
        assert!(state.writing.is_empty(), "a recorded write is no longer in flight");
        assert_eq!(state.own("firstname", "Ada"), Some(20));
        assert_eq!(state.own("firstname", "Grace"), None);
    }

    #[test]
    fn delivered_fields_keep_their_newest_version() {
        let mut state = InboundState::default();
        state.merge_delivered(30, &BTreeMap::from([("first_name".into(), Stamped::new(json!("New"), 30))]));
        state.merge_delivered(20, &BTreeMap::from([("first_name".into(), Stamped::new(json!("Old"), 20))]));
        assert_eq!(state.delivered["first_name"].value, json!("New"));
        assert_eq!(state.applied_version_ms, Some(30));
    }

    #[test]
    fn a_claim_leaves_time_to_write_only_with_its_margin() {
        let now = OffsetDateTime::UNIX_EPOCH;
        assert!(Claim { holder: "a".into(), until: now + CLAIM_TTL }.leaves_time_to_write(now));
        assert!(!Claim { holder: "a".into(), until: now + CLAIM_MARGIN / 2 }.leaves_time_to_write(now));
    }

    #[test]
    fn a_legacy_state_keeps_what_was_written_and_delivered() {
        let legacy: LegacyRecordState = serde_json::from_value(json!({
            "connection_id": "c1", "object_type": "contacts", "record_key": "ada@example.com",
            "hubspot_id": "501", "last_pushed_hash": "ab", "last_pushed_change_ms": 7,
            "last_applied_version_ms": 9, "pushed_values": { "firstname": "Ada" },
            "delivered_values": { "job_title": "CTO" }
        }))
        .unwrap();
        let (outbound, inbound) = legacy.into_parts();
        assert_eq!(outbound.hubspot_id.as_deref(), Some("501"));
        assert_eq!(outbound.written["firstname"], Stamped::new("Ada".to_string(), 7));
        assert_eq!(inbound.delivered["job_title"], Stamped::new(json!("CTO"), 9));
        assert_eq!(inbound.applied_version_ms, Some(9));
    }
}
