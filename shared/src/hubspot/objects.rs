//! CRM records (contacts, companies, deals) of one portal: single calls, list paging and the
//! batch endpoints. Batch methods take any number of inputs, split them into calls of at most
//! [`BATCH_LIMIT`], and report an outcome for every input, because a 207 can succeed for some
//! records and fail for others.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::client::{HubSpotClient, Reply};
use super::error::{ErrorBody, ErrorClass, HubSpotError};
use super::lenient;
use super::rate_limit::RateLimit;
use crate::domain::pull::{Hit, PullQuery};
use crate::domain::{ObjectType, Secret};

/// HubSpot's cap on inputs per batch call.
pub const BATCH_LIMIT: usize = 100;
/// HubSpot's cap on inputs per batch read that asks for property history.
pub const HISTORY_BATCH_LIMIT: usize = 50;
/// HubSpot's cap on records per list page.
pub const PAGE_LIMIT: u32 = 100;
/// Values in one search `IN` filter, and records in one search page (HubSpot's maximum).
pub const SEARCH_IN_LIMIT: usize = 100;
pub const SEARCH_PAGE_LIMIT: u32 = 200;

/// Property values to write. HubSpot takes every value as a string; `""` clears a value.
pub type PropertyValues = BTreeMap<String, String>;

/// A CRM record as HubSpot returns it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrmObject {
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub id: Option<String>,
    /// Values are strings or `null` (unset); dates are ms-epoch strings, datetimes ISO-8601.
    #[serde(default, deserialize_with = "lenient::property_values")]
    pub properties: BTreeMap<String, Option<String>>,
    #[serde(default, deserialize_with = "lenient::opt_datetime")]
    pub created_at: Option<OffsetDateTime>,
    #[serde(default, deserialize_with = "lenient::opt_datetime")]
    pub updated_at: Option<OffsetDateTime>,
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub archived: bool,
    #[serde(default, deserialize_with = "lenient::opt_datetime")]
    pub archived_at: Option<OffsetDateTime>,
    /// Upserts only: whether the record was created (`true`) or updated.
    #[serde(default)]
    pub new: Option<bool>,
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub object_write_trace_id: Option<String>,
    /// For reads that ask for it: each property's changes, newest first.
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub properties_with_history: BTreeMap<String, Vec<PropertyChange>>,
}

/// One change in a property's history: the value set, when, and by what (`sourceType`
/// `INTEGRATION` with the app's id as `sourceId` for an app's writes, `CRM_UI` for a person...).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyChange {
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub value: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_datetime")]
    pub timestamp: Option<OffsetDateTime>,
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub source_type: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub source_id: Option<String>,
}

impl PropertyChange {
    /// Whether the app with this id made the change.
    pub fn by_app(&self, app_id: u64) -> bool {
        self.source_type.as_deref() == Some("INTEGRATION") && self.source_id.as_deref() == Some(&app_id.to_string())
    }

    pub fn at_ms(&self) -> Option<i64> {
        self.timestamp.map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
    }
}

impl CrmObject {
    /// A property's value, `None` when absent or unset.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties.get(name)?.as_deref()
    }

    /// The record id; an empty string in the odd body that lacks one.
    pub fn id(&self) -> &str {
        self.id.as_deref().unwrap_or_default()
    }

    /// The record as a pull sees it: its id and the value of `modified_property` in epoch
    /// milliseconds (HubSpot sends ms or, from search, ISO 8601 text). `None` if either is missing.
    pub fn as_hit(&self, modified_property: &str) -> Option<Hit> {
        let object_id = self.id().parse().ok()?;
        let raw = self.property(modified_property)?;
        let modified_at_ms = raw.parse::<i64>().ok().or_else(|| {
            let at = OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339).ok()?;
            Some((at.unix_timestamp_nanos() / 1_000_000) as i64)
        })?;
        Some(Hit { object_id, modified_at_ms })
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub results: Vec<CrmObject>,
    /// The cursor for the next page; `None` on the last one.
    pub next_after: Option<String>,
}

