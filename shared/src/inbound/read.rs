//! Reading what HubSpot has for inbound work: records (100 a call, or 50 with the history of
//! the fields mapped both ways), the company or deal a contact's fields come from, and what a
//! trigger's event reads.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::deps::Deps;
use crate::domain::inbound::to_platform_value;
use crate::domain::news::HubSpotChange;
use crate::domain::{Direction, ObjectConfig, ObjectType, Stamped, Trigger, TriggerRecord};
use crate::hubspot::{BATCH_LIMIT, CrmObject};
use crate::inbound::record::InboundRecord;
use crate::outbound::write::is_own;
use crate::work::gateway::{HubSpotGateway, found_each};
use crate::work::{Outcome, Target};

/// HubSpot's reads for one connection's inbound work.
pub struct Reader<'a> {
    pub deps: &'a Deps,
    pub gateway: &'a HubSpotGateway,
    pub target: &'a Target,
}

fn millis(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

impl Reader<'_> {
    /// Reads the records that still exist (by HubSpot id); a record gone since its event is
    /// delivered as a deletion. With `history`, the both-ways properties' history comes too.
    pub async fn records(
        &self,
        object: ObjectType,
        config: &ObjectConfig,
        records: &mut [InboundRecord],
        which: &[usize],
        history: bool,
    ) {
        let properties = config.inbound_properties();
        let both_ways: Vec<String> = if history { both_ways_properties(config) } else { Vec::new() };
        let per_call = if both_ways.is_empty() { BATCH_LIMIT } else { crate::hubspot::HISTORY_BATCH_LIMIT };
        for chunk in which.chunks(per_call) {
            let ids: Vec<String> = chunk.iter().map(|&i| records[i].object_id.to_string()).collect();
            let names: Vec<&str> = properties.iter().map(String::as_str).collect();
            let history_of: Vec<&str> = both_ways.iter().map(String::as_str).collect();
            let answer = self.gateway.read(self.target, object, &ids, None, &names, &history_of).await;
            for (&i, found) in chunk.iter().zip(found_each(answer, chunk.len())) {
                let record = &mut records[i];
                match found {
                    Ok(Some(found)) => {
                        record.take_reading(config, &found, history.then(|| self.changes_of(&found, record, config)))
                    }
                    // Gone since the event: the platform hears of the deletion instead.
                    Ok(None) => record.gone(),
                    Err(outcome) => record.settle(outcome),
                }
            }
        }
    }

    /// The history of a record's both-ways properties, as changes (hubsync's own marked).
    fn changes_of(
        &self,
        found: &CrmObject,
        record: &InboundRecord,
        config: &ObjectConfig,
    ) -> BTreeMap<String, Vec<HubSpotChange>> {
        let outbound = record.state.as_ref().map(|s| s.outbound.clone()).unwrap_or_default();
        let app_id = self.target.connection.app_id;
        both_ways_properties(config)
            .into_iter()
            .map(|property| {
                let history = found.properties_with_history.get(&property).map(Vec::as_slice).unwrap_or_default();
                let changes = history
                    .iter()
                    .filter_map(|change| {
                        Some(HubSpotChange {
                            value: change.value.clone().unwrap_or_default(),
                            at_ms: change.at_ms()?,
                            own: is_own(change, &property, &outbound, app_id),
                        })
                    })
                    .collect();
                (property, changes)
            })
            .collect()
    }

    /// Fills the fields a contact reads from its associated company or deal (the first one),
    /// with that record's version.
    pub async fn associated_fields(&self, config: &ObjectConfig, records: &mut [InboundRecord]) {
        let mut by_object: BTreeMap<ObjectType, Vec<String>> = BTreeMap::new();
        for field in config.fields.iter().filter(|f| f.direction.comes_in()) {
            if let Some(associated) = field.from_associated {
                by_object.entry(associated).or_default().push(field.hubspot_property.clone());
            }
        }
        for (associated, mut properties) in by_object {
            properties.push(associated.last_modified_property().to_string());
            let ready: Vec<usize> =
                (0..records.len()).filter(|&i| records[i].pending() && records[i].reading.is_some()).collect();
            let ids: Vec<String> = ready.iter().map(|&i| records[i].object_id.to_string()).collect();
            let read = async {
                let linked = self.associated(ObjectType::Contacts, associated, &ids).await?;
                let first: BTreeMap<String, String> = linked
                    .into_iter()
                    .filter_map(|(contact, ids)| {
                        Some((contact, ids.into_iter().min_by_key(|i| i.parse::<u64>().unwrap_or(u64::MAX))?))
                    })
                    .collect();
                let wanted: Vec<String> = first.values().cloned().collect();
                let values = self.properties(associated, &wanted, &properties).await?;
                Ok::<_, Outcome>((first, values))
            };
            let (first, values) = match read.await {
                Ok(found) => found,
                Err(outcome) => {
                    ready.iter().for_each(|&i| records[i].settle(outcome.clone()));
                    continue;
                }
            };
            for &i in &ready {
                let record = &mut records[i];
                let values = first.get(&record.object_id.to_string()).and_then(|id| values.get(id));
                let modified =
                    values.and_then(|v| v.get(associated.last_modified_property())).and_then(|v| v.parse::<i64>().ok());
                let reading = record.reading.as_mut().expect("ready records were read");
                let version = modified.unwrap_or(reading.version_ms).max(reading.version_ms);
                for field in config.fields.iter().filter(|f| f.from_associated == Some(associated)) {
                    let raw =
                        values.and_then(|v| v.get(&field.hubspot_property)).map(String::as_str).unwrap_or_default();
                    let value: Value = to_platform_value(raw, field.platform_type);
                    reading.associated.insert(field.platform_field.clone(), Stamped::new(value, version));
                }
            }
        }
    }

    /// The records a trigger fires for, with what its fields read, by HubSpot id.
    pub async fn for_trigger(
        &self,
        trigger: &Trigger,
        object: ObjectType,
        ids: &[String],
    ) -> Result<BTreeMap<String, TriggerRecord>, Outcome> {
        let (properties, item_properties) = trigger.properties();
        let mut found = BTreeMap::new();
        for (id, properties) in self.properties(object, ids, &properties).await? {
            found.insert(id.clone(), TriggerRecord { id, properties, ..TriggerRecord::default() });
        }
        let present: Vec<String> = found.keys().cloned().collect();
        if trigger.needs_contact() {
            for (id, contacts) in self.associated(object, ObjectType::Contacts, &present).await? {
                // The oldest associated contact is the customer.
                let first = contacts.into_iter().min_by_key(|c| c.parse::<u64>().unwrap_or(u64::MAX));
                if let Some(record) = found.get_mut(&id) {
                    record.contact_id = first;
                }
            }
        }
        if !item_properties.is_empty() {
            let items_of = self.associated(object, ObjectType::LineItems, &present).await?;
            let mut all_items: Vec<String> = items_of.values().flatten().cloned().collect();
            all_items.sort();
            all_items.dedup();
            let items = self.properties(ObjectType::LineItems, &all_items, &item_properties).await?;
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
    pub async fn properties(
        &self,
        object: ObjectType,
        ids: &[String],
        properties: &[String],
    ) -> Result<BTreeMap<String, BTreeMap<String, String>>, Outcome> {
        let mut found = BTreeMap::new();
        let names: Vec<&str> = properties.iter().map(String::as_str).collect();
        for chunk in ids.chunks(BATCH_LIMIT) {
            let answer = self.gateway.read(self.target, object, chunk, None, &names, &[]).await;
            for record in found_each(answer, chunk.len()).into_iter().filter_map(Result::transpose) {
                let record = record?;
                let values = record.properties.iter().filter_map(|(k, v)| Some((k.clone(), v.clone()?))).collect();
                found.insert(record.id().to_string(), values);
            }
        }
        Ok(found)
    }

    /// HubSpot ids of the `to` records associated with each `from` record.
    pub async fn associated(
        &self,
        from: ObjectType,
        to: ObjectType,
        ids: &[String],
    ) -> Result<BTreeMap<String, Vec<String>>, Outcome> {
        if ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        self.gateway
            .call(self.target, |token| async move { self.deps.hubspot.associated_ids(&token, from, to, ids).await })
            .await
            .map_err(|failed| failed.outcome())
    }
}

/// The HubSpot properties an object maps both ways.
pub fn both_ways_properties(config: &ObjectConfig) -> Vec<String> {
    config
        .fields
        .iter()
        .filter(|f| f.direction == Direction::Both && f.from_associated.is_none())
        .map(|f| f.hubspot_property.clone())
        .collect()
}

/// A record's last-modified time as HubSpot sent it, or `fallback`.
pub fn version_of(found: &CrmObject, fallback: i64) -> i64 {
    found.updated_at.map(millis).unwrap_or(fallback)
}
