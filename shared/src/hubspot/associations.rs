//! Which records are associated with which (v4 associations): a contact's companies and
//! deals, a deal's contacts and line items.

use std::collections::BTreeMap;

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::client::paths;
use super::error::HubSpotError;
use super::{HubSpotClient, lenient};
use crate::domain::{ObjectType, Secret};

/// Ids per batch read. HubSpot takes more; 100 keeps each answer small.
pub const ASSOCIATIONS_BATCH: usize = 100;

#[derive(Deserialize)]
struct BatchBody {
    #[serde(default, deserialize_with = "lenient::or_default")]
    results: Vec<Associated>,
}

#[derive(Deserialize)]
struct Associated {
    from: Value,
    #[serde(default, deserialize_with = "lenient::or_default")]
    to: Vec<Value>,
}

fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl HubSpotClient {
    /// For each of `ids` (records of `from`), the ids of its associated `to` records. Records
    /// without any are absent from the answer (HubSpot reports them as per-input errors).
    pub async fn associated_ids(
        &self,
        token: &Secret,
        from: ObjectType,
        to: ObjectType,
        ids: &[String],
    ) -> Result<BTreeMap<String, Vec<String>>, HubSpotError> {
        let op = format!("read {from} to {to} associations");
        let segments = paths::associations_batch_read(from, to);
        let mut found = BTreeMap::new();
        for chunk in ids.chunks(ASSOCIATIONS_BATCH) {
            let inputs: Vec<Value> = chunk.iter().map(|id| json!({ "id": id })).collect();
            let body = json!({ "inputs": inputs });
            let reply = self.call_with_token(&op, token, Method::POST, &segments, Some(&body), &[]).await?;
            let parsed: BatchBody = reply.json(&op)?;
            for result in parsed.results {
                let Some(from_id) = result.from.get("id").and_then(id_text) else { continue };
                let to_ids: Vec<String> =
                    result.to.iter().filter_map(|t| t.get("toObjectId").and_then(id_text)).collect();
                found.insert(from_id, to_ids);
            }
        }
        Ok(found)
    }
}
