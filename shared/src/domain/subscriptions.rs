//! The webhook subscriptions the configs need. HubSpot sends an app a property's changes only
//! when the app subscribes to that property (`contact.propertyChange` with `propertyName`), and
//! a record's creation, deletion, merge or restore only with the matching subscription; they
//! are per app, so a deployment needs the union over every connection's config.

use std::collections::BTreeSet;

use serde::Serialize;

use super::{ConnectionConfig, ObjectType};

/// Properties HubSpot refuses to subscribe to: they change on every write.
const UNSUBSCRIBABLE: &[&str] = &["hs_lastmodifieddate", "lastmodifieddate", "num_unique_conversion_events"];

/// One subscription, as HubSpot's webhooks API names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct NeededSubscription {
    /// `contact.propertyChange`, `deal.creation`, ...
    pub event_type: String,
    /// For `*.propertyChange` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub property_name: Option<String>,
}

impl NeededSubscription {
    fn event(object: ObjectType, event: &str) -> NeededSubscription {
        NeededSubscription { event_type: format!("{}.{event}", singular(object)), property_name: None }
    }

    fn property(object: ObjectType, property: &str) -> Option<NeededSubscription> {
        (!UNSUBSCRIBABLE.contains(&property)).then(|| NeededSubscription {
            event_type: format!("{}.propertyChange", singular(object)),
            property_name: Some(property.to_string()),
        })
    }
}

/// The object's name in subscription types (`contact`, `company`, `deal`, `line_item`).
fn singular(object: ObjectType) -> &'static str {
    match object {
        ObjectType::Contacts => "contact",
        ObjectType::Companies => "company",
        ObjectType::Deals => "deal",
        ObjectType::LineItems => "line_item",
    }
}

/// What `config` needs, when it takes webhooks at all: every inbound property of each object
/// (and its match key), the lifecycle events it asks for, the counter property, and what its
/// triggers fire on.
pub fn needed_by(config: &ConnectionConfig) -> BTreeSet<NeededSubscription> {
    let mut needed = BTreeSet::new();
    if !config.options.webhooks_enabled {
        return needed;
    }
    let events = config.options.inbound_events;
    for (&object, object_config) in &config.objects {
        if !object_config.fields.iter().any(|f| f.direction.comes_in()) {
            continue;
        }
        needed
            .extend(object_config.inbound_properties().iter().filter_map(|p| NeededSubscription::property(object, p)));
        for (wanted, event) in [
            (events.creations, "creation"),
            (events.deletions, "deletion"),
            (events.merges, "merge"),
            (events.restores, "restore"),
        ] {
            if wanted {
                needed.insert(NeededSubscription::event(object, event));
            }
        }
    }
    if let Some(counter) = &config.options.bidirectional_counter_property {
        needed.extend(NeededSubscription::property(ObjectType::Contacts, counter));
    }
    for trigger in &config.triggers {
        if trigger.on_create {
            needed.insert(NeededSubscription::event(trigger.object, "creation"));
        }
        needed.extend(trigger.on_change.iter().filter_map(|p| NeededSubscription::property(trigger.object, p)));
    }
    needed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Direction, FieldMapping, FieldType, InboundEvents, MatchKey, ObjectConfig, WriteMode};

    fn config(direction: Direction) -> ConnectionConfig {
        let mut config = ConnectionConfig::default();
        config.objects.insert(
            ObjectType::Contacts,
            ObjectConfig {
                match_key: MatchKey::Email,
                write_mode: WriteMode::Upsert,
                fields: vec![FieldMapping { direction, ..FieldMapping::out("plan", "plan", FieldType::String) }],
                lists: vec![],
                relations: vec![],
            },
        );
        config.options.inbound_events =
            InboundEvents { creations: true, deletions: false, merges: false, restores: false };
        config
    }

    fn names(needed: &BTreeSet<NeededSubscription>) -> Vec<String> {
        needed.iter().map(|n| format!("{}:{}", n.event_type, n.property_name.as_deref().unwrap_or(""))).collect()
    }

    #[test]
    fn inbound_fields_the_match_key_and_asked_events_are_subscribed() {
        assert_eq!(
            names(&needed_by(&config(Direction::Both))),
            ["contact.creation:", "contact.propertyChange:email", "contact.propertyChange:plan"]
        );
        assert!(needed_by(&config(Direction::Out)).is_empty(), "nothing comes in");
    }

    #[test]
    fn the_counter_property_is_subscribed_and_nothing_without_webhooks() {
        let mut config = config(Direction::Out);
        config.options.bidirectional_counter_property = Some("didomi_changed".into());
        assert_eq!(names(&needed_by(&config)), ["contact.propertyChange:didomi_changed"]);
        config.options.webhooks_enabled = false;
        assert!(needed_by(&config).is_empty());
    }
}
