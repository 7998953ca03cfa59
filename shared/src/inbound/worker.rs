//! The inbound worker: HubSpot changes from the inbound queue, read from HubSpot in batches of
//! 100 and delivered to the platform's ingest endpoint.
//!
//! Events to one record are folded (the newest decides: a deletion is delivered as a
//! tombstone, anything else reads the record as it is now). A version the platform already has
//! is not delivered again, and a change that only shows what hubsync itself last wrote is an
//! echo, not news. The platform answers per record: applied, not found (recorded as skipped),
//! or error (retried with backoff, then parked with the reason).

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::Value;

use crate::deps::Deps;
use crate::domain::inbound::MAX_WEBHOOK_EVENTS;
use crate::domain::inbound::{fans_out_to_contacts, to_platform_value, wanted_by_mappings};
use crate::domain::{
    ConnectionConfig, ConnectionId, ConnectionStatus, EventKind, Firing, INBOUND_MESSAGE_VERSION, InboundEvent,
    InboundMessage, ObjectConfig, ObjectType, PortalId, RecordSyncState, RunCounts, RunKind, RunStatus, SyncRun,
    Trigger, TriggerRecord,
};
use crate::hubspot::{BATCH_LIMIT, CrmObject, ItemError};
use crate::inbound::platform::{DeliveredRecord, Delivery, DeliveryError, PlatformClient, RecordStatus};
use crate::ports::ReceivedMessage;
use crate::work::calls::{Failure, NEEDS_REAUTH, PacedCalls, Target};
use crate::work::{Disposition, QueueWorker, Verdict, settle};

/// Records per delivery to the platform.
pub const DELIVERY_BATCH: usize = 100;

pub struct InboundWorker {
    pub(super) deps: Deps,
    pub(super) calls: PacedCalls,
    platform: PlatformClient,
}

#[async_trait]
impl QueueWorker for InboundWorker {
    async fn process(&self, batch: &[ReceivedMessage]) -> Vec<Disposition> {
        self.process_batch(batch).await
    }
}

/// One connection's events about one object: its portal, and the events with their message index.
type Group = (PortalId, Vec<(usize, InboundEvent)>);

/// One HubSpot record of a group, and the messages whose events concern it.
pub(super) struct Pending {
    pub(super) object_id: u64,
    /// Messages with events about this record, and how many events.
    pub(super) indexes: Vec<usize>,
    pub(super) events: usize,
    /// The newest event decides what is delivered.
    pub(super) latest: InboundEvent,
    pub(super) delivery: Option<DeliveredRecord>,
    pub(super) verdict: Option<(Verdict, Counted)>,
    /// The record's sync state, once read (`Some(None)`: hubsync has none yet).
    pub(super) state: Option<Option<RecordSyncState>>,
}

/// Where a record lands in the run's counts.
#[derive(Debug, Clone)]
pub(super) enum Counted {
    Delivered { created: bool },
    Skipped(String),
    Retried(String),
    Failed(String),
}

impl Pending {
    pub(super) fn new(object_id: u64, indexes: Vec<usize>, latest: InboundEvent) -> Self {
        Pending { object_id, indexes, events: 1, latest, delivery: None, verdict: None, state: None }
    }

    fn settle(&mut self, verdict: Verdict, counted: Counted) {
        if self.verdict.is_none() {
            self.verdict = Some((verdict, counted));
        }
    }

    fn skip(&mut self, reason: impl Into<String>) {
        let reason = reason.into();
        self.settle(Verdict::Done, Counted::Skipped(reason));
    }

    fn fail(&mut self, failure: Failure) {
        match failure {
            Failure::Retry(reason) => self.settle(Verdict::Retry(reason.clone()), Counted::Retried(reason)),
            Failure::Permanent(reason) => self.settle(Verdict::Park(reason.clone()), Counted::Failed(reason)),
        }
    }
}

impl InboundWorker {
    pub fn new(deps: Deps) -> Self {
        let calls = PacedCalls::new(deps.clone());
        InboundWorker { deps, calls, platform: PlatformClient::new() }
    }

    pub async fn process_batch(&self, batch: &[ReceivedMessage]) -> Vec<Disposition> {
        let mut verdicts = vec![Verdict::Done; batch.len()];
        let mut groups: BTreeMap<(ConnectionId, ObjectType), Group> = BTreeMap::new();
        for (index, message) in batch.iter().enumerate() {
            match parse(&message.body) {
                Ok(message) => {
                    for event in message.events {
                        let group = groups.entry((message.connection_id.clone(), event.object)).or_default();
                        group.0 = message.portal_id;
                        group.1.push((index, event));
                    }
                }
                Err(reason) => verdicts[index] = Verdict::Park(format!("unreadable message: {reason}")),
            }
        }
        for ((connection_id, object), (portal_id, events)) in groups {
            for (index, verdict) in self.deliver_group(&connection_id, portal_id, object, events).await {
                verdicts[index] = std::mem::replace(&mut verdicts[index], Verdict::Done).combine(verdict);
            }
        }
        let mut dispositions = Vec::with_capacity(batch.len());
        for (message, verdict) in batch.iter().zip(verdicts) {
            dispositions.push(settle(&*self.deps.inbound.parked, message, verdict, self.deps.clock.now()).await);
        }
        dispositions
    }

