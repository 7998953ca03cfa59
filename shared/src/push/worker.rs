//! The push worker: platform changes from the push queue, written to HubSpot in batches of 100.
//!
//! A queue batch is grouped by connection and object. In each group, changes to one record are
//! folded into one (the newest wins), mapped to HubSpot's wire format, and compared with what
//! was last written: stale and unchanged records cost no HubSpot call. The rest are written with
//! the write mode's batch endpoints, then list memberships are applied. Every message ends with
//! one verdict: done (written or skipped with a reason), retry later, or parked with a reason.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::deps::Deps;
use crate::domain::{
    Connection, ConnectionId, ConnectionStatus, MappedRecord, ObjectConfig, ObjectType, PushMessage, RecordSyncState,
    RunCounts, RunKind, RunStatus, SkipReason, SyncRun, WriteMode, map_record, merge_changes,
};
use crate::hubspot::{
    BATCH_LIMIT, BatchOutcome, CrmObject, ErrorClass, ItemError, PropertyValues, UpdateInput, UpsertInput,
};
use crate::ports::ReceivedMessage;
use crate::work::QueueWorker;
use crate::work::calls::{CallFailed, Failure, NEEDS_REAUTH, PacedCalls, Target};
use crate::work::parking::{Disposition, Verdict, settle};

#[async_trait::async_trait]
impl QueueWorker for PushWorker {
    async fn process(&self, batch: &[ReceivedMessage]) -> Vec<Disposition> {
        self.process_batch(batch).await
    }
}

/// The final word on one record of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Created,
    Updated,
    Unchanged,
    Skipped(String),
    /// Not done; try again later (HubSpot busy or down, token being renewed...).
    Retry(String),
    /// HubSpot refused it for a reason retrying will not fix: parked with that reason.
    Failed(String),
}

/// One platform record in a group: its messages (newest last), folded into one change.
struct Record {
    indexes: Vec<usize>,
    change: PushMessage,
    mapped: MappedRecord,
    state: Option<RecordSyncState>,
    hubspot_id: Option<String>,
    /// HubSpot now holds `mapped`: the record's sync state is saved whatever the lists do.
    written: bool,
    outcome: Option<Outcome>,
}

impl Record {
    fn key(&self) -> &str {
        &self.mapped.record_key
    }

    fn settle(&mut self, outcome: Outcome) {
        // The first settled outcome stands, except that a list failure overrides a write.
        if self.outcome.is_none()
            || matches!(self.outcome, Some(Outcome::Created | Outcome::Updated | Outcome::Unchanged))
        {
            self.outcome = Some(outcome);
        }
    }

    fn pending(&self) -> bool {
        self.outcome.is_none()
    }
}

/// A group ready for HubSpot, and the records already settled without it.
struct Prepared {
    target: Target,
    config: ObjectConfig,
    records: Vec<Record>,
    settled: Vec<(Vec<usize>, Outcome)>,
}

/// What a failed HubSpot call means for the records it carried.
fn call_outcome(failed: &CallFailed) -> Outcome {
    match failed.failure() {
        Failure::Retry(reason) => Outcome::Retry(reason),
        Failure::Permanent(reason) => Outcome::Failed(reason),
    }
}

pub struct PushWorker {
    deps: Deps,
    calls: PacedCalls,
}

impl PushWorker {
    pub fn new(deps: Deps) -> Self {
        let calls = PacedCalls::new(deps.clone());
        PushWorker { deps, calls }
    }