/// Input of a batch update: the record (by id, or by the batch's `idProperty`) and the values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateInput {
    pub id: String,
    pub properties: PropertyValues,
}

/// Input of a batch upsert: `id` is the value of the batch's `idProperty` (an email, or a
/// unique external id), not a HubSpot record id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpsertInput {
    pub id: String,
    pub properties: PropertyValues,
}

/// Why one input of a batch has no result.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ItemError {
    /// HubSpot refused this record (its entry in a 207's `errors`), with HubSpot's reason.
    #[error("HubSpot refused the record: {0}")]
    Rejected(Box<ErrorBody>),
    /// The call that carried this input failed as a whole.
    #[error("{0}")]
    CallFailed(Arc<HubSpotError>),
    /// Not sent: an earlier call of the same batch failed in a way the next would share (rate
    /// limit, credentials, outage), so the rest was not attempted.
    #[error("not sent: an earlier call of this batch failed")]
    NotSent,
    /// HubSpot's answer mentioned neither a result nor an error for this input.
    #[error("HubSpot's answer did not mention this record")]
    Unanswered,
}

impl ItemError {
    pub fn class(&self) -> ErrorClass {
        match self {
            ItemError::Rejected(body) => body.class(),
            ItemError::CallFailed(err) => err.class(),
            ItemError::NotSent | ItemError::Unanswered => ErrorClass::Retryable,
        }
    }

    /// HubSpot's error body for this input, whether it was refused alone or with its call.
    pub fn body(&self) -> Option<&ErrorBody> {
        match self {
            ItemError::Rejected(body) => Some(body),
            ItemError::CallFailed(err) => err.response().map(|r| &r.body),
            ItemError::NotSent | ItemError::Unanswered => None,
        }
    }

    pub fn category(&self) -> Option<&str> {
        self.body()?.category.as_deref()
    }
}

/// The outcome of a batch operation: one entry per input, in input order.
#[derive(Debug)]
pub struct BatchOutcome<T> {
    pub items: Vec<Result<T, ItemError>>,
    /// HTTP calls made (inputs / [`BATCH_LIMIT`], rounded up, unless a call failed early).
    pub calls: usize,
    /// The rate-limit headers of the last response.
    pub rate_limit: Option<RateLimit>,
}

impl<T> BatchOutcome<T> {
    pub fn succeeded(&self) -> usize {
        self.items.iter().filter(|i| i.is_ok()).count()
    }

    pub fn failed(&self) -> usize {
        self.items.len() - self.succeeded()
    }

    pub fn all_succeeded(&self) -> bool {
        self.items.iter().all(Result::is_ok)
    }
}

/// The CRM records of one object type in one portal, reached with one access token.
///
/// Every response's rate-limit headers are kept: [`Objects::last_rate_limit`] is how callers
/// pace themselves against the portal's shared budget.
#[derive(Debug)]
pub struct Objects<'a> {
    client: &'a HubSpotClient,
    token: &'a Secret,
    object: ObjectType,
    last_rate_limit: Mutex<Option<RateLimit>>,
}

#[derive(Deserialize)]
struct ListBody {
    #[serde(default, deserialize_with = "lenient::or_default")]
    results: Vec<CrmObject>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Deserialize)]
struct Paging {
    #[serde(default)]
    next: Option<NextPage>,
}

#[derive(Deserialize)]
struct NextPage {
    #[serde(default, deserialize_with = "lenient::opt_text")]
    after: Option<String>,
}

#[derive(Deserialize, Default)]
struct BatchBody {
    #[serde(default, deserialize_with = "lenient::or_default")]
    results: Vec<CrmObject>,
    #[serde(default, deserialize_with = "lenient::or_default")]
    errors: Vec<ErrorBody>,
}