    /// Delivers one connection's events about one object; returns a verdict per message index.
    async fn deliver_group(
        &self,
        connection_id: &ConnectionId,
        portal_id: PortalId,
        object: ObjectType,
        events: Vec<(usize, InboundEvent)>,
    ) -> Vec<(usize, Verdict)> {
        let mut run = SyncRun::start(connection_id.clone(), RunKind::Inbound, self.deps.clock.now());
        run.counts.received = events.len() as u64;
        let mut records = Vec::new();
        let prepared = self.prepare(connection_id).await;
        if let Err((verdict, counted)) = &prepared {
            records.extend(fold(events.clone()).into_iter().map(|mut r| {
                r.settle(verdict.clone(), counted.clone());
                r
            }));
        }
        if let Ok((target, config, ingest_url)) = prepared {
            let (mapped, fan_out, firings) = split(&config, events);
            records.extend(self.mapped_records(&target, &config, object, mapped).await);
            if !fan_out.is_empty() {
                let contact_events = self.to_contact_events(&target, object, fan_out, &mut records).await;
                records.extend(self.mapped_records(&target, &config, ObjectType::Contacts, contact_events).await);
            }
            records.extend(self.fire_triggers(&target, &config, object, firings).await);
            self.deliver(&target, portal_id, &ingest_url, &mut records).await;
        }
        let mut verdicts = Vec::new();
        for record in records {
            let (verdict, counted) = record
                .verdict
                .unwrap_or((Verdict::Retry("not attempted".into()), Counted::Retried("not attempted".into())));
            count(&mut run.counts, &counted, record.events);
            verdicts.extend(record.indexes.into_iter().map(|i| (i, verdict.clone())));
        }
        run.status = if run.counts.failed.is_empty() { RunStatus::Succeeded } else { RunStatus::Failed };
        run.finished_at = Some(self.deps.clock.now());
        tracing::info!(connection = %connection_id, %object, counts = ?run.counts, "inbound run");
        if let Err(err) = self.deps.store.put_run(&run).await {
            tracing::warn!(connection = %connection_id, error = %err, "could not record an inbound run");
        }
        verdicts
    }

    /// What the config's mappings deliver for these events: the records as they are now,
    /// unless the platform has that version already.
    async fn mapped_records(
        &self,
        target: &Target,
        config: &ConnectionConfig,
        object: ObjectType,
        events: Vec<(usize, InboundEvent)>,
    ) -> Vec<Pending> {
        let mut records = fold(events);
        if records.is_empty() {
            return records;
        }
        match config.objects.get(&object) {
            Some(object_config) => {
                self.read(target, object, object_config, &mut records).await;
                self.add_associated_fields(target, object_config, &mut records).await;
                self.skip_known(&target.connection.id, object, object_config, &mut records, Known::VersionsAndValues)
                    .await;
            }
            None => records.iter_mut().for_each(|r| r.skip(format!("{object} are no longer configured"))),
        }
        records
    }

    /// A company or deal change, as a change of each associated contact. Events whose
    /// contacts cannot be looked up are settled into `records`.
    async fn to_contact_events(
        &self,
        target: &Target,
        object: ObjectType,
        events: Vec<(usize, InboundEvent)>,
        records: &mut Vec<Pending>,
    ) -> Vec<(usize, InboundEvent)> {
        let ids: Vec<String> = events.iter().map(|(_, e)| e.object_id.to_string()).collect();
        let contacts_of = match self.associated(target, object, ObjectType::Contacts, &ids).await {
            Ok(contacts_of) => contacts_of,
            Err(failure) => {
                records.extend(fold(events).into_iter().map(|mut r| {
                    r.fail(failure.clone());
                    r
                }));
                return Vec::new();
            }
        };
        let mut contact_events = Vec::new();
        for (index, event) in events {
            let contacts = contacts_of.get(&event.object_id.to_string()).cloned().unwrap_or_default();
            for contact in contacts.iter().filter_map(|c| c.parse::<u64>().ok()) {
                contact_events
                    .push((index, InboundEvent { object: ObjectType::Contacts, object_id: contact, ..event.clone() }));
            }
        }
        contact_events
    }

