//! The push job: one connection's platform changes to one object, written to HubSpot under the
//! records' claims (see [`crate::domain::record`]).
//!
//! For each group: changes to one record are folded (newest per field), the records are
//! claimed (a record another worker holds goes back to the queue), each claimed record's plan
//! says what is new ([`plan_write`]), fields mapped both ways are checked against HubSpot's own
//! latest change, the values about to be written are announced in the record's state, written
//! in batches of 100, list memberships and links to related records applied, and the outcome
//! saved as the claims are given up.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::deps::{Deps, QueuePair};
use crate::domain::{
    ObjectConfig, OutboundState, PendingWrite, PushMessage, RecordKey, RecordSyncState, RunKind, SkipReason, WritePlan,
    fold, fold_links, plan_write,
};
use crate::outbound::links::{self, LinkUpdate};
use crate::outbound::lists;
use crate::outbound::write::Writer;
use crate::ports::OutboundSave;
use crate::work::claims::{Claims, held};
use crate::work::gateway::HubSpotGateway;
use crate::work::{Group, GroupResult, Job, Outcome, Routed, Settled};

/// Whether HubSpot holds a record's planned values after the write step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Written {
    /// Not attempted, or refused: HubSpot does not have them.
    No,
    Yes,
    /// Sent, with no answer saying whether HubSpot took them (a timeout, a 5xx).
    Maybe,
}

/// One platform record of a group: its messages, folded, and what becomes of it.
pub(super) struct Record {
    pub indexes: Vec<usize>,
    pub key: RecordKey,
    pub pending: PendingWrite,
    /// Read with the record's claim.
    pub state: RecordSyncState,
    pub plan: WritePlan,
    pub hubspot_id: Option<String>,
    /// HubSpot had the record when it was looked up (for the plan's both-ways check).
    pub found_in_hubspot: bool,
    /// The plan's values are announced in the record's state (`writing`).
    pub announced: bool,
    pub written: Written,
    pub outcome: Option<Outcome>,
    /// What the link step changed, kept in the outbound state with the claim's last save.
    pub link_updates: Vec<LinkUpdate>,
}

impl Record {
    pub fn record_key(&self) -> &str {
        &self.pending.record_key
    }

    /// The first outcome stands, except that a later step (lists, links) going otherwise overrides
    /// a record HubSpot holds ([`Record::in_hubspot`]).
    pub fn settle(&mut self, outcome: Outcome) {
        if self.outcome.is_none() || self.in_hubspot() {
            self.outcome = Some(outcome);
        }
    }

    pub fn pending(&self) -> bool {
        self.outcome.is_none()
    }

    /// Whether HubSpot holds the record as planned: written, nothing to write, or its values
    /// superseded by newer ones already written. Its lists and links may change then: a
    /// change's list memberships and links are its own, whatever became of its fields.
    pub fn in_hubspot(&self) -> bool {
        match &self.outcome {
            Some(Outcome::Created | Outcome::Updated | Outcome::Unchanged) => true,
            Some(Outcome::Skipped(reason)) => {
                self.hubspot_id.is_some() && *reason == SkipReason::Superseded.to_string()
            }
            _ => false,
        }
    }

    /// Records that something of the change (a link) was written after all.
    pub fn changed_after_all(&mut self) {
        if self.in_hubspot() && self.outcome != Some(Outcome::Created) {
            self.outcome = Some(Outcome::Updated);
        }
    }

    /// Settles a record whose plan left nothing to write.
    fn settle_unwritten(&mut self) {
        if self.plan.superseded > 0 && self.plan.unchanged == 0 {
            self.settle(Outcome::Skipped(SkipReason::Superseded.to_string()));
        } else {
            self.settle(Outcome::Unchanged);
        }
    }
}

pub struct PushJob {
    deps: Deps,
    gateway: HubSpotGateway,
}

impl PushJob {
    pub fn new(deps: Deps) -> Self {
        PushJob { gateway: HubSpotGateway::new(deps.clone()), deps }
    }
}

#[async_trait]
impl Job for PushJob {
    type Item = PushMessage;

