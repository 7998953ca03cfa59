//! One HubSpot record on its way to the platform: the events about it, what HubSpot has, what
//! the platform is sent, and how it ended.

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::domain::news::{HubSpotChange, RecordReading};
use crate::domain::{EventKind, InboundEvent, ObjectConfig, ObjectType, RecordKey, RecordSyncState, Stamped};
use crate::hubspot::CrmObject;
use crate::inbound::platform::DeliveredRecord;
use crate::inbound::read::version_of;
use crate::work::{Outcome, Settled};

pub struct InboundRecord {
    pub object: ObjectType,
    pub object_id: u64,
    /// Messages with events about this record, and how many events.
    pub indexes: Vec<usize>,
    pub events: usize,
    /// The newest event decides what is delivered (a deletion, or the record as it is now).
    pub latest: InboundEvent,
    /// What the events said of property changes (value and time).
    pub evidence: BTreeMap<String, Vec<HubSpotChange>>,
    /// What HubSpot has, once read.
    pub reading: Option<RecordReading>,
    /// The platform's key (the match key's value), when HubSpot has one for the record.
    pub record_key: Option<String>,
    /// HubSpot no longer has the record: the platform is sent a deletion.
    pub gone: bool,
    /// What the platform is sent, once decided.
    pub delivery: Option<DeliveredRecord>,
    /// HubSpot changes hubsync's write overwrote though they were newer: to write back.
    pub restore: BTreeMap<String, Stamped<Value>>,
    /// The record's sync state, once read (or as read with its claim).
    pub state: Option<RecordSyncState>,
    pub claimed: bool,
    /// The platform refused or failed this record alone (not the whole delivery).
    pub refused_by_platform: bool,
    pub outcome: Option<Outcome>,
}

impl InboundRecord {
    pub fn new(object: ObjectType, object_id: u64, indexes: Vec<usize>, latest: InboundEvent) -> Self {
        InboundRecord {
            object,
            object_id,
            indexes,
            events: 1,
            latest,
            evidence: BTreeMap::new(),
            reading: None,
            record_key: None,
            gone: false,
            delivery: None,
            restore: BTreeMap::new(),
            state: None,
            claimed: false,
            refused_by_platform: false,
            outcome: None,
        }
    }

    /// The first outcome stands.
    pub fn settle(&mut self, outcome: Outcome) {
        if self.outcome.is_none() {
            self.outcome = Some(outcome);
        }
    }

    pub fn pending(&self) -> bool {
        self.outcome.is_none()
    }

    pub fn key(&self, connection: &crate::domain::ConnectionId) -> Option<RecordKey> {
        Some(RecordKey::new(connection.clone(), self.object, self.record_key.clone()?))
    }

    /// `created`, `changed`, `deleted`, `restored`, `merged`.
    pub fn event_name(&self) -> &'static str {
        if self.gone {
            return "deleted";
        }
        match &self.latest.kind {
            EventKind::Created => "created",
            EventKind::Changed { .. } | EventKind::Refresh => "changed",
            EventKind::Deleted => "deleted",
            EventKind::Restored => "restored",
            EventKind::Merged { .. } => "merged",
        }
    }

    /// Takes what HubSpot has of the record; `history`, when read, joins the events' evidence.
    pub fn take_reading(
        &mut self,
        config: &ObjectConfig,
        found: &CrmObject,
        history: Option<BTreeMap<String, Vec<HubSpotChange>>>,
    ) {
        let values = config
            .fields
            .iter()
            .filter(|f| f.direction.comes_in() && f.from_associated.is_none())
            .map(|f| (f.hubspot_property.clone(), found.property(&f.hubspot_property).unwrap_or_default().to_string()))
            .collect();
        let mut changes = self.evidence.clone();
        let history_read = history.is_some();
        for (property, mut known) in history.unwrap_or_default() {
            changes.entry(property).or_default().append(&mut known);
        }
        let associated = self.reading.take().map(|r| r.associated).unwrap_or_default();
        self.reading = Some(RecordReading {
            values,
            associated,
            version_ms: version_of(found, self.latest.occurred_at_ms),
            changes,
            history_read,
        });
        let key_property = config.match_key.property();
        self.record_key = found.property(key_property).filter(|v| !v.is_empty()).map(|v| config.match_key.normalise(v));
    }

    /// HubSpot no longer has the record.
    pub fn gone(&mut self) {
        self.gone = true;
        self.reading = None;
    }

    /// The idempotency key of one delivery of this record: its event, version, and a digest of
    /// the fields sent with their versions. A retry of the same delivery has the same key (the
    /// platform may skip it); two deliveries of one record version with different fields (one
    /// with a job title, a later one with a first name decided under the record's claim) have
    /// different keys, so the platform never skips the second as already applied.
    pub fn idempotency_key(&self, version_ms: i64, fields: &BTreeMap<String, Stamped<Value>>) -> String {
        let content = serde_json::to_vec(fields).expect("values serialise");
        let digest: String = Sha256::digest(&content).iter().take(6).map(|b| format!("{b:02x}")).collect();
        format!("{}:{}:{}:{version_ms}:{digest}", self.object, self.object_id, self.event_name())
    }

    /// What became of it, for the pipeline: its other events were folded into the newest.
    pub fn settled(self) -> Settled {
        let outcome = self.outcome.unwrap_or_else(|| Outcome::Retry("not attempted".into()));
        Settled { indexes: self.indexes, outcome, folded: self.events.saturating_sub(1) }
    }
}