    /// Fills the fields a contact reads from its associated company or deal (the first one);
    /// the version delivered is the newest of the contact and those records.
    pub(super) async fn add_associated_fields(&self, target: &Target, config: &ObjectConfig, records: &mut [Pending]) {
        let mut by_object: BTreeMap<ObjectType, Vec<String>> = BTreeMap::new();
        for field in config.fields.iter().filter(|f| f.direction.comes_in()) {
            if let Some(associated) = field.from_associated {
                by_object.entry(associated).or_default().push(field.hubspot_property.clone());
            }
        }
        for (associated, mut properties) in by_object {
            properties.push(associated.last_modified_property().to_string());
            let ready: Vec<usize> = (0..records.len())
                .filter(|&i| {
                    records[i].verdict.is_none() && records[i].delivery.as_ref().is_some_and(|d| d.event != "deleted")
                })
                .collect();
            let ids: Vec<String> = ready.iter().map(|&i| records[i].object_id.to_string()).collect();
            let read = async {
                let linked = self.associated(target, ObjectType::Contacts, associated, &ids).await?;
                let first: BTreeMap<String, String> = linked
                    .into_iter()
                    .filter_map(|(contact, ids)| {
                        Some((contact, ids.into_iter().min_by_key(|i| i.parse::<u64>().unwrap_or(u64::MAX))?))
                    })
                    .collect();
                let wanted: Vec<String> = first.values().cloned().collect();
                let values = self.read_properties(target, associated, &wanted, &properties).await?;
                Ok::<_, Failure>((first, values))
            };
            let (first, values) = match read.await {
                Ok(found) => found,
                Err(failure) => {
                    ready.iter().for_each(|&i| records[i].fail(failure.clone()));
                    continue;
                }
            };
            for &i in &ready {
                let record = &mut records[i];
                let values = first.get(&record.object_id.to_string()).and_then(|id| values.get(id));
                let delivery = record.delivery.as_mut().expect("ready records have a delivery");
                for field in config.fields.iter().filter(|f| f.from_associated == Some(associated)) {
                    let raw =
                        values.and_then(|v| v.get(&field.hubspot_property)).map(String::as_str).unwrap_or_default();
                    delivery.fields.insert(field.platform_field.clone(), to_platform_value(raw, field.platform_type));
                }
                let modified =
                    values.and_then(|v| v.get(associated.last_modified_property())).and_then(|v| v.parse::<i64>().ok());
                if let Some(modified) = modified.filter(|m| *m > delivery.version_ms) {
                    delivery.version_ms = modified;
                    delivery.idempotency_key =
                        idempotency_key(delivery.object, &delivery.hubspot_id, delivery.event, modified);
                }
            }
        }
    }

    /// The connection, its config and ingest URL; or, when work for the connection cannot go
    /// on, what becomes of it.
    pub(super) async fn prepare(
        &self,
        connection_id: &ConnectionId,
    ) -> Result<(Target, ConnectionConfig, String), (Verdict, Counted)> {
        let retry = |reason: String| (Verdict::Retry(reason.clone()), Counted::Retried(reason));
        let skip = |reason: String| (Verdict::Done, Counted::Skipped(reason));
        let connection = match self.deps.store.get_connection(connection_id).await {
            Ok(Some(connection)) => connection,
            Ok(None) => return Err(skip(format!("connection {connection_id} does not exist (uninstalled)"))),
            Err(err) => return Err(retry(err.to_string())),
        };
        match connection.status {
            ConnectionStatus::Active => {}
            ConnectionStatus::Disabled => return Err(skip("connection is disabled".into())),
            ConnectionStatus::NeedsReauth | ConnectionStatus::Pending => return Err(retry(NEEDS_REAUTH.into())),
        }
        let config = match self.deps.store.get_config(connection_id).await {
            Ok(Some(config)) => config.config,
            Ok(None) => return Err(skip("the connection has no config".into())),
            Err(err) => return Err(retry(err.to_string())),
        };
        let Some(ingest_url) = config.options.ingest_url.clone() else {
            let reason = "the config has no `ingest_url` to deliver to: set it, then redrive".to_string();
            return Err((Verdict::Park(reason.clone()), Counted::Failed(reason)));
        };
        Ok((Target { connection, limit_per_10s: config.options.rate_limit_per_10s }, config, ingest_url))
    }