    fn queues<'a>(&self, deps: &'a Deps) -> &'a QueuePair {
        &deps.push
    }

    fn run_kind(&self) -> Option<RunKind> {
        Some(RunKind::Push)
    }

    fn folded_reason(&self) -> &'static str {
        "merged into a newer change of the same record"
    }

    fn read(&self, body: &str) -> Result<Vec<Routed<PushMessage>>, String> {
        let (change, object) = PushMessage::parse(body).map_err(|poison| poison.to_string())?;
        Ok(vec![Routed { connection_id: change.connection_id.clone(), object, item: change }])
    }

    async fn run(&self, group: &Group, changes: Vec<(usize, PushMessage)>) -> GroupResult {
        let mut result = GroupResult::default();
        let Some(config) = group.config.objects.get(&group.object) else {
            let reason = SkipReason::ObjectNotConfigured(group.object).to_string();
            result.settled =
                changes.iter().map(|(i, _)| Settled::new(vec![*i], Outcome::Skipped(reason.clone()))).collect();
            return result;
        };
        let folded = self.fold_records(group, config, changes, &mut result);
        let claims = Claims::new(&self.deps);
        let mut records = self.claim(&claims, config, folded, &mut result).await;
        self.write_records(group, config, &claims, &mut records).await;
        lists::apply(&self.deps, &self.gateway, &group.target, config, &mut records).await;
        let related = (group.object, &group.config);
        links::apply(&self.deps, &self.gateway, &group.target, related, &claims, &mut records).await;
        save_and_release(&claims, &mut records).await;
        for record in records {
            let outcome = record.outcome.unwrap_or_else(|| Outcome::Retry("not attempted".into()));
            result.settled.push(Settled::new(record.indexes, outcome));
        }
        result
    }
}

impl PushJob {
    /// Folds each record's changes into one; records that cannot be synced are settled.
    fn fold_records(
        &self,
        group: &Group,
        config: &ObjectConfig,
        changes: Vec<(usize, PushMessage)>,
        result: &mut GroupResult,
    ) -> Vec<(Vec<usize>, RecordKey, PendingWrite)> {
        let mut by_key: BTreeMap<String, Vec<(usize, PushMessage)>> = BTreeMap::new();
        for (index, change) in changes {
            by_key.entry(config.match_key.normalise(&change.record_key)).or_default().push((index, change));
        }
        let mut folded = Vec::new();
        for (_, versions) in by_key {
            let indexes: Vec<usize> = versions.iter().map(|(i, _)| *i).collect();
            let messages: Vec<&PushMessage> = versions.iter().map(|(_, m)| m).collect();
            match fold(&messages, config) {
                Ok(mut pending) => {
                    fold_links(&messages, config, &group.config, &mut pending);
                    for field in &pending.unmapped_fields {
                        *result.counts.ignored_fields.entry(field.clone()).or_default() += 1;
                    }
                    let key = RecordKey::new(group.target.connection.id.clone(), group.object, &pending.record_key);
                    folded.push((indexes, key, pending));
                }
                Err(reason) => result.settled.push(Settled::new(indexes, Outcome::Skipped(reason.to_string()))),
            }
        }
        folded
    }

    /// Claims the records and plans each claimed one; the others are handed back.
    async fn claim(
        &self,
        claims: &Claims,
        config: &ObjectConfig,
        folded: Vec<(Vec<usize>, RecordKey, PendingWrite)>,
        result: &mut GroupResult,
    ) -> Vec<Record> {
        let keys: Vec<RecordKey> = folded.iter().map(|(_, key, _)| key.clone()).collect();
        let states = match claims.claim(&keys).await {
            Ok(states) => states,
            Err(err) => {
                // Some claims may have been taken before the failure: give them up.
                claims.release(&keys).await;
                for (indexes, _, _) in folded {
                    result.settled.push(Settled::new(indexes, Outcome::Retry(err.to_string())));
                }
                return Vec::new();
            }
        };
        let mut records = Vec::new();
        for ((indexes, key, pending), state) in folded.into_iter().zip(states) {
            let Some(state) = state else {
                result.settled.push(Settled::new(indexes, held()));
                continue;
            };
            let plan = plan_write(&pending, &state, config);
            let mut record = Record {
                indexes,
                key,
                hubspot_id: state.outbound.hubspot_id.clone(),
                pending,
                state,
                plan,
                found_in_hubspot: false,
                announced: false,
                written: Written::No,
                outcome: None,
                link_updates: Vec::new(),
            };
            if record.plan.write.is_empty() {
                record.settle_unwritten();
            }
            records.push(record);
        }
        records
    }