/// How a batch's results are tied back to its inputs when HubSpot echoes no trace id.
enum Key<'k> {
    /// By record id (`result.id`).
    RecordId(&'k [String]),
    /// By the value of a unique property (`result.properties[name]`), case-insensitively:
    /// HubSpot lower-cases emails.
    Property(&'k str, &'k [String]),
    /// No key: results are taken in input order when their count matches.
    Position,
}

impl HubSpotClient {
    /// The records of `object` in the portal this token belongs to.
    pub fn objects<'a>(&'a self, token: &'a Secret, object: ObjectType) -> Objects<'a> {
        Objects { client: self, token, object, last_rate_limit: Mutex::new(None) }
    }
}

impl<'a> Objects<'a> {
    /// The rate-limit headers of the most recent response (success or failure).
    pub fn last_rate_limit(&self) -> Option<RateLimit> {
        *self.last_rate_limit.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn op(&self, verb: &str) -> String {
        format!("{verb} {}", self.object)
    }

    async fn call(
        &self,
        operation: &str,
        method: Method,
        segments: &[&str],
        body: Option<&Value>,
        query: &[(&str, String)],
    ) -> Result<Reply, HubSpotError> {
        let result = self.client.call_with_token(operation, self.token, method, segments, body, query).await;
        let seen = match &result {
            Ok(reply) => reply.rate_limit,
            Err(err) => err.rate_limit(),
        };
        if seen.is_some() {
            *self.last_rate_limit.lock().unwrap_or_else(|e| e.into_inner()) = seen;
        }
        result
    }

    /// One record by HubSpot id.
    pub async fn get(&self, id: &str, properties: &[&str]) -> Result<CrmObject, HubSpotError> {
        let op = self.op("get");
        let query = properties_query(properties);
        self.call(&op, Method::GET, &self.client.paths.object(self.object, id), None, &query).await?.json(&op)
    }

    /// One record by the value of a unique property (e.g. `email`).
    pub async fn get_by(&self, id_property: &str, value: &str, properties: &[&str]) -> Result<CrmObject, HubSpotError> {
        let op = self.op("get");
        let mut query = properties_query(properties);
        query.push(("idProperty", id_property.to_string()));
        self.call(&op, Method::GET, &self.client.paths.object(self.object, value), None, &query).await?.json(&op)
    }

    /// One page of records, oldest first. `limit` is capped at [`PAGE_LIMIT`]; pass the
    /// previous page's `next_after` to continue.
    pub async fn list_page(&self, after: Option<&str>, limit: u32, properties: &[&str]) -> Result<Page, HubSpotError> {
        let op = self.op("list");
        let mut query = properties_query(properties);
        query.push(("limit", limit.clamp(1, PAGE_LIMIT).to_string()));
        if let Some(after) = after {
            query.push(("after", after.to_string()));
        }
        let body: ListBody =
            self.call(&op, Method::GET, &self.client.paths.objects(self.object), None, &query).await?.json(&op)?;
        let next_after = body.paging.and_then(|p| p.next).and_then(|n| n.after).filter(|a| !a.is_empty());
        Ok(Page { results: body.results, next_after })
    }

    /// Every record, page by page. Holds them all in memory: for large portals, page with
    /// [`Objects::list_page`] and keep the cursor instead.
    pub async fn list_all(&self, properties: &[&str]) -> Result<Vec<CrmObject>, HubSpotError> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.list_page(after.as_deref(), PAGE_LIMIT, properties).await?;
            all.extend(page.results);
            match page.next_after {
                // A cursor that does not move would loop forever.
                Some(next) if after.as_deref() != Some(next.as_str()) => after = Some(next),
                _ => return Ok(all),
            }
        }
    }

    /// The records whose `property` equals one of `values` (search's `IN` filter), following
    /// pages. Search has its own, lower rate limit (5 requests per second per portal) and
    /// answers from an index that may lag a write by a few seconds.
    pub async fn search_in(
        &self,
        property: &str,
        values: &[String],
        properties: &[&str],
    ) -> Result<Vec<CrmObject>, HubSpotError> {
        let op = self.op("search");
        let segments = self.client.paths.search(self.object);
        let mut found = Vec::new();
        for chunk in values.chunks(SEARCH_IN_LIMIT) {
            let mut after: Option<String> = None;
            loop {
                let mut body = json!({
                    "filterGroups": [{ "filters": [{ "propertyName": property, "operator": "IN", "values": chunk }] }],
                    "properties": properties,
                    "sorts": [{ "propertyName": "hs_object_id", "direction": "ASCENDING" }],
                    "limit": SEARCH_PAGE_LIMIT,
                });
                if let Some(after) = &after {
                    body["after"] = json!(after);
                }
                let page: ListBody = self.call(&op, Method::POST, &segments, Some(&body), &[]).await?.json(&op)?;
                found.extend(page.results);
                match page.paging.and_then(|p| p.next).and_then(|n| n.after).filter(|a| !a.is_empty()) {
                    Some(next) if after.as_deref() != Some(next.as_str()) => after = Some(next),
                    _ => break,
                }
            }
        }
        Ok(found)
    }

    /// One page of a pull (see [`crate::domain::pull`]): the query as a search, with the
    /// record's last-modified time and id always among the properties read.
    pub async fn search_pull(&self, query: &PullQuery, properties: &[&str]) -> Result<Vec<CrmObject>, HubSpotError> {
        let op = self.op("search");
        let modified = self.object.last_modified_property();
        let filter = |property: &str, operator: &str, value: String| json!({ "propertyName": property, "operator": operator, "value": value });
        let (filters, sort_by) = match *query {
            PullQuery::Forward { from_ms, until_ms } => (
                vec![filter(modified, "GTE", from_ms.to_string()), filter(modified, "LTE", until_ms.to_string())],
                modified,
            ),
            PullQuery::SameInstant { at_ms, after_id } => (
                vec![filter(modified, "EQ", at_ms.to_string()), filter("hs_object_id", "GT", after_id.to_string())],
                "hs_object_id",
            ),
        };
        let mut wanted: Vec<&str> = properties.to_vec();
        wanted.extend([modified, "hs_object_id"]);
        wanted.sort_unstable();
        wanted.dedup();
        let body = json!({
            "filterGroups": [{ "filters": filters }],
            "sorts": [{ "propertyName": sort_by, "direction": "ASCENDING" }],
            "properties": wanted,
            // The walk reads a shorter page as the end of its window: the sizes must agree.
            "limit": crate::domain::pull::PAGE_SIZE,
        });
        let page: ListBody =
            self.call(&op, Method::POST, &self.client.paths.search(self.object), Some(&body), &[]).await?.json(&op)?;
        Ok(page.results)
    }

    pub async fn create(&self, properties: &PropertyValues) -> Result<CrmObject, HubSpotError> {
        let op = self.op("create");
        let body = json!({ "properties": properties });
        self.call(&op, Method::POST, &self.client.paths.objects(self.object), Some(&body), &[]).await?.json(&op)
    }

    pub async fn update(&self, id: &str, properties: &PropertyValues) -> Result<CrmObject, HubSpotError> {
        let op = self.op("update");
        let body = json!({ "properties": properties });
        self.call(&op, Method::PATCH, &self.client.paths.object(self.object, id), Some(&body), &[]).await?.json(&op)
    }

    /// Archives (soft-deletes) a record; HubSpot keeps it restorable for 90 days.
    pub async fn archive(&self, id: &str) -> Result<(), HubSpotError> {
        let op = self.op("archive");
        self.call(&op, Method::DELETE, &self.client.paths.object(self.object, id), None, &[]).await?;
        Ok(())
    }

    /// Reads records by HubSpot id, or by a unique property when `id_property` is given.
    /// Ids HubSpot does not know end as [`ItemError::Rejected`] with `OBJECT_NOT_FOUND`.
    pub async fn batch_read(
        &self,
        ids: &[String],
        id_property: Option<&str>,
        properties: &[&str],
    ) -> BatchOutcome<CrmObject> {
        self.batch_read_with_history(ids, id_property, properties, &[]).await
    }

    /// [`Self::batch_read`], with the history of the `history` properties (in calls of at most
    /// [`HISTORY_BATCH_LIMIT`] inputs when any is asked for).
    pub async fn batch_read_with_history(
        &self,
        ids: &[String],
        id_property: Option<&str>,
        properties: &[&str],
        history: &[&str],
    ) -> BatchOutcome<CrmObject> {
        let op = self.op("batch read");
        let key = match id_property {
            Some(name) => Key::Property(name, ids),
            None => Key::RecordId(ids),
        };
        let body_for = |range: Range<usize>| {
            let inputs: Vec<Value> = ids[range].iter().map(|id| json!({ "id": id })).collect();
            let mut body = json!({ "inputs": inputs, "properties": properties, "propertiesWithHistory": history });
            if let Some(name) = id_property {
                body["idProperty"] = json!(name);
            }
            body
        };
        let per_call = if history.is_empty() { BATCH_LIMIT } else { HISTORY_BATCH_LIMIT };
        let mut outcome = self.run_batches(&op, "read", ids.len(), per_call, body_for, &key, false).await;
        // HubSpot answers 404 when none of the ids exist: that is a per-record fact.
        for item in &mut outcome.items {
            if let Err(ItemError::CallFailed(err)) = item {
                if let (HubSpotError::NotFound(response), Some(_)) = (err.as_ref(), err.category()) {
                    *item = Err(ItemError::Rejected(Box::new(response.body.clone())));
                }
            }
        }
        outcome
    }

    /// Creates records. Each input carries an `objectWriteTraceId`, which makes HubSpot report
    /// failures per record (207) instead of failing the whole call.
    pub async fn batch_create(&self, inputs: &[PropertyValues]) -> BatchOutcome<CrmObject> {
        let op = self.op("batch create");
        let body_for = |range: Range<usize>| {
            let inputs: Vec<Value> = range
                .map(|i| json!({ "properties": inputs[i], "associations": [], "objectWriteTraceId": i.to_string() }))
                .collect();
            json!({ "inputs": inputs })
        };
        self.run_batches(&op, "create", inputs.len(), BATCH_LIMIT, body_for, &Key::Position, true).await
    }

    /// Updates records by HubSpot id, or by a unique property when `id_property` is given.
    pub async fn batch_update(&self, inputs: &[UpdateInput], id_property: Option<&str>) -> BatchOutcome<CrmObject> {
        let op = self.op("batch update");
        let ids: Vec<String> = inputs.iter().map(|i| i.id.clone()).collect();
        let key = match id_property {
            Some(name) => Key::Property(name, &ids),
            None => Key::RecordId(&ids),
        };
        let body_for = |range: Range<usize>| {
            let inputs: Vec<Value> = range
                .map(|i| {
                    let mut input = json!({ "id": inputs[i].id, "properties": inputs[i].properties, "objectWriteTraceId": i.to_string() });
                    if let Some(name) = id_property {
                        input["idProperty"] = json!(name);
                    }
                    input
                })
                .collect();
            json!({ "inputs": inputs })
        };
        self.run_batches(&op, "update", inputs.len(), BATCH_LIMIT, body_for, &key, true).await
    }

    /// Creates or updates records matched by `id_property` (`email`, or a property with unique
    /// values). Results say whether each record was `new`. With `email`, HubSpot does not do
    /// partial upserts: send every managed property.
    pub async fn batch_upsert(&self, id_property: &str, inputs: &[UpsertInput]) -> BatchOutcome<CrmObject> {
        let op = self.op("batch upsert");
        let ids: Vec<String> = inputs.iter().map(|i| i.id.clone()).collect();
        let key = Key::Property(id_property, &ids);
        let body_for = |range: Range<usize>| {
            let inputs: Vec<Value> = range
                .map(|i| {
                    json!({
                        "id": inputs[i].id,
                        "idProperty": id_property,
                        "properties": inputs[i].properties,
                        "objectWriteTraceId": i.to_string(),
                    })
                })
                .collect();
            json!({ "inputs": inputs })
        };
        self.run_batches(&op, "upsert", inputs.len(), BATCH_LIMIT, body_for, &key, true).await
    }

    /// Archives records by HubSpot id. HubSpot answers 204 with no detail, so every input of a
    /// successful call counts as archived (ids it did not know included).
    pub async fn batch_archive(&self, ids: &[String]) -> BatchOutcome<()> {
        let op = self.op("batch archive");
        let mut items: Vec<Result<(), ItemError>> = Vec::with_capacity(ids.len());
        let mut calls = 0;
        let mut rate_limit = None;
        let mut stopped = false;
        for start in (0..ids.len()).step_by(BATCH_LIMIT) {
            let range = start..(start + BATCH_LIMIT).min(ids.len());
            if stopped {
                items.extend(range.map(|_| Err(ItemError::NotSent)));
                continue;
            }
            let inputs: Vec<Value> = ids[range.clone()].iter().map(|id| json!({ "id": id })).collect();
            let body = json!({ "inputs": inputs });
            calls += 1;
            match self.call(&op, Method::POST, &self.client.paths.batch(self.object, "archive"), Some(&body), &[]).await
            {
                Ok(reply) => {
                    rate_limit = reply.rate_limit.or(rate_limit);
                    items.extend(range.map(|_| Ok(())));
                }
                Err(err) => {
                    rate_limit = err.rate_limit().or(rate_limit);
                    stopped = err.class() != ErrorClass::Permanent;
                    let err = Arc::new(err);
                    items.extend(range.map(|_| Err(ItemError::CallFailed(err.clone()))));
                }
            }
        }
        BatchOutcome { items, calls, rate_limit }
    }

    /// Sends `n` inputs in calls of at most `per_call` and ties every answer back to its input.
    /// After a call fails in a way the next call would share (not `Permanent`), the remaining
    /// inputs are not sent.
    #[allow(clippy::too_many_arguments)]
    async fn run_batches(
        &self,
        operation: &str,
        action: &'static str,
        n: usize,
        per_call: usize,
        body_for: impl Fn(Range<usize>) -> Value,
        key: &Key<'_>,
        traced: bool,
    ) -> BatchOutcome<CrmObject> {
        let mut items: Vec<Option<Result<CrmObject, ItemError>>> = (0..n).map(|_| None).collect();
        let mut calls = 0;
        let mut rate_limit = None;
        let mut stopped = false;
        for start in (0..n).step_by(per_call) {
            let range = start..(start + per_call).min(n);
            if stopped {
                items[range].iter_mut().for_each(|i| *i = Some(Err(ItemError::NotSent)));
                continue;
            }
            calls += 1;
            let body = body_for(range.clone());
            match self
                .call(operation, Method::POST, &self.client.paths.batch(self.object, action), Some(&body), &[])
                .await
            {
                Ok(reply) => {
                    rate_limit = reply.rate_limit.or(rate_limit);
                    let parsed = if reply.status == StatusCode::NO_CONTENT || reply.body.is_empty() {
                        Ok(BatchBody::default())
                    } else {
                        reply.json::<BatchBody>(operation)
                    };
                    match parsed {
                        Ok(body) => assign(&mut items, range, body, key, traced),
                        Err(err) => {
                            let err = Arc::new(err);
                            items[range].iter_mut().for_each(|i| *i = Some(Err(ItemError::CallFailed(err.clone()))));
                        }
                    }
                }
                Err(err) => {
                    rate_limit = err.rate_limit().or(rate_limit);
                    stopped = err.class() != ErrorClass::Permanent;
                    let err = Arc::new(err);
                    items[range].iter_mut().for_each(|i| *i = Some(Err(ItemError::CallFailed(err.clone()))));
                }
            }
        }
        let items = items.into_iter().map(|i| i.unwrap_or(Err(ItemError::Unanswered))).collect();
        BatchOutcome { items, calls, rate_limit }
    }
}