    /// Processes one queue batch; the answer has one disposition per message, in order.
    pub async fn process_batch(&self, batch: &[ReceivedMessage]) -> Vec<Disposition> {
        let mut verdicts = vec![Verdict::Done; batch.len()];
        let mut groups: BTreeMap<(ConnectionId, ObjectType), Vec<(usize, PushMessage)>> = BTreeMap::new();
        for (index, message) in batch.iter().enumerate() {
            match PushMessage::parse(&message.body) {
                Ok((change, object)) => {
                    groups.entry((change.connection_id.clone(), object)).or_default().push((index, change))
                }
                Err(poison) => verdicts[index] = Verdict::Park(format!("unreadable message: {poison}")),
            }
        }
        for ((connection_id, object), changes) in groups {
            self.push_group(&connection_id, object, changes, &mut verdicts).await;
        }
        let mut dispositions = Vec::with_capacity(batch.len());
        for (message, verdict) in batch.iter().zip(verdicts) {
            dispositions.push(settle(&*self.deps.push.parked, message, verdict, self.deps.clock.now()).await);
        }
        dispositions
    }

    async fn push_group(
        &self,
        connection_id: &ConnectionId,
        object: ObjectType,
        changes: Vec<(usize, PushMessage)>,
        verdicts: &mut [Verdict],
    ) {
        let mut run = SyncRun::start(connection_id.clone(), RunKind::Push, self.deps.clock.now());
        run.counts.received = changes.len() as u64;
        match self.prepare(connection_id, object, changes).await {
            Err((indexes, outcome)) => {
                for index in indexes {
                    record_outcome(&outcome, &[index], verdicts, &mut run.counts);
                }
            }
            Ok(Prepared { target, config, mut records, settled }) => {
                for (indexes, outcome) in settled {
                    record_outcome(&outcome, &indexes, verdicts, &mut run.counts);
                }
                self.announce_writes(&target.connection, object, &mut records).await;
                self.write(&target, object, &config, &mut records).await;
                self.apply_lists(&target, &config, &mut records).await;
                self.save_states(&target.connection, object, &mut records).await;
                for record in &records {
                    for field in &record.mapped.unmapped_fields {
                        *run.counts.ignored_fields.entry(field.clone()).or_default() += 1;
                    }
                    let outcome = record.outcome.clone().unwrap_or_else(|| Outcome::Retry("not attempted".into()));
                    record_outcome(&outcome, &record.indexes, verdicts, &mut run.counts);
                }
            }
        }
        run.status = if run.counts.failed.is_empty() { RunStatus::Succeeded } else { RunStatus::Failed };
        run.finished_at = Some(self.deps.clock.now());
        tracing::info!(connection = %connection_id, %object, counts = ?run.counts, "push run");
        if let Err(err) = self.deps.store.put_run(&run).await {
            tracing::warn!(connection = %connection_id, error = %err, "could not record a push run");
        }
    }

