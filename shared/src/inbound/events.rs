//! The inbound job: HubSpot's webhook events from the inbound queue, for one connection's
//! object at a time, read from HubSpot and delivered to the platform's ingest endpoint.
//!
//! Events to one record are folded (the newest decides: a deletion is delivered as a
//! tombstone, anything else reads the record as it is now); what is news is delivered
//! ([`crate::inbound::deliver`]); a company or deal change that contacts' fields read is
//! delivered for each associated contact; and triggers send their events.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::Value;

use crate::deps::{Deps, QueuePair};
use crate::domain::inbound::{MAX_WEBHOOK_EVENTS, fans_out_to_contacts, wanted_by_mappings};
use crate::domain::{
    ConnectionConfig, EventKind, Firing, INBOUND_MESSAGE_VERSION, InboundEvent, InboundMessage, ObjectType, RunKind,
};
use crate::inbound::deliver::Delivering;
use crate::inbound::platform::DeliveredRecord;
use crate::inbound::read::Reader;
use crate::inbound::record::{InboundRecord, fold};
use crate::work::claims::Claims;
use crate::work::gateway::HubSpotGateway;
use crate::work::{Group, GroupResult, Job, Outcome, Routed};

type Events = Vec<(usize, InboundEvent)>;
type Firings = Vec<(Firing, InboundEvent, Vec<usize>)>;

pub struct InboundJob {
    deps: Deps,
    gateway: HubSpotGateway,
}

impl InboundJob {
    pub fn new(deps: Deps) -> Self {
        InboundJob { gateway: HubSpotGateway::new(deps.clone()), deps }
    }
}

#[async_trait]
impl Job for InboundJob {
    type Item = (crate::domain::PortalId, InboundEvent);

    fn queues<'a>(&self, deps: &'a Deps) -> &'a QueuePair {
        &deps.inbound
    }

    fn run_kind(&self) -> Option<RunKind> {
        Some(RunKind::Inbound)
    }

    fn folded_reason(&self) -> &'static str {
        "folded into a newer event of the same record"
    }

    fn read(&self, body: &str) -> Result<Vec<Routed<Self::Item>>, String> {
        let message: InboundMessage = serde_json::from_str(body).map_err(|e| e.to_string())?;
        if message.version != INBOUND_MESSAGE_VERSION {
            return Err(format!("message version {} is not supported (this hubsync reads version 1)", message.version));
        }
        if message.events.len() > MAX_WEBHOOK_EVENTS {
            return Err(format!("more than {MAX_WEBHOOK_EVENTS} events"));
        }
        Ok(message
            .events
            .into_iter()
            .map(|event| Routed {
                connection_id: message.connection_id.clone(),
                object: event.object,
                item: (message.portal_id, event),
            })
            .collect())
    }

    async fn run(&self, group: &Group, items: Vec<(usize, Self::Item)>) -> GroupResult {
        let events: Events = items.into_iter().map(|(index, (_, event))| (index, event)).collect();
        let config = &group.config;
        let Some(ingest_url) = config.options.ingest_url.as_deref() else {
            let reason = "the config has no `ingest_url` to deliver to: set it, then redrive".to_string();
            let settled = fold(events).into_iter().map(|mut r| {
                r.settle(Outcome::Failed(reason.clone()));
                r.settled()
            });
            return GroupResult { settled: settled.collect(), ..GroupResult::default() };
        };
        let claims = Claims::new(&self.deps);
        let reader = Reader { deps: &self.deps, gateway: &self.gateway, target: &group.target };
        let delivering =
            Delivering { reader, claims: Some(&claims), portal_id: group.target.connection.portal_id, ingest_url };
        let (mapped, fan_out, firings) = split(config, events);
        let mut records = self.mapped_records(&delivering, config, group.object, mapped).await;
        if !fan_out.is_empty() {
            let contact_events = self.to_contact_events(&delivering.reader, group.object, fan_out, &mut records).await;
            let contacts = self.mapped_records(&delivering, config, ObjectType::Contacts, contact_events).await;
            records.extend(contacts);
        }
        records.extend(fire_triggers(&delivering.reader, config, group.object, firings).await);
        delivering.deliver(&mut records).await;
        delivering.release(&records).await;
        GroupResult { settled: records.into_iter().map(InboundRecord::settled).collect(), ..GroupResult::default() }
    }
}

