//! Writing planned records to HubSpot with the write mode's batch endpoints (100 records a
//! call), and, before that, reading HubSpot's side of the fields mapped both ways.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::deps::Deps;
use crate::domain::outbound::{HubSpotSide, settle_with_hubspot};
use crate::domain::{MatchKey, ObjectConfig, ObjectType, OutboundState, SkipReason, WriteMode};
use crate::hubspot::{
    BATCH_LIMIT, BatchOutcome, CrmObject, HISTORY_BATCH_LIMIT, PropertyChange, PropertyValues, UpdateInput, UpsertInput,
};
use crate::outbound::job::{Record, Written};
use crate::work::gateway::{CallFailed, HubSpotGateway, found_each, item_may_have_landed, item_outcome};
use crate::work::{Outcome, Target};

fn values(record: &Record) -> PropertyValues {
    record.plan.write.iter().map(|(property, value)| (property.clone(), value.value.clone())).collect()
}

/// One group's writes: the connection's HubSpot, and the object's config.
#[derive(Clone, Copy)]
pub(super) struct Writer<'a> {
    pub deps: &'a Deps,
    pub gateway: &'a HubSpotGateway,
    pub target: &'a Target,
    pub object: ObjectType,
    pub config: &'a ObjectConfig,
}

impl Writer<'_> {
    /// Reads, for each record whose plan has both-ways values, HubSpot's current value and latest
    /// change of each, and takes out of the plan what HubSpot holds already or changed later.
    pub(super) async fn check_in_hubspot(&self, records: &mut [Record]) {
        let Writer { target, object, config, gateway, .. } = *self;
        let checking: Vec<usize> = (0..records.len())
            .filter(|&i| records[i].pending() && !records[i].plan.check_in_hubspot.is_empty())
            .collect();
        if checking.is_empty() {
            return;
        }
        if !config.match_key.is_unique_in_hubspot() {
            // Company names and domains are found by search; records HubSpot does not have yet
            // are simply created.
            let existing = self.find_existing(records, &checking).await;
            for &i in &checking {
                if let Some(id) = existing.get(records[i].record_key()) {
                    records[i].hubspot_id = Some(id.clone());
                }
            }
        }
        let key_property = config.match_key.property().to_string();
        let (by_id, by_key): (Vec<usize>, Vec<usize>) =
            checking.into_iter().filter(|&i| records[i].pending()).partition(|&i| records[i].hubspot_id.is_some());
        let by_key = if config.match_key.is_unique_in_hubspot() { by_key } else { Vec::new() };
        for (indexes, id_property) in [(by_id, None), (by_key, Some(key_property.as_str()))] {
            for chunk in indexes.chunks(HISTORY_BATCH_LIMIT) {
                let history: BTreeSet<String> =
                    chunk.iter().flat_map(|&i| records[i].plan.check_in_hubspot.iter().cloned()).collect();
                let history: Vec<&str> = history.iter().map(String::as_str).collect();
                let mut properties = history.clone();
                properties.push(&key_property);
                let ids: Vec<String> = chunk
                    .iter()
                    .map(|&i| match id_property {
                        None => records[i].hubspot_id.clone().expect("partitioned on it"),
                        Some(_) => records[i].record_key().to_string(),
                    })
                    .collect();
                let answer = gateway.read(target, object, &ids, id_property, &properties, &history).await;
                for (&i, found) in chunk.iter().zip(found_each(answer, chunk.len())) {
                    let record = &mut records[i];
                    match found {
                        Ok(Some(found)) => {
                            record.found_in_hubspot = true;
                            record.hubspot_id = found.id.clone().or(record.hubspot_id.take());
                            let sides = sides_of(&found, record, target.connection.app_id);
                            settle_with_hubspot(&mut record.plan, &sides);
                        }
                        Ok(None) => {}
                        Err(outcome) => record.settle(outcome),
                    }
                }
            }
        }
    }

    /// Writes the pending records with the write mode's batch endpoints.
    pub(super) async fn write(&self, records: &mut [Record]) {
        let Writer { deps, gateway, target, object, config } = *self;
        let key_property = config.match_key.property().to_string();
        let pending: Vec<usize> = (0..records.len()).filter(|&i| records[i].pending()).collect();
        if pending.is_empty() {
            return;
        }
        if config.write_mode == WriteMode::Upsert && config.match_key.is_unique_in_hubspot() {
            for chunk in pending.chunks(BATCH_LIMIT) {
                let inputs: Vec<UpsertInput> = chunk
                    .iter()
                    .map(|&i| UpsertInput { id: records[i].record_key().to_string(), properties: values(&records[i]) })
                    .collect();
                let outcome = gateway
                    .batch(target, |token| {
                        let (inputs, key_property) = (&inputs, &key_property);
                        async move { deps.hubspot.objects(&token, object).batch_upsert(key_property, inputs).await }
                    })
                    .await;
                settle_writes(records, chunk, outcome, |obj| {
                    if obj.new == Some(true) { Outcome::Created } else { Outcome::Updated }
                });
            }
            return;
        }

        // Other modes (and keys HubSpot cannot upsert by) first find which records exist.
        let existing = self.find_existing(records, &pending).await;
        let (mut updates, mut creates) = (Vec::new(), Vec::new());
        for &i in &pending {
            let record = &mut records[i];
            if !record.pending() {
                continue;
            }
            match (existing.get(record.record_key()), config.write_mode) {
                (Some(id), WriteMode::CreateOnly) => {
                    record.hubspot_id = Some(id.clone());
                    record.settle(Outcome::Skipped(SkipReason::ExistsForCreate.to_string()));
                }
                (Some(id), _) => {
                    record.hubspot_id = Some(id.clone());
                    updates.push(i);
                }
                (None, WriteMode::UpdateOnly) => {
                    record.settle(Outcome::Skipped(SkipReason::NotFoundForUpdate.to_string()))
                }
                (None, _) => creates.push(i),
            }
        }
        for chunk in updates.chunks(BATCH_LIMIT) {
            let inputs: Vec<UpdateInput> = chunk
                .iter()
                .map(|&i| UpdateInput {
                    id: records[i].hubspot_id.clone().expect("found above"),
                    properties: values(&records[i]),
                })
                .collect();
            let outcome = gateway
                .batch(target, |token| {
                    let inputs = &inputs;
                    async move { deps.hubspot.objects(&token, object).batch_update(inputs, None).await }
                })
                .await;
            settle_writes(records, chunk, outcome, |_| Outcome::Updated);
        }
        for chunk in creates.chunks(BATCH_LIMIT) {
            let inputs: Vec<PropertyValues> = chunk.iter().map(|&i| values(&records[i])).collect();
            let outcome = gateway
                .batch(target, |token| {
                    let inputs = &inputs;
                    async move { deps.hubspot.objects(&token, object).batch_create(inputs).await }
                })
                .await;
            settle_writes(records, chunk, outcome, |_| Outcome::Created);
        }
    }

    /// Record key → HubSpot id of the records (at `indexes`) that exist in HubSpot: the ids
    /// hubsync knows for company names and domains (search's index lags fresh writes), the
    /// rest looked up ([`lookup_ids`]). Records the lookup failed for are settled.
    async fn find_existing(&self, records: &mut [Record], indexes: &[usize]) -> HashMap<String, String> {
        let Writer { deps, gateway, target, object, config } = *self;
        let mut found = HashMap::new();
        let mut unknown = Vec::new();
        for &i in indexes {
            match &records[i].hubspot_id {
                Some(id) if !config.match_key.is_unique_in_hubspot() => {
                    found.insert(records[i].record_key().to_string(), id.clone());
                }
                _ => unknown.push(i),
            }
        }
        let keys: Vec<String> = unknown.iter().map(|&i| records[i].record_key().to_string()).collect();
        let mut looked_up = lookup_ids(deps, gateway, target, object, &config.match_key, &keys).await;
        for i in unknown {
            match looked_up.remove(records[i].record_key()) {
                Some(Ok(id)) => {
                    found.insert(records[i].record_key().to_string(), id);
                }
                Some(Err(outcome)) => records[i].settle(outcome),
                None => {}
            }
        }
        found
    }
}

