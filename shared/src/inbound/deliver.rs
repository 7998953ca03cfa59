//! The part of inbound work that webhooks and pulls share: deciding what of each record HubSpot
//! has is news for the platform ([`crate::domain::news`]), delivering it, and recording what
//! the platform applied.
//!
//! A decision about a field mapped both ways is taken under the record's claim, from a read made
//! under it: no push of the record can then land between the read and the delivery, so a
//! HubSpot value delivered is never one a push is overwriting (see [`crate::domain::record`]).
//! A newer HubSpot change that a push did overwrite (a person's edit between the push's check
//! and its write) is delivered and written back to HubSpot.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use time::format_description::well_known::Rfc3339;

use crate::domain::news::{Assessment, assess};
use crate::domain::{
    ConnectionId, InboundState, ObjectConfig, ObjectType, PUSH_MESSAGE_VERSION, PortalId, RecordKey, RecordSyncState,
    Stamped,
};
use crate::inbound::platform::{DELIVERY_TIMEOUT, DeliveredRecord, Delivery, DeliveryError, RecordStatus};
use crate::inbound::read::Reader;
use crate::inbound::record::InboundRecord;
use crate::ports::{OutgoingMessage, StoreError};
use crate::work::Outcome;
use crate::work::claims::{Claims, held};

/// Records per delivery to the platform.
pub const DELIVERY_BATCH: usize = 100;
/// Tries of saving what the platform applied when other workers save the same record meanwhile.
const SAVE_TRIES: usize = 8;

/// One connection's inbound work: its reads, its claims and the platform it delivers to.
pub struct Delivering<'a> {
    pub reader: Reader<'a>,
    /// Claims for deciding both-ways fields: the webhook path takes them, so that a change a
    /// push overwrote is seen after the push (and written back). A pull, which cannot see such
    /// a change anyway, judges without them, from the values' history.
    pub claims: Option<&'a Claims>,
    pub portal_id: PortalId,
    pub ingest_url: &'a str,
}