impl InboundJob {
    /// What the config's mappings deliver for these events: each record as it is now, as far
    /// as it is news for the platform.
    async fn mapped_records(
        &self,
        delivering: &Delivering<'_>,
        config: &ConnectionConfig,
        object: ObjectType,
        events: Events,
    ) -> Vec<InboundRecord> {
        let mut records = fold(events);
        if records.is_empty() {
            return records;
        }
        let Some(object_config) = config.objects.get(&object) else {
            records.iter_mut().for_each(|r| r.settle(Outcome::Skipped(format!("{object} are no longer configured"))));
            return records;
        };
        let to_read: Vec<usize> =
            (0..records.len()).filter(|&i| !matches!(records[i].latest.kind, EventKind::Deleted)).collect();
        delivering.reader.records(object, object_config, &mut records, &to_read, false).await;
        delivering.reader.associated_fields(object_config, &mut records).await;
        // A creation, restore or merge is delivered whole; a change, as far as it is news.
        let resend =
            |record: &InboundRecord| !matches!(record.latest.kind, EventKind::Changed { .. } | EventKind::Refresh);
        delivering.judge(object, object_config, &mut records, &resend, None).await;
        records
    }

    /// A company or deal change, as a change of each associated contact. Events whose
    /// contacts cannot be looked up are settled into `records`.
    async fn to_contact_events(
        &self,
        reader: &Reader<'_>,
        object: ObjectType,
        events: Events,
        records: &mut Vec<InboundRecord>,
    ) -> Events {
        let ids: Vec<String> = events.iter().map(|(_, e)| e.object_id.to_string()).collect();
        let contacts_of = match reader.associated(object, ObjectType::Contacts, &ids).await {
            Ok(contacts_of) => contacts_of,
            Err(outcome) => {
                records.extend(fold(events).into_iter().map(|mut r| {
                    r.settle(outcome.clone());
                    r
                }));
                return Vec::new();
            }
        };
        let mut contact_events = Vec::new();
        for (index, event) in events {
            let contacts = contacts_of.get(&event.object_id.to_string()).cloned().unwrap_or_default();
            for contact in contacts.iter().filter_map(|c| c.parse::<u64>().ok()) {
                // The contact itself did not change: it is read and judged as it is.
                let kind = EventKind::Refresh;
                contact_events.push((
                    index,
                    InboundEvent { object: ObjectType::Contacts, object_id: contact, kind, ..event.clone() },
                ));
            }
        }
        contact_events
    }
}

/// Reads what each firing's trigger needs (the records, their contacts, their line items)
/// and builds its event, or settles it with the reason it cannot be sent.
async fn fire_triggers(
    reader: &Reader<'_>,
    config: &ConnectionConfig,
    object: ObjectType,
    firings: Firings,
) -> Vec<InboundRecord> {
    let mut fired = Vec::new();
    let mut by_trigger: BTreeMap<&str, Firings> = BTreeMap::new();
    for (firing, event, indexes) in firings {
        let trigger = config.triggers.iter().find(|t| t.name == firing.trigger).expect("split found it");
        by_trigger.entry(trigger.name.as_str()).or_default().push((firing, event, indexes));
    }
    for (name, firings) in by_trigger {
        let trigger = config.triggers.iter().find(|t| t.name == name).expect("grouped by name");
        let ids: Vec<String> = firings.iter().map(|(f, _, _)| f.object_id.to_string()).collect();
        let read = reader.for_trigger(trigger, object, &ids).await;
        for (firing, event, indexes) in firings {
            let mut record = InboundRecord::new(object, firing.object_id, indexes, event);
            match &read {
                Err(outcome) => record.settle(outcome.clone()),
                Ok(found) => match found.get(&firing.object_id.to_string()) {
                    None => record.settle(Outcome::Skipped(format!("trigger {name}: the record is gone from HubSpot"))),
                    Some(found) => match trigger.event_fields(found) {
                        Err(reason) => record.settle(Outcome::Skipped(reason)),
                        Ok(fields) => {
                            record.delivery = Some(DeliveredRecord {
                                idempotency_key: firing.idempotency_key(),
                                object,
                                hubspot_id: found.id.clone(),
                                record_key: None,
                                event: "trigger",
                                trigger: Some(trigger.name.clone()),
                                version_ms: firing.occurred_at_ms,
                                field_versions_ms: BTreeMap::new(),
                                fields: fields.into_iter().map(|(k, v)| (k, Value::String(v))).collect(),
                                merged_ids: Vec::new(),
                            })
                        }
                    },
                },
            }
            fired.push(record);
        }
    }
    fired
}

/// The events the config's mappings take, those that fan out to contacts, and the trigger
/// firings (one per trigger, record and moment, whatever number of events caused it) with the
/// messages that caused them.
fn split(config: &ConnectionConfig, events: Events) -> (Events, Events, Firings) {
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
