//! Per-record sync state on DynamoDB: one item per record, its parts in attributes of their own
//! so each writer touches only its part (see [`crate::domain::record`] for the protocol).
//!
//! | attribute        | written by                                  | guarantee                          |
//! |------------------|---------------------------------------------|------------------------------------|
//! | `claim_holder`, `claim_until_ms` | `claim_records`, `release_records`, `save_outbound` | conditional: free, expired or own |
//! | `outbound`       | `save_outbound` (JSON)                      | conditional on the caller's live claim |
//! | `inbound`, `in_rev` | `save_inbound` (JSON, revision)          | conditional on the revision read   |
//! | `body`           | hubsync before the per-record protocol      | read only, as a fallback           |
//!
//! Every write is a conditional `UpdateItem` that names only its own attributes, so a claim, an
//! outbound save and an inbound save of one record never undo each other. Writes of many
//! records go out side by side, one call per record: a transaction would fail all for one
//! record's condition, and costs twice the write capacity.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use futures::future::join_all;
use time::OffsetDateTime;

use super::DynamoStore;
use super::table::{BATCH_GET_LIMIT, Item, applied, millis, n, s};
use crate::domain::record::LegacyRecordState;
use crate::domain::{ConnectionId, InboundState, ObjectType, RecordKey, RecordSyncState};
use crate::ports::{Claimed, OutboundSave, StoreError};

/// Record writes in flight at once.
const CONCURRENT_WRITES: usize = 16;

fn record_pk(key: &RecordKey) -> String {
    format!("RECORD#{}#{}#{}", key.connection_id, key.object_type, key.record_key)
}