    /// Everything before HubSpot: the connection, its config, folding, mapping, and the
    /// comparison with what was last written. `Err` settles the whole group at once.
    async fn prepare(
        &self,
        connection_id: &ConnectionId,
        object: ObjectType,
        changes: Vec<(usize, PushMessage)>,
    ) -> Result<Prepared, (Vec<usize>, Outcome)> {
        let indexes: Vec<usize> = changes.iter().map(|(i, _)| *i).collect();
        let whole_group = |outcome: Outcome| (indexes.clone(), outcome);
        let retry_store = |err: crate::ports::StoreError| whole_group(Outcome::Retry(err.to_string()));

        let connection = self.deps.store.get_connection(connection_id).await.map_err(retry_store)?;
        let Some(connection) = connection else {
            return Err(whole_group(skipped(SkipReason::ConnectionGone(connection_id.clone()))));
        };
        match connection.status {
            ConnectionStatus::Active => {}
            ConnectionStatus::Disabled => return Err(whole_group(skipped(SkipReason::ConnectionDisabled))),
            ConnectionStatus::NeedsReauth | ConnectionStatus::Pending => {
                return Err(whole_group(Outcome::Retry(NEEDS_REAUTH.into())));
            }
        }
        let stored = self.deps.store.get_config(connection_id).await.map_err(retry_store)?.map(|c| c.config);
        let Some((config, limit_per_10s)) =
            stored.and_then(|c| Some((c.objects.get(&object)?.clone(), c.options.rate_limit_per_10s)))
        else {
            return Err(whole_group(skipped(SkipReason::ObjectNotConfigured(object))));
        };

        // Fold the changes to each record; map each folded change.
        let mut by_key: BTreeMap<String, Vec<(usize, PushMessage)>> = BTreeMap::new();
        for (index, change) in changes {
            by_key.entry(config.match_key.normalise(&change.record_key)).or_default().push((index, change));
        }
        let mut records = Vec::new();
        let mut settled = Vec::new();
        for (_, mut versions) in by_key {
            versions.sort_by_key(|(_, change)| change.changed_at);
            let change = merge_changes(versions.iter().map(|(_, c)| c).collect()).expect("at least one change");
            let indexes: Vec<usize> = versions.iter().map(|(i, _)| *i).collect();
            match map_record(&change, &config) {
                Ok(mapped) => records.push(Record {
                    indexes,
                    change,
                    mapped,
                    state: None,
                    hubspot_id: None,
                    written: false,
                    outcome: None,
                }),
                Err(reason) => settled.push((indexes, skipped(reason))),
            }
        }

        let keys: Vec<String> = records.iter().map(|r| r.key().to_string()).collect();
        let mut states = self.deps.store.get_record_states(connection_id, object, &keys).await.map_err(retry_store)?;
        for record in &mut records {
            record.state = states.remove(record.key());
            let Some(state) = &record.state else { continue };
            record.hubspot_id = state.hubspot_id.clone();
            let change_ms = millis(record.change.changed_at);
            if state.last_pushed_change_ms.is_some_and(|written| change_ms < written) {
                record.settle(skipped(SkipReason::Superseded));
            } else if state.last_pushed_hash.as_deref() == Some(record.mapped.payload_hash().as_str()) {
                record.settle(Outcome::Unchanged);
            }
        }
        Ok(Prepared { target: Target { connection, limit_per_10s }, config, records, settled })
    }

    /// Writes the pending records with the write mode's batch endpoints.
    async fn write(&self, target: &Target, object: ObjectType, config: &ObjectConfig, records: &mut [Record]) {
        let key_property = config.match_key.property().to_string();
        let pending: Vec<usize> = (0..records.len()).filter(|&i| records[i].pending()).collect();
        if pending.is_empty() {
            return;
        }
        if config.write_mode == WriteMode::Upsert && config.match_key.is_unique_in_hubspot() {
            for chunk in pending.chunks(BATCH_LIMIT) {
                let inputs: Vec<UpsertInput> = chunk
                    .iter()
                    .map(|&i| UpsertInput {
                        id: records[i].key().to_string(),
                        properties: records[i].mapped.properties.clone(),
                    })
                    .collect();
                let outcome = self
                    .calls.batch(target, |token| {
                        let (inputs, key_property) = (&inputs, &key_property);
                        async move { self.deps.hubspot.objects(&token, object).batch_upsert(key_property, inputs).await }
                    })
                    .await;
                settle_writes(records, chunk, outcome, |obj| {
                    if obj.new == Some(true) { Outcome::Created } else { Outcome::Updated }
                });
            }
            return;
        }

        // Other modes (and keys HubSpot cannot upsert by) first find which records exist.
        let existing = self.find_existing(target, object, config, records, &pending).await;
        let (mut updates, mut creates) = (Vec::new(), Vec::new());
        for &i in &pending {
            let record = &mut records[i];
            if !record.pending() {
                continue;
            }
            match (existing.get(record.key()), config.write_mode) {
                (Some(id), WriteMode::CreateOnly) => {
                    record.hubspot_id = Some(id.clone());
                    record.settle(skipped(SkipReason::ExistsForCreate));
                }
                (Some(id), _) => {
                    record.hubspot_id = Some(id.clone());
                    updates.push(i);
                }
                (None, WriteMode::UpdateOnly) => {
                    record.settle(skipped(SkipReason::NotFoundForUpdate));
                }
                (None, _) => creates.push(i),
            }
        }
        for chunk in updates.chunks(BATCH_LIMIT) {
            let inputs: Vec<UpdateInput> = chunk
                .iter()
                .map(|&i| UpdateInput {
                    id: records[i].hubspot_id.clone().expect("found above"),
                    properties: records[i].mapped.properties.clone(),
                })
                .collect();
            let outcome = self
                .calls
                .batch(target, |token| {
                    let inputs = &inputs;
                    async move { self.deps.hubspot.objects(&token, object).batch_update(inputs, None).await }
                })
                .await;
            settle_writes(records, chunk, outcome, |_| Outcome::Updated);
        }
        for chunk in creates.chunks(BATCH_LIMIT) {
            let inputs: Vec<PropertyValues> = chunk.iter().map(|&i| records[i].mapped.properties.clone()).collect();
            let outcome = self
                .calls
                .batch(target, |token| {
                    let inputs = &inputs;
                    async move { self.deps.hubspot.objects(&token, object).batch_create(inputs).await }
                })
                .await;
            settle_writes(records, chunk, outcome, |_| Outcome::Created);
        }
    }