impl Delivering<'_> {
    fn connection_id(&self) -> &ConnectionId {
        &self.reader.target.connection.id
    }

    /// Decides what of each read record of `object` the platform is sent. `resend` says which
    /// records get every inbound field (a creation, a full sync); `only_fields` keeps just
    /// those (a backfill of newly mapped fields).
    pub async fn judge(
        &self,
        object: ObjectType,
        config: &ObjectConfig,
        records: &mut [InboundRecord],
        resend: &(dyn Fn(&InboundRecord) -> bool + Sync),
        only_fields: Option<&[String]>,
    ) {
        let mut read = Vec::new();
        for (i, record) in records.iter_mut().enumerate() {
            if !record.pending() || record.object != object {
                continue;
            }
            if record.gone || matches!(record.latest.kind, crate::domain::EventKind::Deleted) {
                record.delivery = Some(self.tombstone(record));
            } else if record.reading.is_some() {
                read.push(i);
            }
        }
        let keys: Vec<String> = read.iter().filter_map(|&i| records[i].record_key.clone()).collect();
        let mut states = match self.reader.deps.store.get_record_states(self.connection_id(), object, &keys).await {
            Ok(states) => states,
            Err(err) => {
                read.iter().for_each(|&i| records[i].settle(Outcome::Retry(err.to_string())));
                return;
            }
        };
        // First from what was read and what the events said; records whose both-ways fields
        // need deciding are claimed, read again with their history, and judged from that.
        let mut to_claim = Vec::new();
        for &i in &read {
            let record = &mut records[i];
            let Some(key) = record.key(self.connection_id()) else {
                // No key, no state: judged as a record hubsync knows nothing of.
                let nothing = RecordSyncState::new(RecordKey::new(self.connection_id().clone(), object, String::new()));
                let assessment = assess(config, record.reading.as_ref().expect("read"), &nothing, resend(record));
                self.finish(config, record, assessment, only_fields, true);
                continue;
            };
            let state = states.remove(&key.record_key).unwrap_or_else(|| RecordSyncState::new(key.clone()));
            let assessment = assess(config, record.reading.as_ref().expect("read"), &state, resend(record));
            record.state = Some(state);
            if assessment.touches_both_ways(config) {
                to_claim.push((i, key));
            } else {
                self.finish(config, record, assessment, only_fields, false);
            }
        }
        let mut again = Vec::new();
        if let Some(claims) = self.claims {
            let keys: Vec<RecordKey> = to_claim.iter().map(|(_, key)| key.clone()).collect();
            let claimed = match claims.claim(&keys).await {
                Ok(claimed) => claimed,
                Err(err) => {
                    claims.release(&keys).await;
                    to_claim.iter().for_each(|&(i, _)| records[i].settle(Outcome::Retry(err.to_string())));
                    return;
                }
            };
            for ((i, _), state) in to_claim.into_iter().zip(claimed) {
                match state {
                    None => records[i].settle(held()),
                    Some(state) => {
                        records[i].state = Some(state);
                        records[i].claimed = true;
                        again.push(i);
                    }
                }
            }
        } else {
            again = to_claim.into_iter().map(|(i, _)| i).collect();
        }
        self.reader.records(object, config, records, &again, true).await;
        for i in again {
            let record = &mut records[i];
            if !record.pending() {
                continue;
            }
            if record.gone {
                record.delivery = Some(self.tombstone(record));
                continue;
            }
            let state = record.state.clone().expect("claimed with its state");
            let assessment = assess(config, record.reading.as_ref().expect("read again"), &state, resend(record));
            self.finish(config, record, assessment, only_fields, false);
        }
    }

    /// Turns a record's assessment into what the platform is sent, or settles it.
    fn finish(
        &self,
        config: &ObjectConfig,
        record: &mut InboundRecord,
        assessment: Assessment,
        only_fields: Option<&[String]>,
        unkeyed: bool,
    ) {
        let mut fields = assessment.fields;
        if let Some(only) = only_fields {
            fields.retain(|name, _| only.contains(name));
        }
        if unkeyed {
            // Without a key there is no state to judge both-ways values by: only inbound fields go.
            let both: Vec<&String> = config
                .fields
                .iter()
                .filter(|f| f.direction == crate::domain::Direction::Both)
                .map(|f| &f.platform_field)
                .collect();
            fields.retain(|name, _| !both.contains(&name));
        } else {
            record.restore = assessment.restore;
        }
        let event = record.event_name();
        if fields.is_empty() && record.restore.is_empty() && event == "changed" {
            let reason = if assessment.echoes {
                "echo of hubsync's own write"
            } else {
                "nothing new for the platform: it has every value"
            };
            record.settle(Outcome::Skipped(reason.into()));
            return;
        }
        let reading = record.reading.as_ref().expect("judged records were read");
        let version_ms = fields.values().map(|f| f.at_ms).fold(reading.version_ms, i64::max);
        let merged_ids = match &record.latest.kind {
            crate::domain::EventKind::Merged { into, merged } => {
                merged.iter().filter(|id| *id != into).map(u64::to_string).collect()
            }
            _ => Vec::new(),
        };
        record.delivery = Some(DeliveredRecord {
            idempotency_key: record.idempotency_key(version_ms, &fields),
            object: record.object,
            hubspot_id: record.object_id.to_string(),
            record_key: record.record_key.clone(),
            event,
            trigger: None,
            version_ms,
            field_versions_ms: fields.iter().map(|(name, value)| (name.clone(), value.at_ms)).collect(),
            fields: fields.into_iter().map(|(name, value)| (name, value.value)).collect(),
            merged_ids,
        });
    }

    fn tombstone(&self, record: &InboundRecord) -> DeliveredRecord {
        let version_ms = record.latest.occurred_at_ms;
        DeliveredRecord {
            idempotency_key: format!("{}:{}:deleted:{version_ms}", record.object, record.object_id),
            object: record.object,
            hubspot_id: record.object_id.to_string(),
            record_key: None,
            event: "deleted",
            trigger: None,
            version_ms,
            field_versions_ms: BTreeMap::new(),
            fields: BTreeMap::new(),
            merged_ids: Vec::new(),
        }
    }

    /// Posts the decided records to the platform in batches, settles each from its answer,
    /// records what it applied, and writes back to HubSpot the changes a push overwrote.
    pub async fn deliver(&self, records: &mut [InboundRecord]) {
        let ready: Vec<usize> =
            (0..records.len()).filter(|&i| records[i].pending() && records[i].delivery.is_some()).collect();
        let deps = self.reader.deps;
        let secrets = match deps.secrets.app_secrets().await {
            Ok(secrets) => secrets,
            Err(err) => {
                ready.iter().for_each(|&i| records[i].settle(Outcome::Retry(err.to_string())));
                return;
            }
        };
        let mut applied = Vec::new();
        for chunk in ready.chunks(DELIVERY_BATCH) {
            // A delivery may take the platform client's whole timeout: none starts that could
            // outlast the invocation (what is left goes back to the queue).
            if !self.reader.target.deadline.allows(deps.clock.now(), DELIVERY_TIMEOUT + Duration::from_secs(5)) {
                chunk.iter().for_each(|&i| records[i].settle(crate::work::deadline::out_of_time()));
                continue;
            }
            let delivery = Delivery {
                connection_id: self.connection_id().clone(),
                portal_id: self.portal_id,
                records: chunk.iter().filter_map(|&i| records[i].delivery.clone()).collect(),
            };
            let now_ms = (deps.clock.now().unix_timestamp_nanos() / 1_000_000) as i64;
            let answers =
                deps.platform.deliver(self.ingest_url, &secrets.delivery_signing_secret, now_ms, &delivery).await;
            for &i in chunk {
                let record = &mut records[i];
                let key = record.delivery.as_ref().expect("ready records have a delivery").idempotency_key.clone();
                let answer = match &answers {
                    Ok(answers) => answers.get(&key),
                    Err(DeliveryError::Retryable(reason)) => {
                        record.settle(Outcome::Retry(reason.clone()));
                        continue;
                    }
                    Err(err @ (DeliveryError::Refused(_) | DeliveryError::NotAllowed(_))) => {
                        // Parked with the reason, to be redriven once the platform or the URL is fixed.
                        record.refused_by_platform = true;
                        record.settle(Outcome::Failed(err.to_string()));
                        continue;
                    }
                };
                match answer.map(|a| (a.status, a.message.clone())) {
                    Some((RecordStatus::Applied, _)) => {
                        let created = record.delivery.as_ref().is_some_and(|d| d.event == "created");
                        record.settle(if created { Outcome::Created } else { Outcome::Updated });
                        applied.push(i);
                    }
                    Some((RecordStatus::NotFound, _)) => {
                        record.settle(Outcome::Skipped("not found on the platform".into()))
                    }
                    Some((RecordStatus::Error, message)) => {
                        let reason = message.unwrap_or_else(|| "the platform reported an error".into());
                        record.refused_by_platform = true;
                        record.settle(Outcome::Retry(format!("the platform: {reason}")));
                    }
                    None => record.settle(Outcome::Retry("the platform's answer left this record out".into())),
                }
            }
        }
        // Written back only once the platform has the value: a write-back of a change the
        // platform never got would make it look like hubsync's own write, and it would never
        // be delivered. Queued before it is recorded as delivered: if the queueing fails, the
        // retry delivers (idempotently) and queues again.
        let applied = self.write_back(records, applied).await;
        if let Err(err) = self.remember(records, &applied).await {
            for i in applied {
                records[i].outcome = Some(Outcome::Retry(format!("delivered, but not recorded: {err}")));
            }
        }
    }

    /// Records what the platform applied, merged into each record's inbound part by
    /// compare-and-set: another worker's save meanwhile is read again and merged, never lost.
    async fn remember(&self, records: &[InboundRecord], applied: &[usize]) -> Result<(), StoreError> {
        let mut pending: Vec<Applied> = Vec::new();
        for &i in applied {
            let record = &records[i];
            let (Some(delivery), Some(key)) = (&record.delivery, record.key(self.connection_id())) else { continue };
            if delivery.event == "trigger" {
                continue;
            }
            let fields = delivery
                .fields
                .iter()
                .map(|(name, value)| {
                    let at = delivery.field_versions_ms.get(name).copied().unwrap_or(delivery.version_ms);
                    (name.clone(), Stamped::new(value.clone(), at))
                })
                .collect();
            let state = record.state.clone().unwrap_or_else(|| RecordSyncState::new(key.clone()));
            pending.push((key, fields, delivery.version_ms, state));
        }
        let store = &self.reader.deps.store;
        for _ in 0..SAVE_TRIES {
            if pending.is_empty() {
                return Ok(());
            }
            let saves: Vec<(RecordKey, InboundState)> = pending
                .iter()
                .map(|(key, fields, version, state)| {
                    let mut inbound = state.inbound.clone();
                    inbound.merge_delivered(*version, fields);
                    (key.clone(), inbound)
                })
                .collect();
            let saved = store.save_inbound(&saves).await?;
            let mut lost: Vec<_> = pending.into_iter().zip(saved).filter(|(_, saved)| !saved).map(|(p, _)| p).collect();
            // Saved by another worker meanwhile: read again and merge again.
            for (key, _, _, state) in &mut lost {
                let mut read = store
                    .get_record_states(&key.connection_id, key.object_type, std::slice::from_ref(&key.record_key))
                    .await?;
                *state = read.remove(&key.record_key).unwrap_or_else(|| RecordSyncState::new(key.clone()));
            }
            pending = lost;
        }
        Err(StoreError::Unavailable("the record's delivered state kept changing; try again".into()))
    }

    /// Queues, as platform changes stamped with their HubSpot time, the HubSpot changes a push
    /// overwrote although they were newer, of the records the platform applied: the push worker
    /// writes them back under the record's claim. Answers the applied records whose write-backs
    /// (if any) are queued; the others are retried.
    async fn write_back(&self, records: &mut [InboundRecord], applied: Vec<usize>) -> Vec<usize> {
        let mut queued = Vec::with_capacity(applied.len());
        for i in applied {
            let record = &mut records[i];
            let Some(record_key) = record.record_key.clone().filter(|_| !record.restore.is_empty()) else {
                queued.push(i);
                continue;
            };
            let mut messages = Vec::new();
            for (field, value) in &record.restore {
                let Ok(changed_at) =
                    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(value.at_ms) * 1_000_000)
                        .map_err(|_| ())
                        .and_then(|t| t.format(&Rfc3339).map_err(|_| ()))
                else {
                    continue;
                };
                let message = serde_json::json!({
                    "version": PUSH_MESSAGE_VERSION,
                    "connection_id": self.connection_id(),
                    "object": record.object.api_name(),
                    "record_key": record_key,
                    "fields": { field: value.value },
                    "changed_at": changed_at,
                    "idempotency_key": format!("restore:{}:{}:{field}:{}", record.object, record.object_id, value.at_ms),
                });
                messages.push(OutgoingMessage::new(message.to_string()));
            }
            match self.reader.deps.push.work.send(messages).await {
                Ok(()) => queued.push(i),
                Err(err) => {
                    record.outcome =
                        Some(Outcome::Retry(format!("a HubSpot change to write back could not be queued: {err}")))
                }
            }
        }
        queued
    }

    /// Gives up the claims taken while judging.
    pub async fn release(&self, records: &[InboundRecord]) {
        let Some(claims) = self.claims else { return };
        let keys: Vec<RecordKey> =
            records.iter().filter(|r| r.claimed).filter_map(|r| r.key(self.connection_id())).collect();
        claims.release(&keys).await;
    }
}

/// What the platform applied of one record: its key, the fields with their versions, the
/// record's version, and its state as last read.
type Applied = (RecordKey, BTreeMap<String, Stamped<Value>>, i64, RecordSyncState);