/// Groups events by HubSpot record; the newest event of each decides what is delivered, and
/// every property change reported joins the record's evidence.
pub fn fold(events: Vec<(usize, InboundEvent)>) -> Vec<InboundRecord> {
    let mut by_id: BTreeMap<(ObjectType, u64), InboundRecord> = BTreeMap::new();
    for (index, event) in events {
        // A merge is about the record the others were merged into.
        let object_id = match &event.kind {
            EventKind::Merged { into, .. } => *into,
            _ => event.object_id,
        };
        let record = by_id.entry((event.object, object_id)).or_insert_with(|| {
            let mut record = InboundRecord::new(event.object, object_id, Vec::new(), event.clone());
            record.events = 0;
            record
        });
        record.events += 1;
        if !record.indexes.contains(&index) {
            record.indexes.push(index);
        }
        if let EventKind::Changed { property, value: Some(value) } = &event.kind {
            let change = HubSpotChange { value: value.clone(), at_ms: event.occurred_at_ms, own: false };
            record.evidence.entry(property.clone()).or_default().push(change);
        }
        if event.occurred_at_ms >= record.latest.occurred_at_ms {
            record.latest = event;
        }
    }
    by_id.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(object_id: u64, at: i64, kind: EventKind) -> InboundEvent {
        InboundEvent { object: ObjectType::Contacts, object_id, occurred_at_ms: at, kind }
    }

    #[test]
    fn events_fold_per_record_keeping_what_each_change_said() {
        let changed = |value: &str| EventKind::Changed { property: "firstname".into(), value: Some(value.into()) };
        let records = fold(vec![
            (0, event(7, 20, changed("Grace"))),
            (1, event(7, 10, changed("Ada"))),
            (1, event(8, 5, EventKind::Created)),
        ]);
        assert_eq!(records.len(), 2);
        let seven = &records[0];
        assert_eq!((seven.object_id, seven.events, seven.indexes.clone()), (7, 2, vec![0, 1]));
        assert_eq!(seven.latest.occurred_at_ms, 20);
        assert_eq!(seven.evidence["firstname"].len(), 2);
    }

    #[test]
    fn a_delivery_key_names_the_fields_sent_as_well_as_the_version() {
        let record = fold(vec![(0, event(7, 20, EventKind::Created))]).remove(0);
        let title = BTreeMap::from([("job_title".to_string(), Stamped::new(serde_json::json!("Countess"), 20))]);
        let mut both = title.clone();
        both.insert("first_name".into(), Stamped::new(serde_json::json!("Ada"), 20));
        assert_eq!(record.idempotency_key(20, &title), record.idempotency_key(20, &title), "a retry keeps its key");
        assert_ne!(record.idempotency_key(20, &title), record.idempotency_key(20, &both), "other fields, other key");
        assert!(record.idempotency_key(20, &title).starts_with("contacts:7:created:20:"));
    }
}