    /// Record key → HubSpot id of the pending records that exist in HubSpot. Unique keys are
    /// read by `idProperty`; company names and domains are searched, after the ids hubsync
    /// already knows (search's index lags fresh writes). Records the lookup failed for are settled.
    async fn find_existing(
        &self,
        target: &Target,
        object: ObjectType,
        config: &ObjectConfig,
        records: &mut [Record],
        pending: &[usize],
    ) -> HashMap<String, String> {
        let property = config.match_key.property().to_string();
        let mut found = HashMap::new();
        if config.match_key.is_unique_in_hubspot() {
            for chunk in pending.chunks(BATCH_LIMIT) {
                let keys: Vec<String> = chunk.iter().map(|&i| records[i].key().to_string()).collect();
                let outcome = self
                    .calls
                    .batch(target, |token| {
                        let (keys, property) = (&keys, &property);
                        async move {
                            self.deps
                                .hubspot
                                .objects(&token, object)
                                .batch_read(keys, Some(property), &[property])
                                .await
                        }
                    })
                    .await;
                match outcome {
                    Ok(outcome) => {
                        for (&i, item) in chunk.iter().zip(outcome.items) {
                            match item {
                                Ok(obj) => {
                                    found.insert(records[i].key().to_string(), obj.id().to_string());
                                }
                                Err(ItemError::Rejected(body))
                                    if body.category.as_deref() == Some("OBJECT_NOT_FOUND") => {}
                                Err(err) => records[i].settle(item_outcome(&err)),
                            }
                        }
                    }
                    Err(failed) => chunk.iter().for_each(|&i| records[i].settle(call_outcome(&failed))),
                }
            }
            return found;
        }
        let mut unknown = Vec::new();
        for &i in pending {
            match &records[i].hubspot_id {
                Some(id) => {
                    found.insert(records[i].key().to_string(), id.clone());
                }
                None => unknown.push(i),
            }
        }
        if unknown.is_empty() {
            return found;
        }
        let values: Vec<String> = unknown.iter().map(|&i| records[i].key().to_string()).collect();
        let searched = self
            .calls
            .call(target, |token| {
                let (values, property) = (&values, &property);
                async move { self.deps.hubspot.objects(&token, object).search_in(property, values, &[property]).await }
            })
            .await;
        match searched {
            Ok(matches) => {
                // Several HubSpot records may share a domain or name: the oldest is the match.
                for obj in matches {
                    let Some(value) = obj.property(&property) else { continue };
                    let key = config.match_key.normalise(value);
                    let id = obj.id().to_string();
                    let entry = found.entry(key).or_insert_with(|| id.clone());
                    if id.parse::<u64>().ok() < entry.parse::<u64>().ok() {
                        *entry = id;
                    }
                }
            }
            Err(failed) => unknown.iter().for_each(|&i| records[i].settle(call_outcome(&failed))),
        }
        found
    }