    /// Reads the records that still exist (100 a call) and builds what the platform receives.
    async fn read(&self, target: &Target, object: ObjectType, config: &ObjectConfig, records: &mut [Pending]) {
        let key_property = config.match_key.property().to_string();
        let properties = config.inbound_properties();

        let mut to_read = Vec::new();
        for (i, record) in records.iter_mut().enumerate() {
            if record.verdict.is_some() {
                continue;
            }
            match &record.latest.kind {
                EventKind::Deleted => {
                    record.delivery = Some(tombstone(object, record.object_id, record.latest.occurred_at_ms))
                }
                _ => to_read.push(i),
            }
        }
        for chunk in to_read.chunks(BATCH_LIMIT) {
            let ids: Vec<String> = chunk.iter().map(|&i| records[i].object_id.to_string()).collect();
            let outcome = self
                .calls
                .batch(target, |token| {
                    let (ids, properties) = (&ids, &properties);
                    async move {
                        let names: Vec<&str> = properties.iter().map(String::as_str).collect();
                        self.deps.hubspot.objects(&token, object).batch_read(ids, None, &names).await
                    }
                })
                .await;
            let outcome = match outcome {
                Ok(outcome) => outcome,
                Err(failed) => {
                    chunk.iter().for_each(|&i| records[i].fail(failed.failure()));
                    continue;
                }
            };
            for (&i, item) in chunk.iter().zip(outcome.items) {
                let record = &mut records[i];
                match item {
                    Ok(found) => record.delivery = Some(delivered(object, config, &key_property, record, &found)),
                    // Gone since the event: the platform hears of the deletion instead.
                    Err(ItemError::Rejected(body)) if body.category.as_deref() == Some("OBJECT_NOT_FOUND") => {
                        record.delivery = Some(tombstone(object, record.object_id, record.latest.occurred_at_ms));
                    }
                    Err(err) => record.fail(item_failure(&err)),
                }
            }
        }
    }

    /// Reads what each firing's trigger needs (the records, their contacts, their line items)
    /// and builds its event, or settles it with the reason it cannot be sent.
    async fn fire_triggers(
        &self,
        target: &Target,
        config: &ConnectionConfig,
        object: ObjectType,
        firings: Firings,
    ) -> Vec<Pending> {
        let mut pending = Vec::new();
        let mut by_trigger: BTreeMap<&str, Firings> = BTreeMap::new();
        for (firing, event, indexes) in firings {
            let trigger = config.triggers.iter().find(|t| t.name == firing.trigger).expect("split found it");
            by_trigger.entry(trigger.name.as_str()).or_default().push((firing, event, indexes));
        }
        for (name, firings) in by_trigger {
            let trigger = config.triggers.iter().find(|t| t.name == name).expect("grouped by name");
            let ids: Vec<String> = firings.iter().map(|(f, _, _)| f.object_id.to_string()).collect();
            let read = self.read_for_trigger(target, trigger, object, &ids).await;
            for (firing, event, indexes) in firings {
                let mut record = Pending::new(firing.object_id, indexes, event);
                match &read {
                    Err(failure) => record.fail(failure.clone()),
                    Ok(found) => match found.get(&firing.object_id.to_string()) {
                        None => record.skip(format!("trigger {name}: the record is gone from HubSpot")),
                        Some(found) => match trigger.event_fields(found) {
                            Err(reason) => record.skip(reason),
                            Ok(fields) => {
                                record.delivery = Some(DeliveredRecord {
                                    idempotency_key: firing.idempotency_key(),
                                    object,
                                    hubspot_id: found.id.clone(),
                                    record_key: None,
                                    event: "trigger",
                                    trigger: Some(trigger.name.clone()),
                                    version_ms: firing.occurred_at_ms,
                                    fields: fields.into_iter().map(|(k, v)| (k, Value::String(v))).collect(),
                                    merged_ids: Vec::new(),
                                })
                            }
                        },
                    },
                }
                pending.push(record);
            }
        }
        pending
    }

    /// The records a trigger fires for, with what its fields read, by HubSpot id.
    async fn read_for_trigger(
        &self,
        target: &Target,
        trigger: &Trigger,
        object: ObjectType,
        ids: &[String],
    ) -> Result<BTreeMap<String, TriggerRecord>, Failure> {
        let (properties, item_properties) = trigger.properties();
        let mut found = BTreeMap::new();
        for (id, properties) in self.read_properties(target, object, ids, &properties).await? {
            found.insert(id.clone(), TriggerRecord { id, properties, ..TriggerRecord::default() });
        }
        let present: Vec<String> = found.keys().cloned().collect();
        if trigger.needs_contact() {
            for (id, contacts) in self.associated(target, object, ObjectType::Contacts, &present).await? {
                // The oldest associated contact is the customer.
                let first = contacts.into_iter().min_by_key(|c| c.parse::<u64>().unwrap_or(u64::MAX));
                if let Some(record) = found.get_mut(&id) {
                    record.contact_id = first;
                }
            }
        }
        if !item_properties.is_empty() {
            let items_of = self.associated(target, object, ObjectType::LineItems, &present).await?;
            let mut all_items: Vec<String> = items_of.values().flatten().cloned().collect();
            all_items.sort();
            all_items.dedup();
            let items = self.read_properties(target, ObjectType::LineItems, &all_items, &item_properties).await?;
            for (id, mut item_ids) in items_of {
                item_ids.sort_by_key(|i| i.parse::<u64>().unwrap_or(u64::MAX));
                if let Some(record) = found.get_mut(&id) {
                    record.line_items = item_ids.iter().filter_map(|i| items.get(i).cloned()).collect();
                }
            }
        }
        Ok(found)
    }

