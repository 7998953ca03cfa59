//! Which records are associated with which (v4 associations): a contact's companies and
//! deals, a deal's contacts and line items, read in batches; and links made and removed in
//! batches.

use std::collections::{BTreeMap, HashMap, HashSet};

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ErrorBody, HubSpotError};
use super::{HubSpotClient, ItemError, lenient};
use crate::domain::{AssociationLabel, ObjectType, Secret};

/// Ids per batch read. HubSpot takes up to 1,000; 100 keeps each answer small.
pub const ASSOCIATIONS_BATCH: usize = 100;
/// Links per batch write. HubSpot documents no limit for association writes; 100 is its limit
/// for every other CRM batch.
pub const LINK_BATCH_LIMIT: usize = 100;

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
    /// More of this record's associations: ask again with `after`.
    #[serde(default)]
    paging: Option<Value>,
}

/// The errors of a write batch's answer (its results are not needed).
#[derive(Deserialize, Default)]
struct WriteBody {
    #[serde(default, deserialize_with = "lenient::or_default")]
    errors: Vec<ErrorBody>,
}

/// A link between two records, by HubSpot ids (`from` of the batch's from type).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Link {
    pub from: String,
    pub to: String,
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
        let segments = self.paths.associations_batch(from, to, "read");
        let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
        // A page asked for once is not asked for again, whatever HubSpot's `after` says.
        let mut asked: HashSet<(String, Option<String>)> = HashSet::new();
        // (id, `after` of its next page): a record with more associations than one answer
        // holds is asked for again, from where its page ended.
        let mut pending: Vec<(String, Option<String>)> = ids.iter().map(|id| (id.clone(), None)).collect();
        while !pending.is_empty() {
            let mut more = Vec::new();
            pending.retain(|page| asked.insert(page.clone()));
            for chunk in pending.chunks(ASSOCIATIONS_BATCH) {
                let inputs: Vec<Value> = chunk
                    .iter()
                    .map(|(id, after)| match after {
                        Some(after) => json!({ "id": id, "after": after }),
                        None => json!({ "id": id }),
                    })
                    .collect();
                let body = json!({ "inputs": inputs });
                let reply = self.call_with_token(&op, token, Method::POST, &segments, Some(&body), &[]).await?;
                let parsed: BatchBody = reply.json(&op)?;
                for result in parsed.results {
                    let Some(from_id) = result.from.get("id").and_then(id_text) else { continue };
                    let to_ids = result.to.iter().filter_map(|t| t.get("toObjectId").and_then(id_text));
                    found.entry(from_id.clone()).or_default().extend(to_ids);
                    let after = result.paging.as_ref().and_then(|p| p.pointer("/next/after")).and_then(id_text);
                    if let Some(after) = after {
                        more.push((from_id, Some(after)));
                    }
                }
            }
            pending = more;
        }
        Ok(found)
    }

    /// Links each pair with HubSpot's unlabeled type (`batch/associate/default`), or with
    /// `label` (`batch/create`, which adds the unlabeled type too). One call: at most
    /// [`LINK_BATCH_LIMIT`] links. Each link's outcome, in order.
    pub async fn link(
        &self,
        token: &Secret,
        from: ObjectType,
        to: ObjectType,
        links: &[Link],
        label: Option<&AssociationLabel>,
    ) -> Result<Vec<Result<(), ItemError>>, HubSpotError> {
        let inputs: Vec<Value> = links
            .iter()
            .map(|link| {
                let mut input = json!({ "from": { "id": link.from }, "to": { "id": link.to } });
                if let Some(label) = label {
                    input["types"] = json!([{
                        "associationCategory": label.category.as_str(),
                        "associationTypeId": label.type_id,
                    }]);
                }
                input
            })
            .collect();
        let (op, action) = match label {
            None => (format!("link {from} to {to}"), "associate/default"),
            Some(_) => (format!("link {from} to {to} with a label"), "create"),
        };
        self.write_links(token, &op, (from, to, action), json!({ "inputs": inputs }), links).await
    }

    /// Removes every association between each pair (`batch/archive`). One call: at most
    /// [`LINK_BATCH_LIMIT`] links. Pairs that were not linked are no error.
    pub async fn unlink(
        &self,
        token: &Secret,
        from: ObjectType,
        to: ObjectType,
        links: &[Link],
    ) -> Result<Vec<Result<(), ItemError>>, HubSpotError> {
        let mut by_from: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        for link in links {
            by_from.entry(&link.from).or_default().push(json!({ "id": link.to }));
        }
        let inputs: Vec<Value> =
            by_from.into_iter().map(|(from, to)| json!({ "from": { "id": from }, "to": to })).collect();
        let op = format!("unlink {from} from {to}");
        self.write_links(token, &op, (from, to, "archive"), json!({ "inputs": inputs }), links).await
    }

    /// Sends one association write batch and ties each error of its answer to the links it
    /// names (by `fromObjectId` and `toObjectId` in its context); an error that names no link
    /// is every link's.
    async fn write_links(
        &self,
        token: &Secret,
        op: &str,
        (from, to, action): (ObjectType, ObjectType, &str),
        body: Value,
        links: &[Link],
    ) -> Result<Vec<Result<(), ItemError>>, HubSpotError> {
        let segments = self.paths.associations_batch(from, to, action);
        let reply = self.call_with_token(op, token, Method::POST, &segments, Some(&body), &[]).await?;
        let answer: WriteBody = if reply.body.is_empty() { WriteBody::default() } else { reply.json(op)? };
        let mut outcomes: Vec<Result<(), ItemError>> = links.iter().map(|_| Ok(())).collect();
        let position: HashMap<&Link, usize> = links.iter().enumerate().map(|(i, link)| (link, i)).collect();
        for error in answer.errors {
            let named = |key: &str| error.context.get(key).cloned().unwrap_or_default();
            let (froms, tos) = (named("fromObjectId"), named("toObjectId"));
            let hit: Vec<usize> = links
                .iter()
                .filter(|l| (froms.is_empty() || froms.contains(&l.from)) && (tos.is_empty() || tos.contains(&l.to)))
                .filter_map(|l| position.get(l).copied())
                .collect();
            for i in hit {
                outcomes[i] = Err(ItemError::Rejected(Box::new(error.clone())));
            }
        }
        Ok(outcomes)
    }
}