    /// Checks both-ways values against HubSpot, announces what is left, and writes it.
    async fn write_records(&self, group: &Group, config: &ObjectConfig, claims: &Claims, records: &mut [Record]) {
        let writer =
            Writer { deps: &self.deps, gateway: &self.gateway, target: &group.target, object: group.object, config };
        writer.check_in_hubspot(records).await;
        let key_property = config.match_key.property();
        for record in records.iter_mut().filter(|r| r.pending()) {
            if record.found_in_hubspot && record.plan.only_key(key_property) {
                record.settle_unwritten();
            }
        }
        if !claims.leave_time_to_write() {
            let out_of_time = crate::work::deadline::out_of_time();
            records.iter_mut().filter(|r| r.pending()).for_each(|r| r.settle(out_of_time.clone()));
            return;
        }
        announce(claims, records).await;
        writer.write(records).await;
    }
}

/// Notes the values about to be written in each record's state before writing them, so that
/// HubSpot showing them (to a pull, say) is known as hubsync's own write even if this worker
/// stops before it records the write. A record whose note cannot be saved is not written.
async fn announce(claims: &Claims, records: &mut [Record]) {
    let pending: Vec<usize> = (0..records.len()).filter(|&i| records[i].pending()).collect();
    let saves: Vec<OutboundSave> = pending
        .iter()
        .map(|&i| {
            let mut outbound = records[i].state.outbound.clone();
            outbound.writing.extend(records[i].plan.write.clone());
            OutboundSave { key: records[i].key.clone(), outbound, release: false }
        })
        .collect();
    match claims.save(&saves).await {
        Ok(saved) => {
            for ((i, save), saved) in pending.into_iter().zip(saves).zip(saved) {
                if saved {
                    records[i].state.outbound = save.outbound;
                    records[i].announced = true;
                } else {
                    records[i].settle(held());
                }
            }
        }
        Err(err) => {
            let outcome = Outcome::Retry(format!("not written: its sync state could not be saved: {err}"));
            pending.into_iter().for_each(|i| records[i].settle(outcome.clone()));
        }
    }
}

/// Saves what each claimed record's write did, and gives its claim up. A written record whose
/// state cannot be saved is retried: writing the same values again is harmless.
async fn save_and_release(claims: &Claims, records: &mut [Record]) {
    let mut untouched = Vec::new();
    let mut saves = Vec::new();
    let mut saved_records = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let mut outbound: OutboundState = record.state.outbound.clone();
        match record.written {
            Written::Yes => outbound.record_written(&record.plan.write),
            // HubSpot may hold them: they stay announced until a later write settles it.
            Written::Maybe => {}
            Written::No => {
                for (property, value) in &record.plan.write {
                    if outbound.writing.get(property) == Some(value) {
                        outbound.writing.remove(property);
                    }
                }
            }
        }
        if record.hubspot_id.is_some() {
            outbound.hubspot_id = record.hubspot_id.clone();
        }
        for update in &record.link_updates {
            match update {
                LinkUpdate::Written { to, key, link } => outbound.record_link(*to, key, link.clone()),
                LinkUpdate::Waiting { to, key, since_ms } => {
                    outbound.waiting.entry(*to).or_default().insert(key.clone(), *since_ms);
                }
                LinkUpdate::GaveUp { to, key } => outbound.stop_waiting(*to, key),
                LinkUpdate::Set { to, at_ms } => outbound.record_link_set(*to, *at_ms),
                LinkUpdate::NotWritten { to, key, at_ms } => outbound.settle_linking(*to, key, *at_ms),
            }
        }
        if outbound == record.state.outbound {
            untouched.push(record.key.clone());
        } else {
            saves.push(OutboundSave { key: record.key.clone(), outbound, release: true });
            saved_records.push(i);
        }
    }
    let saved = match claims.save(&saves).await {
        Ok(saved) => {
            saved.into_iter().map(|saved| saved.then_some(()).ok_or("its claim was lost".to_string())).collect()
        }
        Err(err) => vec![Err(err.to_string()); saves.len()],
    };
    for (i, result) in saved_records.into_iter().zip(saved) {
        if let Err(reason) = result
            && records[i].written == Written::Yes
        {
            records[i].outcome = Some(Outcome::Retry(format!("written, but its sync state was not saved: {reason}")));
        }
    }
    claims.release(&untouched).await;
}