    /// Properties of records by id (100 a call); records HubSpot no longer has are absent.
    async fn read_properties(
        &self,
        target: &Target,
        object: ObjectType,
        ids: &[String],
        properties: &[String],
    ) -> Result<BTreeMap<String, BTreeMap<String, String>>, Failure> {
        let mut found = BTreeMap::new();
        for chunk in ids.chunks(BATCH_LIMIT) {
            let outcome = self
                .calls
                .batch(target, |token| async move {
                    let names: Vec<&str> = properties.iter().map(String::as_str).collect();
                    self.deps.hubspot.objects(&token, object).batch_read(chunk, None, &names).await
                })
                .await
                .map_err(|failed| failed.failure())?;
            for item in outcome.items {
                match item {
                    Ok(record) => {
                        let values =
                            record.properties.iter().filter_map(|(k, v)| Some((k.clone(), v.clone()?))).collect();
                        found.insert(record.id().to_string(), values);
                    }
                    Err(ItemError::Rejected(body)) if body.category.as_deref() == Some("OBJECT_NOT_FOUND") => {}
                    Err(err) => return Err(item_failure(&err)),
                }
            }
        }
        Ok(found)
    }

    async fn associated(
        &self,
        target: &Target,
        from: ObjectType,
        to: ObjectType,
        ids: &[String],
    ) -> Result<BTreeMap<String, Vec<String>>, Failure> {
        if ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        self.calls
            .call(target, |token| async move { self.deps.hubspot.associated_ids(&token, from, to, ids).await })
            .await
            .map_err(|failed| failed.failure())
    }

    /// Skips what the platform has. Newer wins: a version it already has is not delivered
    /// again (unless `known` says values only, as for a backfill, whose records carry new
    /// fields of versions delivered before), and a change that only shows what hubsync wrote
    /// itself is an echo of its own write.
    pub(super) async fn skip_known(
        &self,
        connection_id: &ConnectionId,
        object: ObjectType,
        config: &ObjectConfig,
        records: &mut [Pending],
        known: Known,
    ) {
        let keys: Vec<String> = records.iter().filter_map(|r| r.delivery.as_ref()?.record_key.clone()).collect();
        if keys.is_empty() {
            return;
        }
        let states = match self.deps.store.get_record_states(connection_id, object, &keys).await {
            Ok(states) => states,
            Err(err) => {
                records.iter_mut().for_each(|r| r.fail(Failure::Retry(err.to_string())));
                return;
            }
        };
        for record in records.iter_mut().filter(|r| r.verdict.is_none()) {
            let Some(delivery) = record.delivery.as_mut() else { continue };
            let Some(state) = delivery.record_key.as_ref().and_then(|key| states.get(key)) else {
                record.state = Some(None);
                continue;
            };
            record.state = Some(Some(state.clone()));
            let version_known = state.last_applied_version_ms.is_some_and(|applied| applied >= delivery.version_ms);
            if known == Known::VersionsAndValues && version_known {
                record.skip("already delivered: the platform has this version or a newer one");
            } else if delivery.event == "changed" {
                match keep_news(config, delivery, state) {
                    News::Some => {}
                    News::OnlyEchoes => record.skip("echo of hubsync's own write"),
                    News::None => record.skip("nothing new for the platform: it has every value"),
                }
            }
        }
    }

