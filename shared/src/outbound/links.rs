//! Links of pushed records to their related records, written as HubSpot associations.
//!
//! For the records HubSpot holds after the write step: each record's plan of links
//! ([`plan_links`]), the other records found by their platform keys (in their sync state, else
//! in HubSpot by their object's match key, in batches), then the links written with the v4
//! batch endpoints, 100 a call. A link whose other record does not exist yet waits for it:
//! its message comes back a little later, until [`LINK_WAIT`] has passed since it first
//! waited; then the link is skipped with the reason. What was written is kept in the record's
//! outbound state when the claim is given up, so an unchanged link costs no call. Links about to
//! be written are announced in that state first (`linking`), as values are: a worker stopping
//! between a call and its record leaves the link in doubt, and the next change of it writes it
//! again (writing a link twice is harmless) instead of trusting what the state said before.
//!
//! Guarantees: a record's links are written and recorded only by the holder of its claim (the
//! per-record protocol in [`crate::domain::record`]; the store contract suite proves the saved
//! links survive and `tests/relations.rs` the orders). One link joins two records, and each side
//! keeps its own record of what it wrote: a relation sent from both sides with opposite wishes
//! ends as the last write made it, so a platform sends each relation from one side.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use crate::deps::Deps;
use crate::domain::relations::{LINK_WAIT, LinkWrite, WrittenLink, plan_links};
use crate::domain::{ConnectionConfig, ObjectType, Stamped};
use crate::hubspot::associations::{LINK_BATCH_LIMIT, Link};
use crate::outbound::job::Record;
use crate::outbound::write::lookup_ids;
use crate::ports::OutboundSave;
use crate::work::claims::{Claims, held};
use crate::work::gateway::{HubSpotGateway, item_may_have_landed, item_outcome};
use crate::work::{Outcome, Target};

/// What the link step changes in a record's outbound state, applied when the claim is given up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LinkUpdate {
    Written {
        to: ObjectType,
        key: String,
        link: WrittenLink,
    },
    /// Waits for its other record, since this time (epoch ms).
    Waiting {
        to: ObjectType,
        key: String,
        since_ms: i64,
    },
    /// Waited long enough: skipped.
    GaveUp {
        to: ObjectType,
        key: String,
    },
    /// A `set` of the links to `to`, made at this platform time, was applied.
    Set {
        to: ObjectType,
        at_ms: i64,
    },
    /// The announced write of a link (for the change at `at_ms`) is known not to have happened.
    NotWritten {
        to: ObjectType,
        key: String,
        at_ms: i64,
    },
}

/// The shortest and the longest a message waits before its links are tried again: the other
/// record usually arrives within seconds, and a long wait should not cost a lookup each time.
const FIRST_WAIT: Duration = Duration::from_secs(5);
const LONGEST_WAIT: Duration = Duration::from_secs(60);

/// One link to write, for the record at `record` (an index into the group's records).
struct Pending {
    record: usize,
    write: LinkWrite,
    link: Link,
}

/// Writes the links of the records HubSpot holds. See the module's documentation.
pub(super) async fn apply(
    deps: &Deps,
    gateway: &HubSpotGateway,
    target: &Target,
    (object, connection_config): (ObjectType, &ConnectionConfig),
    claims: &Claims,
    records: &mut [Record],
) {
    let Some(config) = connection_config.objects.get(&object) else { return };
    let mut planned: Vec<(usize, Vec<LinkWrite>)> = Vec::new();
    for (i, record) in records.iter_mut().enumerate().filter(|(_, r)| r.in_hubspot()) {
        let plan = plan_links(&record.pending.links, &record.state.outbound);
        let confirmed = plan.confirmed.into_iter().map(|(to, key, link)| LinkUpdate::Written { to, key, link });
        record.link_updates.extend(confirmed);
        let sets =
            record.pending.links.iter().filter_map(|(&to, links)| Some(LinkUpdate::Set { to, at_ms: links.set_at? }));
        let sets: Vec<LinkUpdate> = sets.collect();
        record.link_updates.extend(sets);
        if !plan.writes.is_empty() {
            planned.push((i, plan.writes));
        }
    }
    if planned.is_empty() {
        return;
    }
    let ids = resolve(deps, gateway, target, connection_config, object, records, &planned).await;
    let now_ms = (deps.clock.now().unix_timestamp_nanos() / 1_000_000) as i64;
    let mut pending: Vec<Pending> = Vec::new();
    for (i, writes) in planned {
        let Some(from) = records[i].hubspot_id.clone().or_else(|| known(&ids, object, records[i].record_key())) else {
            records[i].settle(Outcome::Retry(format!(
                "{object} {} was not found in HubSpot to link",
                records[i].record_key()
            )));
            continue;
        };
        for write in writes {
            let to_id = write.known_id.clone().map(Ok).or_else(|| ids.get(&(write.to, write.key.clone())).cloned());
            match to_id {
                Some(Ok(to)) => pending.push(Pending { record: i, link: Link { from: from.clone(), to }, write }),
                Some(Err(outcome)) => records[i].settle(outcome),
                // Nothing to unlink from a record HubSpot does not have.
                None if !write.linked => {
                    let link = Stamped::new(None, write.at_ms);
                    records[i].link_updates.push(LinkUpdate::Written { to: write.to, key: write.key, link });
                }
                None => wait(&mut records[i], write, now_ms),
            }
        }
    }
    if pending.is_empty() {
        return;
    }
    if !claims.leave_time_to_write() {
        let out_of_time = crate::work::deadline::out_of_time();
        pending.iter().for_each(|p| records[p.record].settle(out_of_time.clone()));
        return;
    }
    let pending = announce(claims, records, pending).await;
    write(deps, gateway, target, (object, config), records, pending).await;
}

