//! Triggers (the impact.com pattern): an event for the platform when a HubSpot record is
//! created, or when any of a chosen set of its properties changes, with its own fields taken
//! from the record, its associated contact, or its line items. Pure: no I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{EventKind, InboundEvent, ObjectType};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// The event's name on the platform (e.g. `conversion`); unique in a config.
    pub name: String,
    pub object: ObjectType,
    /// Fires when a record is created.
    #[serde(default)]
    pub on_create: bool,
    /// Fires when any of these properties changes.
    #[serde(default)]
    pub on_change: Vec<String>,
    pub fields: Vec<TriggerField>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerField {
    /// The field's name in the event. For line items, `{i}` is replaced by the item's position
    /// (from 1): `ItemSku{i}` gives `ItemSku1`, `ItemSku2`...
    pub name: String,
    pub source: TriggerSource,
    /// An event missing a required field is not sent; the reason is recorded in the run.
    #[serde(default)]
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TriggerSource {
    /// A property of the record itself.
    Property { property: String },
    /// The HubSpot id of the record.
    RecordId,
    /// The id of the record's (first) associated contact: a deal's customer.
    AssociatedContactId,
    /// A property of each of a deal's line items.
    LineItems { property: String },
}

/// One trigger firing for one record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Firing {
    pub trigger: String,
    pub object: ObjectType,
    pub object_id: u64,
    pub occurred_at_ms: i64,
}

impl Firing {
    /// The same for every delivery of this firing, so the platform records one conversion
    /// however often HubSpot or hubsync retries.
    pub fn idempotency_key(&self) -> String {
        format!("trigger:{}:{}:{}:{}", self.trigger, self.object, self.object_id, self.occurred_at_ms)
    }
}

impl Trigger {
    pub fn fires_on(&self, event: &InboundEvent) -> bool {
        event.object == self.object
            && match &event.kind {
                EventKind::Created => self.on_create,
                EventKind::Changed { property, .. } => self.on_change.contains(property),
                _ => false,
            }
    }

    /// The record properties, and the line item properties, this trigger reads.
    pub fn properties(&self) -> (Vec<String>, Vec<String>) {
        let (mut own, mut items) = (Vec::new(), Vec::new());
        for field in &self.fields {
            match &field.source {
                TriggerSource::Property { property } => own.push(property.clone()),
                TriggerSource::LineItems { property } => items.push(property.clone()),
                TriggerSource::RecordId | TriggerSource::AssociatedContactId => {}
            }
        }
        (own, items)
    }

    pub fn needs_contact(&self) -> bool {
        self.fields.iter().any(|f| f.source == TriggerSource::AssociatedContactId)
    }

    /// The event's fields from what was read, or the first required field that is missing.
    pub fn event_fields(&self, record: &TriggerRecord) -> Result<BTreeMap<String, String>, String> {
        let mut fields = BTreeMap::new();
        for field in &self.fields {
            let values: Vec<(String, String)> = match &field.source {
                TriggerSource::Property { property } => {
                    record.properties.get(property).map(|v| (field.name.clone(), v.clone())).into_iter().collect()
                }
                TriggerSource::RecordId => vec![(field.name.clone(), record.id.clone())],
                TriggerSource::AssociatedContactId => {
                    record.contact_id.clone().map(|id| (field.name.clone(), id)).into_iter().collect()
                }
                TriggerSource::LineItems { property } => record
                    .line_items
                    .iter()
                    .filter_map(|item| item.get(property))
                    .enumerate()
                    .map(|(i, value)| (field.name.replace("{i}", &(i + 1).to_string()), value.clone()))
                    .collect(),
            };
            let values: Vec<(String, String)> = values.into_iter().filter(|(_, v)| !v.is_empty()).collect();
            if values.is_empty() && field.required {
                return Err(format!("trigger {}: required field `{}` has no value", self.name, field.name));
            }
            fields.extend(values);
        }
        Ok(fields)
    }
}

/// What was read from HubSpot for a firing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TriggerRecord {
    pub id: String,
    pub properties: BTreeMap<String, String>,
    pub contact_id: Option<String>,
    /// Each line item's properties, in line item id order.
    pub line_items: Vec<BTreeMap<String, String>>,
}