    /// Posts the records to the platform in batches and settles each from its answer.
    pub(super) async fn deliver(
        &self,
        target: &Target,
        portal_id: PortalId,
        ingest_url: &str,
        records: &mut [Pending],
    ) {
        let ready: Vec<usize> =
            (0..records.len()).filter(|&i| records[i].verdict.is_none() && records[i].delivery.is_some()).collect();
        let secrets = match self.deps.secrets.app_secrets().await {
            Ok(secrets) => secrets,
            Err(err) => {
                ready.iter().for_each(|&i| records[i].fail(Failure::Retry(err.to_string())));
                return;
            }
        };
        let mut applied_indexes = Vec::new();
        for chunk in ready.chunks(DELIVERY_BATCH) {
            let delivery = Delivery {
                connection_id: target.connection.id.clone(),
                portal_id,
                records: chunk.iter().filter_map(|&i| records[i].delivery.clone()).collect(),
            };
            let now = self.deps.clock.now();
            let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
            let answers = self.platform.deliver(ingest_url, &secrets.delivery_signing_secret, now_ms, &delivery).await;
            for &i in chunk {
                let record = &mut records[i];
                let delivered = record.delivery.clone().expect("ready records have a delivery");
                let answer = match &answers {
                    Ok(answers) => answers.get(&delivered.idempotency_key),
                    Err(DeliveryError::Retryable(reason)) => {
                        record.fail(Failure::Retry(reason.clone()));
                        continue;
                    }
                    Err(DeliveryError::Refused(reason)) => {
                        record.fail(Failure::Permanent(format!("the platform refused the delivery: {reason}")));
                        continue;
                    }
                };
                match answer.map(|a| (a.status, a.message.clone())) {
                    Some((RecordStatus::Applied, _)) => {
                        record.settle(Verdict::Done, Counted::Delivered { created: delivered.event == "created" });
                        if delivered.record_key.is_some() {
                            applied_indexes.push(i);
                        }
                    }
                    Some((RecordStatus::NotFound, _)) => record.skip("not found on the platform"),
                    Some((RecordStatus::Error, message)) => {
                        let reason = message.unwrap_or_else(|| "the platform reported an error".into());
                        record.fail(Failure::Retry(format!("the platform: {reason}")));
                    }
                    None => record.fail(Failure::Retry("the platform's answer left this record out".into())),
                }
            }
        }
        if let Err(err) = self.remember_applied(&target.connection.id, records, &applied_indexes).await {
            for i in applied_indexes {
                records[i].verdict = Some((
                    Verdict::Retry(format!("delivered, but not recorded: {err}")),
                    Counted::Retried("delivered, but not recorded".into()),
                ));
            }
        }
    }

    /// Records the versions the platform applied, each under its own object (a group can hold
    /// contacts reached through their company). States already read are not read again.
    async fn remember_applied(
        &self,
        connection_id: &ConnectionId,
        records: &[Pending],
        applied: &[usize],
    ) -> Result<(), crate::ports::StoreError> {
        let mut unread: BTreeMap<ObjectType, Vec<String>> = BTreeMap::new();
        for &i in applied {
            let delivery = records[i].delivery.as_ref().expect("applied records have a delivery");
            if records[i].state.is_none() {
                unread.entry(delivery.object).or_default().extend(delivery.record_key.clone());
            }
        }
        let mut read = BTreeMap::new();
        for (object, keys) in unread {
            for (key, state) in self.deps.store.get_record_states(connection_id, object, &keys).await? {
                read.insert((object, key), state);
            }
        }
        let updated: Vec<RecordSyncState> = applied
            .iter()
            .filter_map(|&i| {
                let delivery = records[i].delivery.as_ref()?;
                let key = delivery.record_key.clone()?;
                let known = match &records[i].state {
                    Some(state) => state.clone(),
                    None => read.get(&(delivery.object, key.clone())).cloned(),
                };
                let mut state =
                    known.unwrap_or_else(|| RecordSyncState::new(connection_id.clone(), delivery.object, key));
                let newest = state.last_applied_version_ms.is_none_or(|applied| applied <= delivery.version_ms);
                if newest && delivery.event != "trigger" {
                    state.delivered_values.extend(delivery.fields.clone());
                }
                state.last_applied_version_ms =
                    Some(state.last_applied_version_ms.unwrap_or(0).max(delivery.version_ms));
                Some(state)
            })
            .collect();
        if updated.is_empty() {
            return Ok(());
        }
        self.deps.store.put_record_states(&updated).await
    }
}

/// The events the config's mappings take, and the trigger firings (one per trigger, record
/// and moment, whatever number of events caused it) with the messages that caused them.
fn split(config: &ConnectionConfig, events: Vec<(usize, InboundEvent)>) -> (Events, Events, Firings) {
    let mut mapped = Vec::new();
    let mut fan_out = Vec::new();
    let mut firings: BTreeMap<Firing, (InboundEvent, Vec<usize>)> = BTreeMap::new();
    for (index, event) in events {
        for trigger in config.triggers.iter().filter(|t| t.fires_on(&event)) {
            let firing = Firing {
                trigger: trigger.name.clone(),
                object: event.object,
                object_id: event.object_id,
                occurred_at_ms: event.occurred_at_ms,
            };
            let entry = firings.entry(firing).or_insert_with(|| (event.clone(), Vec::new()));
            if !entry.1.contains(&index) {
                entry.1.push(index);
            }
        }
        if fans_out_to_contacts(config, &event) {
            fan_out.push((index, event.clone()));
        }
        if wanted_by_mappings(config, &event) {
            mapped.push((index, event));
        }
    }
    (mapped, fan_out, firings.into_iter().map(|(firing, (event, indexes))| (firing, event, indexes)).collect())
}

