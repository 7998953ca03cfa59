//! HubSpot → platform: HubSpot's webhook events, which of them a connection wants, and the
//! message that carries them to the inbound worker. Pure: no I/O, no clock.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{ConnectionConfig, ConnectionId, ObjectType, PortalId};

/// A webhook request's body may hold at most this many bytes and events. HubSpot sends fewer
/// than 100 events a request; the margin keeps a change of HubSpot's from being refused.
pub const MAX_WEBHOOK_BODY_BYTES: usize = 512 * 1024;
pub const MAX_WEBHOOK_EVENTS: usize = 1000;
/// The only inbound message version this build reads.
pub const INBOUND_MESSAGE_VERSION: u32 = 1;

/// One event of a webhook request, as HubSpot sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEvent {
    pub event_id: u64,
    pub subscription_id: u64,
    pub portal_id: PortalId,
    pub app_id: u64,
    /// When the change happened, in epoch milliseconds.
    pub occurred_at: i64,
    /// `contact.propertyChange`, `company.creation`, `deal.merge`...
    pub subscription_type: String,
    #[serde(default)]
    pub attempt_number: u32,
    pub object_id: u64,
    #[serde(default)]
    pub property_name: Option<String>,
    #[serde(default)]
    pub property_value: Option<String>,
    /// Who made the change: `CRM_UI`, `INTEGRATION`, `IMPORT`, `API`...
    #[serde(default)]
    pub change_source: Option<String>,
    /// The writer within the source: `userId:7`, or an app's id for `INTEGRATION`.
    #[serde(default)]
    pub source_id: Option<String>,
    #[serde(default)]
    pub primary_object_id: Option<u64>,
    #[serde(default)]
    pub merged_object_ids: Vec<u64>,
    #[serde(default)]
    pub new_object_id: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadBatch {
    #[error("the body is over {MAX_WEBHOOK_BODY_BYTES} bytes")]
    TooLarge,
    #[error("the body must be a JSON array of events: {0}")]
    NotAnArray(String),
    #[error("event {index} is malformed: {reason}")]
    Malformed { index: usize, reason: String },
    #[error("more than {MAX_WEBHOOK_EVENTS} events")]
    TooManyEvents,
}

/// Parses a verified webhook body.
pub fn parse_webhook_batch(body: &[u8]) -> Result<Vec<WebhookEvent>, BadBatch> {
    if body.len() > MAX_WEBHOOK_BODY_BYTES {
        return Err(BadBatch::TooLarge);
    }
    let items: Vec<serde_json::Value> =
        serde_json::from_slice(body).map_err(|e| BadBatch::NotAnArray(e.to_string()))?;
    if items.len() > MAX_WEBHOOK_EVENTS {
        return Err(BadBatch::TooManyEvents);
    }
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            serde_json::from_value(item).map_err(|e| BadBatch::Malformed { index, reason: e.to_string() })
        })
        .collect()
}

/// What happened to the record, as far as the platform is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    Created,
    Changed {
        property: String,
        /// The value the change set, as the webhook reported it (absent in older messages).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<String>,
    },
    /// The record is to be read and delivered as it is now: a pull's record parked on its own
    /// (the platform refused it), replayed through the inbound queue by a redrive.
    Refresh,
    Deleted,
    Restored,
    /// Records merged into this one (HubSpot keeps `new_object_id`, or the primary).
    Merged {
        into: u64,
        merged: Vec<u64>,
    },
}

impl WebhookEvent {
    /// The object and what happened, or `None` for events hubsync does not handle (association
    /// changes, privacy deletions — which also arrive as deletions — and other objects).
    pub fn kind(&self) -> Option<(ObjectType, EventKind)> {
        let (object, action) = self.subscription_type.split_once('.')?;
        let object: ObjectType = object.parse().ok()?;
        let kind = match action {
            "creation" => EventKind::Created,
            "propertyChange" => {
                EventKind::Changed { property: self.property_name.clone()?, value: self.property_value.clone() }
            }
            "deletion" => EventKind::Deleted,
            "restore" => EventKind::Restored,
            "merge" => EventKind::Merged {
                into: self.new_object_id.or(self.primary_object_id).unwrap_or(self.object_id),
                merged: self.merged_object_ids.clone(),
            },
            _ => return None,
        };
        Some((object, kind))
    }

    /// The same for every retry of this event (HubSpot's `eventId` alone is not unique, and
    /// `attemptNumber` grows with each retry).
    pub fn dedup_key(&self) -> String {
        let mut hash = Sha256::new();
        for part in [
            self.portal_id.to_string(),
            self.app_id.to_string(),
            self.subscription_id.to_string(),
            self.event_id.to_string(),
            self.occurred_at.to_string(),
            self.object_id.to_string(),
            self.subscription_type.clone(),
            self.property_name.clone().unwrap_or_default(),
            self.property_value.clone().unwrap_or_default(),
        ] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        let digest: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
        format!("webhook:{digest}")
    }

