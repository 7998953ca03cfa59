//! The push worker: platform changes from the push queue, written to HubSpot in batches of 100.
//!
//! A queue batch is grouped by connection and object. In each group, changes to one record are
//! folded into one (the newest wins), mapped to HubSpot's wire format, and compared with what
//! was last written: stale and unchanged records cost no HubSpot call. The rest are written with
//! the write mode's batch endpoints, then list memberships are applied. Every message ends with
//! one verdict: done (written or skipped with a reason), retry later, or parked with a reason.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::time::Duration;

use crate::connect::calls::{CallError, with_token};
use crate::connect::tokens::TokenError;
use crate::deps::Deps;
use crate::domain::{
    Connection, ConnectionId, ConnectionStatus, MappedRecord, ObjectConfig, ObjectType, PushMessage, RecordSyncState,
    RunCounts, RunKind, RunStatus, Secret, SkipReason, SyncRun, WriteMode, map_record, merge_changes,
};
use crate::hubspot::{
    BATCH_LIMIT, BatchOutcome, CrmObject, ErrorClass, HubSpotError, ItemError, PropertyValues, UpdateInput, UpsertInput,
};
use crate::ports::queue::MAX_BATCH_MESSAGES;
use crate::ports::{Queue, QueueError, ReceivedMessage};
use crate::push::pacer::{PaceError, Pacer};
use crate::push::parking::{Disposition, MAX_ATTEMPTS, ParkNote, backoff, park};

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