    /// Adds and removes list memberships: the object's configured lists for every record
    /// written, plus each change's own list changes.
    async fn apply_lists(&self, target: &Target, config: &ObjectConfig, records: &mut [Record]) {
        // list id → (record indexes, HubSpot ids) to add, and to remove.
        let mut adds: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut removes: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, record) in records.iter().enumerate() {
            let in_hubspot = matches!(record.outcome, Some(Outcome::Created | Outcome::Updated | Outcome::Unchanged));
            if !in_hubspot || record.hubspot_id.is_none() {
                continue;
            }
            let mut to_add: BTreeSet<&String> = record.change.lists.add.iter().collect();
            if record.written {
                to_add.extend(config.lists.iter());
            }
            for list in to_add {
                adds.entry(list.clone()).or_default().push(i);
            }
            for list in &record.change.lists.remove {
                removes.entry(list.clone()).or_default().push(i);
            }
        }
        for (list_id, members, adding) in
            adds.into_iter().map(|(l, m)| (l, m, true)).chain(removes.into_iter().map(|(l, m)| (l, m, false)))
        {
            let ids: Vec<String> = members.iter().filter_map(|&i| records[i].hubspot_id.clone()).collect();
            let result = self
                .calls
                .call(target, |token| {
                    let (ids, list_id) = (&ids, &list_id);
                    async move {
                        let lists = self.deps.hubspot.lists(&token);
                        let list = lists.get(list_id).await?;
                        if !list.processing_type.accepts_manual_changes() {
                            return Ok(Err(format!(
                                "list {list_id} ({}) is {}: HubSpot maintains its members by filter; \
                                 use a MANUAL or SNAPSHOT list",
                                list.name,
                                list.processing_type.as_str()
                            )));
                        }
                        let change =
                            if adding { lists.add(list_id, ids).await? } else { lists.remove(list_id, ids).await? };
                        Ok(Ok(change))
                    }
                })
                .await;
            let outcome = match result {
                Ok(Ok(_)) => continue,
                Ok(Err(refusal)) => Outcome::Failed(refusal),
                Err(failed) => match call_outcome(&failed) {
                    Outcome::Failed(reason) => Outcome::Failed(format!("list {list_id}: {reason}")),
                    other => other,
                },
            };
            members.iter().for_each(|&i| records[i].settle(outcome.clone()));
        }
    }

    /// Notes the values about to be written before writing them, so that HubSpot showing them
    /// (to a pull, say) is known as hubsync's own write even if this worker stops before it
    /// records the write. Records whose note cannot be saved are retried, not written.
    async fn announce_writes(&self, connection: &Connection, object: ObjectType, records: &mut [Record]) {
        let pending: Vec<usize> = (0..records.len()).filter(|&i| records[i].pending()).collect();
        let states: Vec<RecordSyncState> = pending
            .iter()
            .map(|&i| {
                let record = &mut records[i];
                let mut state = record
                    .state
                    .clone()
                    .unwrap_or_else(|| RecordSyncState::new(connection.id.clone(), object, record.key().to_string()));
                state.writing_values.extend(record.mapped.properties.clone());
                record.state = Some(state.clone());
                state
            })
            .collect();
        if states.is_empty() {
            return;
        }
        if let Err(err) = self.deps.store.put_record_states(&states).await {
            for i in pending {
                records[i].settle(Outcome::Retry(format!("not written: its sync state could not be saved: {err}")));
            }
        }
    }

    /// Saves the sync state of every record HubSpot now holds. If that fails, they are retried:
    /// writing the same values again is harmless.
    async fn save_states(&self, connection: &Connection, object: ObjectType, records: &mut [Record]) {
        let mut states = Vec::new();
        let mut saved = Vec::new();
        for (i, record) in records.iter().enumerate() {
            let learned_id = record.hubspot_id.is_some()
                && record.state.as_ref().and_then(|s| s.hubspot_id.as_ref()) != record.hubspot_id.as_ref();
            if !record.written && !learned_id {
                continue;
            }
            let previous = record.state.clone();
            let mut state = previous
                .unwrap_or_else(|| RecordSyncState::new(connection.id.clone(), object, record.key().to_string()));
            state.hubspot_id = record.hubspot_id.clone();
            if record.written {
                state.last_pushed_hash = Some(record.mapped.payload_hash());
                state.last_pushed_change_ms = Some(millis(record.change.changed_at));
                // A change may carry some fields only: what was written before still stands.
                state.pushed_values.extend(record.mapped.properties.clone());
                state.writing_values.retain(|property, _| !record.mapped.properties.contains_key(property));
            }
            states.push(state);
            saved.push(i);
        }
        if states.is_empty() {
            return;
        }
        if let Err(err) = self.deps.store.put_record_states(&states).await {
            for i in saved {
                if records[i].written {
                    records[i].outcome =
                        Some(Outcome::Retry(format!("written, but its sync state was not saved: {err}")));
                }
            }
        }
    }
}