    /// Written by this app itself (a push): delivering it back would echo the platform's own
    /// change to it.
    pub fn is_own_write(&self) -> bool {
        self.change_source.as_deref() == Some("INTEGRATION")
            && self.source_id.as_deref() == Some(self.app_id.to_string().as_str())
    }
}

/// One event a connection wants, on its way to the inbound worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundEvent {
    pub object: ObjectType,
    pub object_id: u64,
    pub occurred_at_ms: i64,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// The inbound queue's message: one connection's share of a webhook request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundMessage {
    pub version: u32,
    pub connection_id: ConnectionId,
    pub portal_id: PortalId,
    pub events: Vec<InboundEvent>,
}

/// Why an event is not passed on to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// Written by hubsync itself.
    Echo,
    /// Not an object, property or lifecycle event the connection's config takes in.
    NotWanted,
}

/// Decides whether `config` takes this event in: for its mappings (see
/// [`wanted_by_mappings`]) or for one of its triggers. hubsync's own writes never come back.
pub fn select_event(config: &ConnectionConfig, event: &WebhookEvent) -> Result<InboundEvent, Ignored> {
    if event.is_own_write() {
        return Err(Ignored::Echo);
    }
    let (object, kind) = event.kind().ok_or(Ignored::NotWanted)?;
    let inbound = InboundEvent { object, object_id: event.object_id, occurred_at_ms: event.occurred_at, kind };
    if wanted_by_mappings(config, &inbound)
        || fans_out_to_contacts(config, &inbound)
        || config.triggers.iter().any(|t| t.fires_on(&inbound))
    {
        Ok(inbound)
    } else {
        Err(Ignored::NotWanted)
    }
}

/// A change of a company or deal property that contacts' inbound fields read from their
/// associated company or deal: it is news for every associated contact.
pub fn fans_out_to_contacts(config: &ConnectionConfig, event: &InboundEvent) -> bool {
    let EventKind::Changed { property, .. } = &event.kind else { return false };
    config.objects.get(&ObjectType::Contacts).is_some_and(|contacts| {
        contacts.fields.iter().any(|f| {
            f.direction.comes_in() && f.from_associated == Some(event.object) && &f.hubspot_property == property
        })
    })
}