/// What happens to one queue message.
#[derive(Debug, Clone)]
enum Verdict {
    Done,
    Retry(String),
    Park(String),
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

/// The connection a group writes through, with its share of the portal's rate budget.
struct Target {
    connection: Connection,
    limit_per_10s: Option<u32>,
}

/// A group ready for HubSpot, and the records already settled without it.
struct Prepared {
    target: Target,
    config: ObjectConfig,
    records: Vec<Record>,
    settled: Vec<(Vec<usize>, Outcome)>,
}

/// Why a HubSpot call did not happen or did not succeed as a whole.
#[derive(Debug, thiserror::Error)]
enum CallFailed {
    #[error(transparent)]
    Pace(#[from] PaceError),
    #[error(transparent)]
    Call(#[from] CallError),
}

impl CallFailed {
    fn outcome(&self) -> Outcome {
        match self {
            CallFailed::Call(CallError::Token(TokenError::NeedsReauth(_) | TokenError::NotConnected(_))) => {
                Outcome::Retry(NEEDS_REAUTH.into())
            }
            CallFailed::Call(CallError::HubSpot(err)) if err.class() == ErrorClass::Permanent => {
                Outcome::Failed(err.to_string())
            }
            other => Outcome::Retry(other.to_string()),
        }
    }
}

const NEEDS_REAUTH: &str = "the connection needs re-authorisation: reinstall the HubSpot app, then redrive";

pub struct PushWorker {
    deps: Deps,
    pacer: Pacer,
}

impl PushWorker {
    pub fn new(deps: Deps) -> Self {
        let pacer = Pacer::new(deps.store.clone());
        PushWorker { deps, pacer }
    }

    /// Processes one queue batch; the answer has one disposition per message, in order.
    pub async fn process(&self, batch: &[ReceivedMessage]) -> Vec<Disposition> {
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
            dispositions.push(self.settle(message, verdict).await);
        }
        dispositions
    }

    /// Receives one batch from `queue`, processes it, and deletes or backs off each message:
    /// what Lambda's SQS trigger does, for the local runner, tests and benchmarks.
    /// Returns how many messages were received.
    pub async fn poll(&self, queue: &dyn Queue, wait: Duration) -> Result<usize, QueueError> {
        let batch = queue.receive(MAX_BATCH_MESSAGES, wait).await?;
        for (message, disposition) in batch.iter().zip(self.process(&batch).await) {
            match disposition {
                Disposition::Done => queue.delete(&message.receipt_handle).await?,
                Disposition::RetryAfter(delay) => queue.change_visibility(&message.receipt_handle, delay).await?,
            }
        }
        Ok(batch.len())
    }

    async fn settle(&self, message: &ReceivedMessage, verdict: Verdict) -> Disposition {
        let reason = match verdict {
            Verdict::Done => return Disposition::Done,
            Verdict::Retry(reason) if message.receive_count < MAX_ATTEMPTS => {
                tracing::info!(message = %message.message_id, attempt = message.receive_count, %reason, "push retried later");
                return Disposition::RetryAfter(backoff(message.receive_count));
            }
            Verdict::Retry(reason) => format!("gave up after {} attempts: {reason}", message.receive_count),
            Verdict::Park(reason) => reason,
        };
        let note = ParkNote {
            reason,
            connection_id: connection_of(&message.body),
            attempts: message.receive_count,
            parked_at: self.deps.clock.now(),
        };
        match park(&*self.deps.push.parked, &message.body, note).await {
            Ok(()) => Disposition::Done,
            Err(err) => {
                tracing::error!(message = %message.message_id, error = %err, "could not park a message; it stays queued");
                Disposition::RetryAfter(backoff(1))
            }
        }
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
                    .batch(target, |token| {
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
                    Err(failed) => chunk.iter().for_each(|&i| records[i].settle(failed.outcome())),
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
            Err(failed) => unknown.iter().for_each(|&i| records[i].settle(failed.outcome())),
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
                Err(failed) => match failed.outcome() {
                    Outcome::Failed(reason) => Outcome::Failed(format!("list {list_id}: {reason}")),
                    other => other,
                },
            };
            members.iter().for_each(|&i| records[i].settle(outcome.clone()));
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
            let mut state = previous.unwrap_or_else(|| RecordSyncState {
                connection_id: connection.id.clone(),
                object_type: object,
                record_key: record.key().to_string(),
                hubspot_id: None,
                last_pushed_hash: None,
                last_pushed_change_ms: None,
                last_applied_version_ms: None,
            });
            state.hubspot_id = record.hubspot_id.clone();
            if record.written {
                state.last_pushed_hash = Some(record.mapped.payload_hash());
                state.last_pushed_change_ms = Some(millis(record.change.changed_at));
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

    /// One paced HubSpot call with the connection's token (renewed once on a 401).
    async fn call<T, F, Fut>(&self, target: &Target, call: F) -> Result<T, CallFailed>
    where
        F: Fn(Secret) -> Fut,
        Fut: Future<Output = Result<T, HubSpotError>>,
    {
        let connection = &target.connection;
        self.pacer.wait_turn(connection.portal_id, target.limit_per_10s).await?;
        let result = with_token(&self.deps, &connection.id, call).await;
        if let Err(CallError::HubSpot(err)) = &result {
            self.observe(connection, err).await;
        }
        Ok(result?)
    }

    /// A paced batch call. A batch reports failures per input; a refused token or a spent
    /// budget fails every input alike, and is handled here once for the call.
    async fn batch<F, Fut>(&self, target: &Target, call: F) -> Result<BatchOutcome<CrmObject>, CallFailed>
    where
        F: Fn(Secret) -> Fut,
        Fut: Future<Output = BatchOutcome<CrmObject>>,
    {
        let connection = &target.connection;
        let outcome = self
            .call(target, |token| {
                let pending = call(token);
                async move {
                    let outcome = pending.await;
                    match credentials_refused(&outcome) {
                        Some(err) => Err(err),
                        None => Ok(outcome),
                    }
                }
            })
            .await?;
        if let Err(err) = self.pacer.observe(connection.portal_id, outcome.rate_limit).await {
            tracing::warn!(error = %err, "could not record HubSpot's rate-limit headers");
        }
        for item in &outcome.items {
            if let Err(ItemError::CallFailed(err)) = item {
                self.observe(connection, err).await;
                break;
            }
        }
        Ok(outcome)
    }

    /// After a failed call: a 429 holds the portal's budget for everyone.
    async fn observe(&self, connection: &Connection, err: &HubSpotError) {
        if let HubSpotError::RateLimited(response) = err {
            let pause = response.retry_after.unwrap_or(std::time::Duration::from_secs(10));
            tracing::warn!(portal = connection.portal_id, ?pause, "HubSpot rate limit reached; holding the budget");
            if let Err(err) = self.pacer.hold(connection.portal_id, pause).await {
                tracing::warn!(error = %err, "could not hold the rate budget");
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
        Err(failed) => return chunk.iter().for_each(|&i| records[i].settle(failed.outcome())),
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

/// The call-wide credentials failure of a batch, rebuilt as the error `with_token` acts on.
fn credentials_refused(outcome: &BatchOutcome<CrmObject>) -> Option<HubSpotError> {
    outcome.items.iter().find_map(|item| match item {
        Err(ItemError::CallFailed(err)) => match err.as_ref() {
            HubSpotError::Unauthorized(response) => Some(HubSpotError::Unauthorized(response.clone())),
            HubSpotError::InactiveToken => Some(HubSpotError::InactiveToken),
            _ => None,
        },
        _ => None,
    })
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

/// The connection a raw message names, for the parking note, even when it is otherwise unreadable.
fn connection_of(body: &str) -> Option<ConnectionId> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    value.get("connection_id")?.as_str().map(ConnectionId::new)
}