/// Settles each record of a batch call from its item: success by `on_success`, failure by class.
fn settle_writes(
    records: &mut [Record],
    chunk: &[usize],
    outcome: Result<BatchOutcome<CrmObject>, CallFailed>,
    on_success: impl Fn(&CrmObject) -> Outcome,
) {
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(failed) => return chunk.iter().for_each(|&i| records[i].settle(call_outcome(&failed))),
    };
    for (&i, item) in chunk.iter().zip(outcome.items) {
        let record = &mut records[i];
        match item {
            Ok(obj) => {
                if let Some(id) = &obj.id {
                    record.hubspot_id = Some(id.clone());
                }
                record.written = true;
                record.settle(on_success(&obj));
            }
            Err(err) => record.settle(item_outcome(&err)),
        }
    }
}

fn skipped(reason: SkipReason) -> Outcome {
    Outcome::Skipped(reason.to_string())
}

fn item_outcome(err: &ItemError) -> Outcome {
    match err.class() {
        ErrorClass::Permanent => Outcome::Failed(match err.body() {
            Some(body) => body.to_string(),
            None => err.to_string(),
        }),
        ErrorClass::Retryable | ErrorClass::Reauth => Outcome::Retry(err.to_string()),
    }
}

/// Marks the messages of one record and counts them: the newest carries the record's outcome,
/// older ones were folded into it, unless the record is retried or parked (then all are).
fn record_outcome(outcome: &Outcome, indexes: &[usize], verdicts: &mut [Verdict], counts: &mut RunCounts) {
    let older = indexes.len().saturating_sub(1);
    for &index in indexes {
        verdicts[index] = match outcome {
            Outcome::Retry(reason) => {
                counts.retry(reason.clone());
                Verdict::Retry(reason.clone())
            }
            Outcome::Failed(reason) => {
                counts.fail(reason.clone());
                Verdict::Park(reason.clone())
            }
            _ => Verdict::Done,
        };
    }
    if matches!(outcome, Outcome::Retry(_) | Outcome::Failed(_)) {
        return;
    }
    (0..older).for_each(|_| counts.skip(SkipReason::Merged.to_string()));
    match outcome {
        Outcome::Created => counts.created += 1,
        Outcome::Updated => counts.updated += 1,
        Outcome::Unchanged => counts.unchanged += 1,
        Outcome::Skipped(reason) => counts.skip(reason.clone()),
        Outcome::Retry(_) | Outcome::Failed(_) => unreachable!("handled above"),
    }
}

fn millis(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}