/// Finds records of `object` in HubSpot by their match key (`keys` as the key files them):
/// key → HubSpot id, or how the lookup failed; keys HubSpot has no record for are absent.
/// Unique keys are read by `idProperty`, 100 a call; company names and domains are searched,
/// and when several records share one, the oldest is the match.
pub(super) async fn lookup_ids(
    deps: &Deps,
    gateway: &HubSpotGateway,
    target: &Target,
    object: ObjectType,
    match_key: &MatchKey,
    keys: &[String],
) -> HashMap<String, Result<String, Outcome>> {
    let property = match_key.property().to_string();
    let mut found = HashMap::new();
    if keys.is_empty() {
        return found;
    }
    if match_key.is_unique_in_hubspot() {
        for chunk in keys.chunks(BATCH_LIMIT) {
            let answer = gateway.read(target, object, chunk, Some(&property), &[&property], &[]).await;
            for (key, item) in chunk.iter().zip(found_each(answer, chunk.len())) {
                match item {
                    Ok(Some(obj)) => {
                        found.insert(key.clone(), Ok(obj.id().to_string()));
                    }
                    Ok(None) => {}
                    Err(outcome) => {
                        found.insert(key.clone(), Err(outcome));
                    }
                }
            }
        }
        return found;
    }
    let searched = gateway
        .call(target, |token| {
            let property = &property;
            async move { deps.hubspot.objects(&token, object).search_in(property, keys, &[property]).await }
        })
        .await;
    match searched {
        Ok(matches) => {
            for obj in matches {
                let Some(value) = obj.property(&property) else { continue };
                let id = obj.id().to_string();
                let entry = found.entry(match_key.normalise(value)).or_insert_with(|| Ok(id.clone()));
                if let Ok(known) = entry
                    && id.parse::<u64>().ok() < known.parse::<u64>().ok()
                {
                    *known = id;
                }
            }
        }
        Err(failed) => keys.iter().for_each(|key| {
            found.insert(key.clone(), Err(failed.outcome()));
        }),
    }
    found
}