type Events = Vec<(usize, InboundEvent)>;
type Firings = Vec<(Firing, InboundEvent, Vec<usize>)>;

fn item_failure(err: &ItemError) -> Failure {
    match err.class() {
        crate::hubspot::ErrorClass::Permanent => Failure::Permanent(err.to_string()),
        _ => Failure::Retry(err.to_string()),
    }
}

fn parse(body: &str) -> Result<InboundMessage, String> {
    let message: InboundMessage = serde_json::from_str(body).map_err(|e| e.to_string())?;
    if message.version != INBOUND_MESSAGE_VERSION {
        return Err(format!("message version {} is not supported (this hubsync reads version 1)", message.version));
    }
    if message.events.len() > MAX_WEBHOOK_EVENTS {
        return Err(format!("more than {MAX_WEBHOOK_EVENTS} events"));
    }
    Ok(message)
}

/// Groups events by HubSpot record; the newest event of each decides what is delivered.
pub(super) fn fold(events: Vec<(usize, InboundEvent)>) -> Vec<Pending> {
    let mut by_id: BTreeMap<u64, Pending> = BTreeMap::new();
    for (index, event) in events {
        // A merge is about the record the others were merged into.
        let object_id = match &event.kind {
            EventKind::Merged { into, .. } => *into,
            _ => event.object_id,
        };
        let pending = by_id
            .entry(object_id)
            .or_insert_with(|| Pending { events: 0, ..Pending::new(object_id, Vec::new(), event.clone()) });
        pending.events += 1;
        if !pending.indexes.contains(&index) {
            pending.indexes.push(index);
        }
        if event.occurred_at_ms >= pending.latest.occurred_at_ms {
            pending.latest = event;
        }
    }
    by_id.into_values().collect()
}

fn event_name(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::Created => "created",
        EventKind::Changed { .. } => "changed",
        EventKind::Deleted => "deleted",
        EventKind::Restored => "restored",
        EventKind::Merged { .. } => "merged",
    }
}

fn idempotency_key(object: ObjectType, hubspot_id: &str, event: &str, version_ms: i64) -> String {
    format!("{object}:{hubspot_id}:{event}:{version_ms}")
}

fn tombstone(object: ObjectType, object_id: u64, occurred_at_ms: i64) -> DeliveredRecord {
    let hubspot_id = object_id.to_string();
    DeliveredRecord {
        idempotency_key: idempotency_key(object, &hubspot_id, "deleted", occurred_at_ms),
        object,
        hubspot_id,
        record_key: None,
        event: "deleted",
        trigger: None,
        version_ms: occurred_at_ms,
        fields: BTreeMap::new(),
        merged_ids: Vec::new(),
    }
}

/// What the platform receives for a record read from HubSpot: its inbound fields, typed.
pub(super) fn delivered(
    object: ObjectType,
    config: &ObjectConfig,
    key_property: &str,
    record: &Pending,
    found: &CrmObject,
) -> DeliveredRecord {
    let version_ms =
        found.updated_at.map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64).unwrap_or(record.latest.occurred_at_ms);
    let fields = config
        .fields
        .iter()
        .filter(|f| f.direction.comes_in())
        .map(|f| {
            let raw = found.property(&f.hubspot_property).unwrap_or_default();
            (f.platform_field.clone(), to_platform_value(raw, f.platform_type))
        })
        .collect();
    let event = event_name(&record.latest.kind);
    let merged_ids = match &record.latest.kind {
        EventKind::Merged { into, merged } => merged.iter().filter(|id| *id != into).map(u64::to_string).collect(),
        _ => Vec::new(),
    };
    DeliveredRecord {
        idempotency_key: idempotency_key(object, found.id(), event, version_ms),
        object,
        hubspot_id: found.id().to_string(),
        record_key: found.property(key_property).filter(|v| !v.is_empty()).map(|v| config.match_key.normalise(v)),
        event,
        trigger: None,
        version_ms,
        fields,
        merged_ids,
    }
}

/// What the platform is known to have, for [`InboundWorker::skip_known`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Known {
    VersionsAndValues,
    Values,
}

/// What a changed record brings the platform.
#[derive(Debug, PartialEq, Eq)]
enum News {
    /// At least one inbound value the platform does not have.
    Some,
    /// Nothing but values the platform has, some of them hubsync's own writes coming back.
    OnlyEchoes,
    /// Nothing the platform does not already have.
    None,
}