/// Notes the links about to be written in each record's state before the calls (as the job
/// announces values), so that a worker stopping before it records a call's outcome leaves the
/// link in doubt, to be written again, rather than believed. A record whose note cannot be
/// saved is not linked now. Returns the links that may go out.
async fn announce(claims: &Claims, records: &mut [Record], pending: Vec<Pending>) -> Vec<Pending> {
    let indexes: BTreeSet<usize> = pending.iter().map(|p| p.record).collect();
    let saves: Vec<OutboundSave> = indexes
        .iter()
        .map(|&i| {
            let mut outbound = records[i].state.outbound.clone();
            for p in pending.iter().filter(|p| p.record == i) {
                let announced = Stamped::new(p.write.linked, p.write.at_ms);
                outbound.linking.entry(p.write.to).or_default().insert(p.write.key.clone(), announced);
            }
            OutboundSave { key: records[i].key.clone(), outbound, release: false }
        })
        .collect();
    match claims.save(&saves).await {
        Ok(saved) => {
            let mut announced = BTreeSet::new();
            for ((&i, save), saved) in indexes.iter().zip(saves).zip(saved) {
                if saved {
                    records[i].state.outbound = save.outbound;
                    announced.insert(i);
                } else {
                    records[i].settle(held());
                }
            }
            pending.into_iter().filter(|p| announced.contains(&p.record)).collect()
        }
        Err(err) => {
            let outcome = Outcome::Retry(format!("not linked: its sync state could not be saved: {err}"));
            indexes.iter().for_each(|&i| records[i].settle(outcome.clone()));
            Vec::new()
        }
    }
}

/// Finds the HubSpot ids of the records the links need, by (object, key): the pushed records
/// HubSpot holds without hubsync knowing their id, and the other side of each link that is
/// not known from a previous write. Ids come from the records' sync states, else from HubSpot.
async fn resolve(
    deps: &Deps,
    gateway: &HubSpotGateway,
    target: &Target,
    config: &ConnectionConfig,
    object: ObjectType,
    records: &[Record],
    planned: &[(usize, Vec<LinkWrite>)],
) -> HashMap<(ObjectType, String), Result<String, Outcome>> {
    let mut wanted: BTreeMap<ObjectType, Vec<String>> = BTreeMap::new();
    for (i, writes) in planned {
        if records[*i].hubspot_id.is_none() {
            wanted.entry(object).or_default().push(records[*i].record_key().to_string());
        }
        for write in writes.iter().filter(|w| w.known_id.is_none()) {
            wanted.entry(write.to).or_default().push(write.key.clone());
        }
    }
    let mut ids = HashMap::new();
    for (to, mut keys) in wanted {
        keys.sort();
        keys.dedup();
        let Some(to_config) = config.objects.get(&to) else { continue };
        let connection = &target.connection.id;
        let states = match deps.store.get_record_states(connection, to, &keys).await {
            Ok(states) => states,
            Err(err) => {
                let outcome = Outcome::Retry(format!("could not read the sync state of related {to}: {err}"));
                keys.into_iter().for_each(|key| {
                    ids.insert((to, key), Err(outcome.clone()));
                });
                continue;
            }
        };
        let mut unknown = Vec::new();
        for key in keys {
            match states.get(&key).and_then(|state| state.outbound.hubspot_id.clone()) {
                Some(id) => {
                    ids.insert((to, key), Ok(id));
                }
                None => unknown.push(key),
            }
        }
        for (key, found) in lookup_ids(deps, gateway, target, to, &to_config.match_key, &unknown).await {
            ids.insert((to, key), found);
        }
    }
    ids
}