/// HubSpot's side of each both-ways property the record plans to write.
fn sides_of(found: &CrmObject, record: &Record, app_id: Option<u64>) -> BTreeMap<String, HubSpotSide> {
    let own = |property: &str, change: &PropertyChange| is_own(change, property, &record.state.outbound, app_id);
    record
        .plan
        .check_in_hubspot
        .iter()
        .map(|property| {
            let history = found.properties_with_history.get(property).map(Vec::as_slice).unwrap_or_default();
            let latest_other_change_ms =
                history.iter().filter(|change| !own(property, change)).filter_map(PropertyChange::at_ms).max();
            let side = HubSpotSide { current: found.property(property).map(str::to_string), latest_other_change_ms };
            (property.clone(), side)
        })
        .collect()
}

/// Whether a change in a property's history is hubsync's own write: by the app's id when the
/// connection knows it, else by an app's write of a value hubsync wrote.
pub fn is_own(change: &PropertyChange, property: &str, outbound: &OutboundState, app_id: Option<u64>) -> bool {
    match app_id {
        Some(app_id) => change.by_app(app_id),
        None => {
            change.source_type.as_deref() == Some("INTEGRATION")
                && outbound.own(property, change.value.as_deref().unwrap_or_default()).is_some()
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
        Err(failed) => {
            for &i in chunk {
                records[i].written = if failed.may_have_landed() { Written::Maybe } else { Written::No };
                records[i].settle(failed.outcome());
            }
            return;
        }
    };
    for (&i, item) in chunk.iter().zip(outcome.items) {
        let record = &mut records[i];
        match item {
            Ok(obj) => {
                if let Some(id) = &obj.id {
                    record.hubspot_id = Some(id.clone());
                }
                record.written = Written::Yes;
                record.settle(on_success(&obj));
            }
            Err(err) => {
                record.written = if item_may_have_landed(&err) { Written::Maybe } else { Written::No };
                record.settle(item_outcome(&err));
            }
        }
    }
}