fn properties_query(properties: &[&str]) -> Vec<(&'static str, String)> {
    if properties.is_empty() { Vec::new() } else { vec![("properties", properties.join(","))] }
}

/// Ties one call's results and errors to the inputs in `range`: by `objectWriteTraceId` (the
/// global input index, when `traced`), then by key, then by position for unkeyed creates.
fn assign(
    items: &mut [Option<Result<CrmObject, ItemError>>],
    range: Range<usize>,
    body: BatchBody,
    key: &Key<'_>,
    traced: bool,
) {
    let traced_index = |trace: &str| -> Option<usize> {
        let i = trace.parse::<usize>().ok()?;
        (traced && range.contains(&i)).then_some(i)
    };
    let keyed = |value: &str| -> Vec<usize> {
        let matches = |candidate: &String| match key {
            Key::RecordId(_) => candidate == value,
            Key::Property(..) => candidate.eq_ignore_ascii_case(value),
            Key::Position => false,
        };
        match key {
            Key::RecordId(ids) | Key::Property(_, ids) => range.clone().filter(|&i| matches(&ids[i])).collect(),
            Key::Position => Vec::new(),
        }
    };

    let mut unmatched_results = Vec::new();
    for result in body.results {
        let mut targets: Vec<usize> =
            result.object_write_trace_id.as_deref().and_then(traced_index).into_iter().collect();
        if targets.is_empty() {
            let value = match key {
                Key::RecordId(_) => result.id.clone(),
                Key::Property(name, _) => result.property(name).map(str::to_string),
                Key::Position => None,
            };
            targets = value.map(|v| keyed(&v)).unwrap_or_default();
        }
        if targets.is_empty() {
            unmatched_results.push(result);
            continue;
        }
        for i in targets {
            items[i] = Some(Ok(result.clone()));
        }
    }

    let mut unmatched_errors = Vec::new();
    for error in body.errors {
        let mut targets: Vec<usize> = error.trace_ids().iter().filter_map(|t| traced_index(t)).collect();
        if targets.is_empty() {
            targets = error.ids().iter().flat_map(|id| keyed(id)).collect();
        }
        if targets.is_empty() {
            unmatched_errors.push(error);
            continue;
        }
        for i in targets {
            if items[i].is_none() {
                items[i] = Some(Err(ItemError::Rejected(Box::new(error.clone()))));
            }
        }
    }

    // What is left can only be placed when it is unambiguous: results in order for a create
    // whose every input is unaccounted for, or a single error for a single input.
    let open: Vec<usize> = range.filter(|&i| items[i].is_none()).collect();
    if unmatched_results.len() == open.len() && unmatched_errors.is_empty() {
        for (i, result) in open.iter().zip(unmatched_results) {
            items[*i] = Some(Ok(result));
        }
    } else if unmatched_results.is_empty() && unmatched_errors.len() == 1 && open.len() == 1 {
        let error = unmatched_errors.remove(0);
        items[open[0]] = Some(Err(ItemError::Rejected(Box::new(error))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(n: usize, body: &str, key: &Key<'_>, traced: bool) -> Vec<Option<Result<CrmObject, ItemError>>> {
        let mut items: Vec<Option<Result<CrmObject, ItemError>>> = (0..n).map(|_| None).collect();
        assign(&mut items, 0..n, serde_json::from_str(body).unwrap(), key, traced);
        items
    }

    #[test]
    fn a_207_upsert_is_read_record_by_record() {
        let ids: Vec<String> = vec!["a@x.com".into(), "B@x.com".into(), "c@x.com".into()];
        let body = r#"{
            "status":"COMPLETE","numErrors":1,
            "results":[
                {"id":"101","properties":{"email":"a@x.com","tier":"gold"},"createdAt":"2024-01-01T00:00:00Z","updatedAt":"2024-01-01T00:00:00Z","archived":false,"new":true},
                {"id":"102","properties":{"email":"b@x.com"},"new":false}
            ],
            "errors":[{"status":"error","category":"VALIDATION_ERROR","message":"Property values were not valid: [{\"isValid\":false,\"message\":\"platinum was not one of the allowed options\",\"error\":\"INVALID_OPTION\",\"name\":\"tier\"}]","context":{"ids":["c@x.com"]}}],
            "startedAt":"2024-01-01T00:00:00Z","completedAt":"2024-01-01T00:00:01Z"
        }"#;
        let items = run(3, body, &Key::Property("email", &ids), true);
        let first = items[0].as_ref().unwrap().as_ref().unwrap();
        assert_eq!((first.id(), first.new), ("101", Some(true)));
        // HubSpot lower-cases emails: the match ignores case.
        assert_eq!(items[1].as_ref().unwrap().as_ref().unwrap().id(), "102");
        let Some(Err(ItemError::Rejected(error))) = &items[2] else { panic!("{:?}", items[2]) };
        assert_eq!(error.category.as_deref(), Some("VALIDATION_ERROR"));
        assert_eq!(error.invalid_properties(), vec!["tier"]);
    }

    #[test]
    fn trace_ids_win_over_keys() {
        let ids: Vec<String> = vec!["1".into(), "2".into()];
        let body = r#"{"results":[{"id":"2","properties":{},"objectWriteTraceId":"0"}],
            "errors":[{"category":"VALIDATION_ERROR","context":{"objectWriteTraceId":["1"]}}]}"#;
        let items = run(2, body, &Key::RecordId(&ids), true);
        assert!(matches!(&items[0], Some(Ok(o)) if o.id() == "2"));
        assert!(matches!(&items[1], Some(Err(ItemError::Rejected(_)))));
    }

    #[test]
    fn batch_read_not_found_names_several_ids() {
        let ids: Vec<String> = vec!["1".into(), "2".into(), "3".into()];
        let body = r#"{"results":[{"id":"2","properties":{"email":"x@y.z"}}],
            "errors":[{"status":"error","category":"OBJECT_NOT_FOUND","message":"Could not get some CONTACT objects","context":{"ids":["1","3"]}}]}"#;
        let items = run(3, body, &Key::RecordId(&ids), false);
        assert!(matches!(&items[1], Some(Ok(o)) if o.property("email") == Some("x@y.z")));
        for i in [0, 2] {
            let Some(Err(e)) = &items[i] else { panic!() };
            assert_eq!(e.category(), Some("OBJECT_NOT_FOUND"));
            assert_eq!(e.class(), ErrorClass::Permanent);
        }
    }

    #[test]
    fn unkeyed_creates_fall_back_to_order_and_unknown_inputs_stay_open() {
        let items = run(2, r#"{"results":[{"id":"7"},{"id":"8"}]}"#, &Key::Position, true);
        assert!(matches!(&items[1], Some(Ok(o)) if o.id() == "8"));
        let items = run(3, r#"{"results":[{"id":"7"}]}"#, &Key::Position, true);
        assert!(items.iter().all(Option::is_none));
    }

    #[test]
    fn records_parse_with_nulls_and_dates() {
        let o: CrmObject = serde_json::from_str(
            r#"{"id":"512","properties":{"email":"bcooper@biglytics.net","hs_object_id":"512","phone":null},"createdAt":"2019-10-30T03:30:17.883Z","updatedAt":"2019-12-07T16:50:06.678Z","archived":false}"#,
        )
        .unwrap();
        assert_eq!(o.property("phone"), None);
        assert_eq!(o.property("email"), Some("bcooper@biglytics.net"));
        assert!(o.updated_at.unwrap() > o.created_at.unwrap());
        let page: ListBody =
            serde_json::from_str(r#"{"results":[],"paging":{"next":{"after":"513","link":"?after=513"}}}"#).unwrap();
        assert_eq!(page.paging.unwrap().next.unwrap().after.as_deref(), Some("513"));
    }
}