/// Leaves in a changed record only what the platform should hear: a value that merely shows
/// what hubsync itself last wrote is the platform's own data coming back (the platform may have
/// moved on since), so it is taken out; any other value differing from what was last delivered
/// is news.
fn keep_news(config: &ObjectConfig, delivery: &mut DeliveredRecord, state: &RecordSyncState) -> News {
    let mut echoes = false;
    let mut news = false;
    for field in config.fields.iter().filter(|f| f.direction.comes_in()) {
        let Some(value) = delivery.fields.get(&field.platform_field).cloned() else { continue };
        let own = [&state.pushed_values, &state.writing_values]
            .iter()
            .filter_map(|values| values.get(&field.hubspot_property))
            .any(|written| to_platform_value(written, field.platform_type) == value);
        if own {
            delivery.fields.remove(&field.platform_field);
            echoes = true;
        } else if state.delivered_values.get(&field.platform_field).unwrap_or(&Value::Null) != &value {
            news = true;
        }
    }
    match (news, echoes) {
        (true, _) => News::Some,
        (false, true) => News::OnlyEchoes,
        (false, false) => News::None,
    }
}

pub(super) fn count(counts: &mut RunCounts, counted: &Counted, folded_events: usize) {
    match counted {
        Counted::Delivered { created: true } => counts.created += 1,
        Counted::Delivered { created: false } => counts.updated += 1,
        Counted::Skipped(reason) => counts.skip(reason.clone()),
        Counted::Retried(reason) => counts.retry(reason.clone()),
        Counted::Failed(reason) => counts.fail(reason.clone()),
    }
    // The other events about the record were folded into its newest one.
    (1..folded_events).for_each(|_| counts.skip("folded into a newer event of the same record"));
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

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

    fn changed(fields: Value) -> DeliveredRecord {
        DeliveredRecord {
            idempotency_key: "contacts:501:changed:2".into(),
            object: ObjectType::Contacts,
            hubspot_id: "501".into(),
            record_key: Some("ada@example.com".into()),
            event: "changed",
            trigger: None,
            version_ms: 2,
            fields: serde_json::from_value(fields).unwrap(),
            merged_ids: Vec::new(),
        }
    }

    fn state(pushed: &[(&str, &str)], writing: &[(&str, &str)], delivered: Value) -> RecordSyncState {
        let mut state = RecordSyncState::new(ConnectionId::new("c1"), ObjectType::Contacts, "ada@example.com".into());
        state.pushed_values = pushed.iter().map(|(p, v)| (p.to_string(), v.to_string())).collect();
        state.writing_values = writing.iter().map(|(p, v)| (p.to_string(), v.to_string())).collect();
        state.delivered_values = serde_json::from_value(delivered).unwrap();
        state
    }

    #[test]
    fn hubsyncs_own_values_are_left_out_and_the_rest_decides() {
        let known = state(&[("firstname", "Ada")], &[], json!({ "job_title": "CTO" }));

        let mut news = changed(json!({ "first_name": "Ada", "job_title": "CEO" }));
        assert_eq!(keep_news(&contacts(), &mut news, &known), News::Some);
        assert_eq!(news.fields, serde_json::from_value(json!({ "job_title": "CEO" })).unwrap(), "own value left out");

        let mut echo = changed(json!({ "first_name": "Ada", "job_title": "CTO" }));
        assert_eq!(keep_news(&contacts(), &mut echo, &known), News::OnlyEchoes);

        let mut someone_else = changed(json!({ "first_name": "Augusta", "job_title": "CTO" }));
        assert_eq!(keep_news(&contacts(), &mut someone_else, &known), News::Some, "a person's edit is news");
    }

    #[test]
    fn a_value_being_written_is_hubsyncs_own_before_the_write_is_recorded() {
        let writing = state(&[("firstname", "Ada")], &[("firstname", "Augusta")], json!({}));
        let mut record = changed(json!({ "first_name": "Augusta", "job_title": null }));
        assert_eq!(keep_news(&contacts(), &mut record, &writing), News::OnlyEchoes);
    }

    #[test]
    fn a_version_with_only_values_the_platform_has_is_not_news() {
        let delivered = state(&[], &[], json!({ "first_name": "Ada", "job_title": "CTO" }));
        let mut same = changed(json!({ "first_name": "Ada", "job_title": "CTO" }));
        assert_eq!(keep_news(&contacts(), &mut same, &delivered), News::None);

        // A field never delivered counts as empty at the platform.
        let mut cleared = changed(json!({ "first_name": "Ada", "job_title": null }));
        assert_eq!(keep_news(&contacts(), &mut cleared, &delivered), News::Some);
        let nothing_yet = state(&[], &[], json!({}));
        assert_eq!(keep_news(&contacts(), &mut changed(json!({ "job_title": null })), &nothing_yet), News::None);
    }
}