/// Every problem of a config's triggers: names, objects, and properties the portal lacks.
pub fn check_triggers(triggers: &[Trigger], schemas: &super::mapping::Schemas) -> Vec<super::mapping::ConfigProblem> {
    let mut problems = Vec::new();
    let mut problem = |trigger: &Trigger, property: Option<&str>, rule: &'static str, message: String, fix: &str| {
        problems.push(super::mapping::ConfigProblem {
            object: Some(trigger.object),
            platform_field: Some(trigger.name.clone()),
            hubspot_property: property.map(str::to_string),
            rule,
            message,
            fix: fix.to_string(),
        })
    };
    for (i, trigger) in triggers.iter().enumerate() {
        if triggers[..i].iter().any(|t| t.name == trigger.name) {
            problem(
                trigger,
                None,
                "trigger_name_taken",
                format!("two triggers are named `{}`", trigger.name),
                "give each trigger its own name",
            );
        }
        if !ObjectType::ALL.contains(&trigger.object) {
            problem(
                trigger,
                None,
                "trigger_object",
                format!("triggers cannot watch {}", trigger.object),
                "watch contacts, companies or deals",
            );
            continue;
        }
        if !trigger.on_create && trigger.on_change.is_empty() {
            problem(
                trigger,
                None,
                "trigger_never_fires",
                format!("trigger `{}` has neither on_create nor on_change", trigger.name),
                "set on_create, or list properties in on_change",
            );
        }
        let schema = schemas.get(&trigger.object);
        let (own, items) = trigger.properties();
        for property in trigger.on_change.iter().chain(own.iter()) {
            if schema.is_some_and(|s| !s.iter().any(|p| &p.name == property)) {
                problem(
                    trigger,
                    Some(property),
                    "property_missing",
                    format!("{} have no property `{property}`", trigger.object),
                    "create it in HubSpot or pick another property",
                );
            }
        }
        if !items.is_empty() && trigger.object != ObjectType::Deals {
            problem(
                trigger,
                None,
                "line_items_need_deals",
                format!("only deals have line items, not {}", trigger.object),
                "read line items from a deal trigger",
            );
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn conversion() -> Trigger {
        serde_json::from_value(json!({
            "name": "conversion", "object": "deals", "on_change": ["dealstage"],
            "fields": [
                { "name": "OrderId", "source": { "kind": "record_id" } },
                { "name": "Amount", "source": { "kind": "property", "property": "amount" }, "required": true },
                { "name": "CustomerId", "source": { "kind": "associated_contact_id" }, "required": true },
                { "name": "ItemSku{i}", "source": { "kind": "line_items", "property": "hs_sku" } }
            ]
        }))
        .unwrap()
    }

    fn deal() -> TriggerRecord {
        TriggerRecord {
            id: "77".into(),
            properties: BTreeMap::from([("amount".into(), "120".into())]),
            contact_id: Some("501".into()),
            line_items: vec![
                BTreeMap::from([("hs_sku".into(), "SKU-1".into())]),
                BTreeMap::from([("hs_sku".into(), "SKU-2".into())]),
            ],
        }
    }

    #[test]
    fn a_deal_reports_its_contact_and_indexed_line_items() {
        let fields = conversion().event_fields(&deal()).unwrap();
        assert_eq!(
            fields,
            BTreeMap::from([
                ("OrderId".to_string(), "77".to_string()),
                ("Amount".into(), "120".into()),
                ("CustomerId".into(), "501".into()),
                ("ItemSku1".into(), "SKU-1".into()),
                ("ItemSku2".into(), "SKU-2".into()),
            ])
        );
    }

    #[test]
    fn a_missing_required_field_stops_the_event_with_a_reason() {
        let record = TriggerRecord { contact_id: None, ..deal() };
        let err = conversion().event_fields(&record).unwrap_err();
        assert!(err.contains("CustomerId"), "{err}");
    }

    #[test]
    fn triggers_fire_on_creation_or_a_chosen_property_only() {
        let event = |kind| InboundEvent { object: ObjectType::Deals, object_id: 77, occurred_at_ms: 1, kind };
        let trigger = conversion();
        assert!(trigger.fires_on(&event(EventKind::Changed { property: "dealstage".into(), value: None })));
        assert!(!trigger.fires_on(&event(EventKind::Changed { property: "amount".into(), value: None })));
        assert!(!trigger.fires_on(&event(EventKind::Created)));
        let created = Trigger { on_create: true, ..conversion() };
        assert!(created.fires_on(&event(EventKind::Created)));
    }
}