/// The object is configured with inbound fields, and the event is a change of an
/// inbound-mapped property (or of the bidirectional counter), or a lifecycle event the config
/// asks for.
pub fn wanted_by_mappings(config: &ConnectionConfig, event: &InboundEvent) -> bool {
    let Some(object_config) = config.objects.get(&event.object) else { return false };
    let inbound: Vec<&str> = object_config
        .fields
        .iter()
        .filter(|f| f.direction.comes_in() && f.from_associated.is_none())
        .map(|f| f.hubspot_property.as_str())
        .collect();
    let counter =
        config.options.bidirectional_counter_property.as_deref().filter(|_| event.object == ObjectType::Contacts);
    if inbound.is_empty() && counter.is_none() {
        return false;
    }
    match &event.kind {
        EventKind::Changed { property, .. } => {
            inbound.contains(&property.as_str()) || counter == Some(property.as_str())
        }
        EventKind::Refresh => true,
        EventKind::Created => config.options.inbound_events.creations,
        EventKind::Deleted => config.options.inbound_events.deletions,
        EventKind::Restored => config.options.inbound_events.restores,
        EventKind::Merged { .. } => config.options.inbound_events.merges,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(fields: serde_json::Value) -> WebhookEvent {
        let mut base = json!({
            "eventId": 1, "subscriptionId": 2, "portalId": 1000, "appId": 54321, "occurredAt": 1_700_000_000_000i64,
            "subscriptionType": "contact.propertyChange", "attemptNumber": 0, "objectId": 501,
            "propertyName": "firstname", "propertyValue": "Ada", "changeSource": "CRM_UI", "sourceId": "userId:7"
        });
        base.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    fn config(extra: serde_json::Value) -> ConnectionConfig {
        let mut config = json!({ "objects": { "contacts": {
            "match_key": { "kind": "email" }, "write_mode": "upsert",
            "fields": [
                { "platform_field": "first_name", "hubspot_property": "firstname", "direction": "both", "platform_type": "string" },
                { "platform_field": "plan", "hubspot_property": "plan", "direction": "out", "platform_type": "string" }
            ] } },
            "options": { "webhooks_enabled": true, "data_in_enabled": true, "bidirectional_counter_property": null,
                         "rate_limit_per_10s": null } });
        config["options"].as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(config).unwrap()
    }

    #[test]
    fn a_batch_must_be_an_array_of_well_formed_events() {
        assert!(matches!(parse_webhook_batch(b"{}"), Err(BadBatch::NotAnArray(_))));
        assert!(matches!(parse_webhook_batch(br#"[{"eventId":"x"}]"#), Err(BadBatch::Malformed { index: 0, .. })));
        assert_eq!(parse_webhook_batch(&vec![b' '; MAX_WEBHOOK_BODY_BYTES + 1]), Err(BadBatch::TooLarge));
        let body = serde_json::to_vec(&vec![event(json!({}))]).unwrap();
        assert_eq!(parse_webhook_batch(&body).unwrap().len(), 1);
    }

    #[test]
    fn retries_of_an_event_share_its_key_and_other_events_do_not() {
        let first = event(json!({}));
        assert_eq!(first.dedup_key(), event(json!({ "attemptNumber": 3 })).dedup_key());
        assert_ne!(first.dedup_key(), event(json!({ "propertyValue": "Grace" })).dedup_key());
        assert_ne!(first.dedup_key(), event(json!({ "occurredAt": 1 })).dedup_key());
    }

    #[test]
    fn only_inbound_properties_and_wanted_lifecycle_events_pass() {
        let config = config(json!({}));
        assert!(select_event(&config, &event(json!({}))).is_ok());
        let outbound_only = event(json!({ "propertyName": "plan" }));
        assert_eq!(select_event(&config, &outbound_only), Err(Ignored::NotWanted));
        let deal = event(json!({ "subscriptionType": "deal.creation" }));
        assert_eq!(select_event(&config, &deal), Err(Ignored::NotWanted));
        let created = event(json!({ "subscriptionType": "contact.creation" }));
        assert_eq!(select_event(&config, &created).unwrap().kind, EventKind::Created);
        let quiet = self::config(json!({ "inbound_events": { "creations": false } }));
        assert_eq!(select_event(&quiet, &created), Err(Ignored::NotWanted));
        let merged =
            event(json!({ "subscriptionType": "contact.merge", "primaryObjectId": 9, "mergedObjectIds": [501, 9] }));
        assert_eq!(select_event(&config, &merged).unwrap().kind, EventKind::Merged { into: 9, merged: vec![501, 9] });
    }

    #[test]
    fn the_apps_own_writes_are_not_echoed_back() {
        let own = event(json!({ "changeSource": "INTEGRATION", "sourceId": "54321" }));
        assert_eq!(select_event(&config(json!({})), &own), Err(Ignored::Echo));
        let other_app = event(json!({ "changeSource": "INTEGRATION", "sourceId": "999" }));
        assert!(select_event(&config(json!({})), &other_app).is_ok());
    }

    #[test]
    fn the_bidirectional_counter_passes_even_when_no_field_comes_in() {
        let config = config(json!({ "bidirectional_counter_property": "acme_changed" }));
        let bump = event(json!({ "propertyName": "acme_changed", "propertyValue": "4" }));
        assert!(select_event(&config, &bump).is_ok());
    }
}

/// A HubSpot wire value as the platform field's type: booleans and numbers as JSON, dates as
/// `2024-05-31`, date-times as RFC 3339, multi-select values as arrays; `""` (no value) is null.
/// A value that does not read as the type is passed on as text rather than dropped.
pub fn to_platform_value(raw: &str, platform_type: super::FieldType) -> serde_json::Value {
    use serde_json::Value;
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    use super::FieldType;

    if raw.is_empty() {
        return Value::Null;
    }
    let from_millis = |raw: &str| -> Option<OffsetDateTime> {
        let ms: i128 = raw.trim().parse().ok()?;
        OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000).ok()
    };
    let as_text = || Value::String(raw.to_string());
    match platform_type {
        FieldType::String => as_text(),
        FieldType::Boolean => match raw.trim().to_ascii_lowercase().as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => as_text(),
        },
        FieldType::Number => {
            serde_json::from_str::<serde_json::Number>(raw.trim()).map(Value::Number).unwrap_or_else(|_| as_text())
        }
        FieldType::Date => from_millis(raw)
            .or_else(|| OffsetDateTime::parse(raw, &Rfc3339).ok())
            .map(|t| Value::String(t.date().to_string()))
            .unwrap_or_else(as_text),
        FieldType::Datetime => {
            from_millis(raw).and_then(|t| t.format(&Rfc3339).ok()).map(Value::String).unwrap_or_else(as_text)
        }
        FieldType::Enumeration if raw.contains(';') => {
            Value::Array(raw.split(';').filter(|v| !v.is_empty()).map(|v| Value::String(v.to_string())).collect())
        }
        FieldType::Enumeration => as_text(),
    }
}

#[cfg(test)]
mod platform_value_tests {
    use serde_json::json;

    use super::*;
    use crate::domain::FieldType;

    #[test]
    fn hubspot_values_take_the_platform_fields_type() {
        let cases = [
            ("true", FieldType::Boolean, json!(true)),
            ("12.5", FieldType::Number, json!(12.5)),
            ("1717113600000", FieldType::Date, json!("2024-05-31")),
            ("2024-05-31T00:00:00Z", FieldType::Date, json!("2024-05-31")),
            ("1717156800000", FieldType::Datetime, json!("2024-05-31T12:00:00Z")),
            ("gold;silver", FieldType::Enumeration, json!(["gold", "silver"])),
            ("gold", FieldType::Enumeration, json!("gold")),
            ("", FieldType::String, json!(null)),
            ("many", FieldType::Number, json!("many")),
        ];
        for (raw, platform_type, expected) in cases {
            assert_eq!(to_platform_value(raw, platform_type), expected, "{raw} as {platform_type}");
        }
    }
}