fn item_key(key: &RecordKey) -> Item {
    HashMap::from([("pk".to_string(), s(record_pk(key))), ("sk".to_string(), s("STATE"))])
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn parse<T: serde::de::DeserializeOwned>(item: &Item, name: &str) -> Result<Option<T>, StoreError> {
    let Some(text) = item.get(name).and_then(|v| v.as_s().ok()) else { return Ok(None) };
    serde_json::from_str(text).map(Some).map_err(|e| StoreError::Corrupt(format!("`{name}`: {e}")))
}

/// A record's state from its item: each part from its own attribute, or from the body that
/// hubsync wrote before the protocol, for records not saved since.
fn state_of(key: RecordKey, item: &Item) -> Result<RecordSyncState, StoreError> {
    let legacy = match parse::<LegacyRecordState>(item, "body")? {
        Some(legacy) => legacy.into_parts(),
        None => Default::default(),
    };
    let outbound = parse(item, "outbound")?.unwrap_or(legacy.0);
    let mut inbound: InboundState = parse(item, "inbound")?.unwrap_or(legacy.1);
    inbound.revision = item.get("in_rev").and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(RecordSyncState { key, outbound, inbound })
}

/// One record's conditional update.
struct Conditional {
    key: RecordKey,
    update: &'static str,
    condition: &'static str,
    values: Vec<(&'static str, AttributeValue)>,
}

impl DynamoStore {
    pub(super) async fn read_record_states(
        &self,
        id: &ConnectionId,
        object: ObjectType,
        record_keys: &[String],
    ) -> Result<HashMap<String, RecordSyncState>, StoreError> {
        let keys: Vec<RecordKey> =
            record_keys.iter().map(|key| RecordKey::new(id.clone(), object, key.clone())).collect();
        Ok(self.read_records(&keys).await?.into_iter().map(|state| (state.key.record_key.clone(), state)).collect())
    }

    /// The states of these records (absent: never synced), read consistently in batches.
    async fn read_records(&self, keys: &[RecordKey]) -> Result<Vec<RecordSyncState>, StoreError> {
        let mut wanted: HashMap<String, &RecordKey> = HashMap::new();
        for key in keys {
            wanted.insert(record_pk(key), key);
        }
        let mut pks: Vec<&String> = wanted.keys().collect();
        pks.sort();
        let mut found = Vec::new();
        for chunk in pks.chunks(BATCH_GET_LIMIT) {
            let request = chunk.iter().map(|pk| item_key(wanted[*pk])).collect();
            for item in self.batch_get(request).await? {
                let key = item.get("pk").and_then(|v| v.as_s().ok()).and_then(|pk| wanted.get(pk));
                if let Some(key) = key {
                    found.push(state_of((*key).clone(), &item)?);
                }
            }
        }
        Ok(found)
    }

    pub(super) async fn claim_each(
        &self,
        keys: &[RecordKey],
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Vec<Claimed>, StoreError> {
        let claims = keys
            .iter()
            .map(|key| Conditional {
                key: key.clone(),
                update: "SET claim_holder = :holder, claim_until_ms = :until",
                condition: "attribute_not_exists(claim_until_ms) OR claim_until_ms <= :now OR claim_holder = :holder",
                values: vec![(":holder", s(holder)), (":until", n(millis(until))), (":now", n(millis(now)))],
            })
            .collect();
        let granted = self.update_each(claims).await?;
        // The claimed records' states are read now, under the claim (nobody else changes the
        // outbound part meanwhile), in batches rather than one by one.
        let claimed: Vec<RecordKey> =
            keys.iter().zip(&granted).filter(|(_, granted)| **granted).map(|(key, _)| key.clone()).collect();
        let mut states: HashMap<RecordKey, RecordSyncState> =
            self.read_records(&claimed).await?.into_iter().map(|state| (state.key.clone(), state)).collect();
        Ok(keys
            .iter()
            .zip(granted)
            .map(|(key, granted)| match granted {
                true => {
                    Claimed::Granted(Box::new(states.remove(key).unwrap_or_else(|| RecordSyncState::new(key.clone()))))
                }
                false => Claimed::Held,
            })
            .collect())
    }

    pub(super) async fn save_outbound_parts(
        &self,
        saves: &[OutboundSave],
        holder: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<bool>, StoreError> {
        let updates = saves
            .iter()
            .map(|save| {
                Ok(Conditional {
                    key: save.key.clone(),
                    update: if save.release {
                        "SET outbound = :outbound REMOVE claim_holder, claim_until_ms"
                    } else {
                        "SET outbound = :outbound"
                    },
                    condition: "claim_holder = :holder AND claim_until_ms > :now",
                    values: vec![
                        (":outbound", s(json(&save.outbound)?)),
                        (":holder", s(holder)),
                        (":now", n(millis(now))),
                    ],
                })
            })
            .collect::<Result<_, StoreError>>()?;
        self.update_each(updates).await
    }

    pub(super) async fn release_each(&self, keys: &[RecordKey], holder: &str) -> Result<(), StoreError> {
        let releases = keys
            .iter()
            .map(|key| Conditional {
                key: key.clone(),
                update: "REMOVE claim_holder, claim_until_ms",
                // Expired and taken by another worker, or released already: not ours to drop.
                condition: "claim_holder = :holder",
                values: vec![(":holder", s(holder))],
            })
            .collect();
        self.update_each(releases).await.map(|_| ())
    }

    pub(super) async fn save_inbound_parts(
        &self,
        saves: &[(RecordKey, InboundState)],
    ) -> Result<Vec<bool>, StoreError> {
        let updates = saves
            .iter()
            .map(|(key, inbound)| {
                let expected = inbound.revision;
                let stored = InboundState { revision: expected + 1, ..inbound.clone() };
                let mut values = vec![(":inbound", s(json(&stored)?)), (":next", n(expected + 1))];
                let condition = if expected == 0 {
                    "attribute_not_exists(in_rev)"
                } else {
                    values.push((":expected", n(expected)));
                    "in_rev = :expected"
                };
                Ok(Conditional {
                    key: key.clone(),
                    update: "SET inbound = :inbound, in_rev = :next",
                    condition,
                    values,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        self.update_each(updates).await
    }

    /// Applies conditional updates, a few at a time. Answers, in order, whether each was
    /// applied: `false` when its condition failed.
    async fn update_each(&self, updates: Vec<Conditional>) -> Result<Vec<bool>, StoreError> {
        let mut applied = Vec::with_capacity(updates.len());
        for chunk in updates.chunks(CONCURRENT_WRITES) {
            for result in join_all(chunk.iter().map(|update| self.update_one(update))).await {
                applied.push(result?);
            }
        }
        Ok(applied)
    }

    async fn update_one(&self, update: &Conditional) -> Result<bool, StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item_key(&update.key)))
            .update_expression(update.update)
            .condition_expression(update.condition);
        for (name, value) in &update.values {
            request = request.expression_attribute_values(*name, value.clone());
        }
        applied(request.send().await)
    }
}