fn known(
    ids: &HashMap<(ObjectType, String), Result<String, Outcome>>,
    object: ObjectType,
    key: &str,
) -> Option<String> {
    ids.get(&(object, key.to_string())).and_then(|found| found.as_ref().ok().cloned())
}

/// A link whose other record HubSpot does not have: the message comes back later, until the
/// link has waited [`LINK_WAIT`]; then it is skipped with the reason.
fn wait(record: &mut Record, write: LinkWrite, now_ms: i64) {
    let since_ms =
        record.state.outbound.waiting.get(&write.to).and_then(|w| w.get(&write.key)).copied().unwrap_or(now_ms);
    let waited = Duration::from_millis(now_ms.saturating_sub(since_ms).max(0) as u64);
    let (to, key) = (write.to, write.key);
    // The reasons name the object, not the key: run counts group by reason.
    if waited >= LINK_WAIT {
        let minutes = LINK_WAIT.whole_minutes();
        tracing::info!(record = record.record_key(), %to, related = %key, "link skipped: no such related record");
        record.settle(Outcome::Skipped(format!(
            "not linked: the related {to} record was not in HubSpot after {minutes} minutes (send the link again once it exists)"
        )));
        record.link_updates.push(LinkUpdate::GaveUp { to, key });
        return;
    }
    let after = waited.clamp(FIRST_WAIT, LONGEST_WAIT);
    tracing::debug!(record = record.record_key(), %to, related = %key, "link waits for its related record");
    record.settle(Outcome::deferred(format!("waiting for the related {to} record to exist in HubSpot"), after));
    record.link_updates.push(LinkUpdate::Waiting { to, key, since_ms });
}

/// Writes the links, per related object and label, links and unlinks apart, 100 a call.
async fn write(
    deps: &Deps,
    gateway: &HubSpotGateway,
    target: &Target,
    (object, config): (ObjectType, &crate::domain::ObjectConfig),
    records: &mut [Record],
    pending: Vec<Pending>,
) {
    let mut batches: BTreeMap<(ObjectType, bool), Vec<Pending>> = BTreeMap::new();
    for p in pending {
        batches.entry((p.write.to, p.write.linked)).or_default().push(p);
    }
    for ((to, linking), batch) in batches {
        let label = config.relation(to).and_then(|relation| relation.label.as_ref());
        for chunk in batch.chunks(LINK_BATCH_LIMIT) {
            let links: Vec<Link> = chunk.iter().map(|p| p.link.clone()).collect();
            let answer = gateway
                .call(target, |token| {
                    let links = &links;
                    async move {
                        let client = &deps.hubspot;
                        if linking {
                            client.link(&token, object, to, links, label).await
                        } else {
                            client.unlink(&token, object, to, links).await
                        }
                    }
                })
                .await;
            // Each link's outcome, and for a failure whether HubSpot may have made it anyway.
            let items: Vec<Result<(), (Outcome, bool)>> = match answer {
                Ok(items) => items
                    .into_iter()
                    .map(|item| item.map_err(|err| (item_outcome(&err), item_may_have_landed(&err))))
                    .collect(),
                Err(failed) => chunk.iter().map(|_| Err((failed.outcome(), failed.may_have_landed()))).collect(),
            };
            for (p, item) in chunk.iter().zip(items) {
                let record = &mut records[p.record];
                match item {
                    Ok(()) => {
                        let id = linking.then(|| p.link.to.clone());
                        let link = Stamped::new(id, p.write.at_ms);
                        record.link_updates.push(LinkUpdate::Written { to, key: p.write.key.clone(), link });
                        record.changed_after_all();
                    }
                    Err((outcome, may_have_landed)) => {
                        if !may_have_landed {
                            let (key, at_ms) = (p.write.key.clone(), p.write.at_ms);
                            record.link_updates.push(LinkUpdate::NotWritten { to, key, at_ms });
                        }
                        record.settle(outcome);
                    }
                }
            }
        }
    }
}
