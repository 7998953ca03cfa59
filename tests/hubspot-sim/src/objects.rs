//! The CRM objects API (`/crm/v3/objects/{objectType}`): list, get, create, update, archive and
//! the batch endpoints, with HubSpot's status codes (201 on create, 207 when a batch has
//! per-input errors) and its error bodies.

use std::collections::{BTreeMap, BTreeSet};

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::associations;
use crate::auth::Caller;
use crate::errors::ApiError;
use crate::properties::validate;
use crate::records::{Hub, Selection, Source};
use crate::state::{ObjectType, OmittedOnUpsert, Sim, iso};

/// HubSpot's limit on inputs per batch call.
pub const BATCH_LIMIT: usize = 100;
/// List pages hold at most this many records (larger `limit`s are capped).
pub const PAGE_MAX: usize = 100;
/// Batch reads asking for property history take at most this many inputs.
const HISTORY_BATCH_LIMIT: usize = 50;

pub fn object_type(name: &str) -> Result<ObjectType, ApiError> {
    ObjectType::parse(name).ok_or_else(|| ApiError::bad_request(format!("Unable to infer object type from: {name}")))
}

pub fn parse_json(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("Invalid input JSON: {e}")))
}

/// Query parameters; repeated keys and comma lists both work (`properties=a,b&properties=c`).
pub struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn list(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    fn flag(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

fn selection(names: &[String]) -> Selection<'_> {
    if names.is_empty() { Selection::Default } else { Selection::Named(names) }
}

pub fn source(caller: &Caller) -> Source {
    Source::Integration { app_id: caller.app_id }
}

fn record_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Object not found. objectId are usually numeric. id: {id}"))
        .with("context", json!({ "id": [id] }))
}

fn conflict(object_type: ObjectType, property: &str, value: &str, existing: u64) -> ApiError {
    if object_type == ObjectType::Contacts && property == "email" {
        ApiError::conflict(format!("Contact already exists. Existing ID: {existing}"))
    } else {
        ApiError::conflict(format!(
            "A {} with {property} '{value}' already exists. Existing ID: {existing}",
            object_type.upper_singular().to_lowercase()
        ))
    }
}

/// Validates the values of one write and its unique constraints (`except`: the record being
/// updated, which may keep its own values).
fn check_write(
    hub: &Hub,
    object_type: ObjectType,
    properties: &Map<String, Value>,
    except: Option<u64>,
) -> Result<BTreeMap<String, String>, ApiError> {
    let values =
        validate(hub.properties(object_type), properties, false).map_err(|p| ApiError::invalid_properties(&p))?;
    match hub.unique_conflict(object_type, &values, except) {
        Some((property, existing)) => Err(conflict(object_type, &property, &values[&property], existing)),
        None => Ok(values),
    }
}

fn properties_of(body: &Value) -> Result<Map<String, Value>, ApiError> {
    match body.get("properties") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map.clone()),
        Some(_) => Err(ApiError::bad_request("Invalid input JSON: properties must be an object")),
    }
}

/// Record ids and unique values may come as JSON numbers or strings.
pub fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub async fn list(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path(object): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let object_type = object_type(&object)?;
    caller.require(&[object_type.read_scope()])?;
    let params = Params(query);
    let limit = match params.get("limit") {
        None => 10,
        Some(l) => l.parse::<usize>().map_err(|_| ApiError::bad_request(format!("limit must be a number: {l}")))?,
    }
    .clamp(1, PAGE_MAX);
    let after = match params.get("after") {
        None | Some("") => 0,
        Some(a) => {
            a.parse::<u64>().map_err(|_| ApiError::bad_request(format!("after must be a record id cursor: {a}")))?
        }
    };
    let archived = params.flag("archived");
    let names = params.list("properties");
    let history = params.list("propertiesWithHistory");

    let state = sim.lock();
    let hub = &state.portals[&caller.hub_id].hub;
    let mut page: Vec<_> =
        hub.records_from(object_type, after).filter(|r| r.is_archived() == archived).take(limit + 1).collect();
    let next = (page.len() > limit).then(|| page.pop().map(|r| r.id)).flatten();
    let asked = params.list("associations");
    let results: Vec<Value> = page
        .iter()
        .map(|r| with_associations(r.to_json(object_type, selection(&names), &history), hub, object_type, r.id, &asked))
        .collect();
    let mut body = json!({ "results": results });
    if let Some(next) = next {
        let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
        let link = format!("http://{host}{}?limit={limit}&after={next}", uri.path());
        body["paging"] = json!({ "next": { "after": next.to_string(), "link": link } });
    }
    Ok(axum::Json(body).into_response())
}

pub async fn get(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path((object, id)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let object_type = object_type(&object)?;
    caller.require(&[object_type.read_scope()])?;
    let params = Params(query);
    let names = params.list("properties");
    let history = params.list("propertiesWithHistory");
    let state = sim.lock();
    let hub = &state.portals[&caller.hub_id].hub;
    let record = if params.flag("archived") {
        id.parse().ok().and_then(|id| hub.record(object_type, id)).filter(|r| r.is_archived())
    } else {
        hub.find(object_type, params.get("idProperty"), &id)
    };
    let record = record.ok_or_else(|| record_not_found(&id))?;
    let json = record.to_json(object_type, selection(&names), &history);
    let json = with_associations(json, hub, object_type, record.id, &params.list("associations"));
    Ok(axum::Json(json).into_response())
}

/// Adds the record's links of the asked-for types (`?associations=`), if it has any.
fn with_associations(mut json: Value, hub: &Hub, object_type: ObjectType, id: u64, asked: &[String]) -> Value {
    if let Some(associations) = associations::on_read(hub, object_type, id, asked) {
        json["associations"] = associations;
    }
    json
}

pub async fn create(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path(object): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let object_type = object_type(&object)?;
    caller.require(&[object_type.write_scope()])?;
    let body = parse_json(&body)?;
    let properties = properties_of(&body)?;
    let mut state = sim.lock();
    let hub = &mut state.portals.get_mut(&caller.hub_id).expect("caller's portal").hub;
    let values = check_write(hub, object_type, &properties, None)?;
    let links = associations::on_create(hub, object_type, &body)?;
    let id = create_linked(hub, object_type, &values, &links, (source(&caller), sim.now_ms()));
    let record = hub.record(object_type, id).expect("just created");
    Ok((StatusCode::CREATED, axum::Json(record.to_json(object_type, Selection::All, &[]))).into_response())
}

/// `POST /crm/v3/objects/{objectType}/merge`: merges `objectIdToMerge` into `primaryObjectId`
/// (both strings in HubSpot's spec; numbers are taken too), as the admin merge does, and
/// answers 200 with the primary record, which keeps its id. Either record missing is a 400.
pub async fn merge(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path(object): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let object_type = object_type(&object)?;
    caller.require(&[object_type.write_scope()])?;
    let body = parse_json(&body)?;
    let id = |name: &str| {
        text(body.get(name))
            .and_then(|id| id.trim().parse::<u64>().ok())
            .ok_or_else(|| ApiError::bad_request(format!("Invalid input JSON: `{name}` must be a record id")))
    };
    let (primary, merged) = (id("primaryObjectId")?, id("objectIdToMerge")?);
    let mut state = sim.lock();
    let hub = &mut state.portals.get_mut(&caller.hub_id).expect("caller's portal").hub;
    hub.merge(object_type, primary, merged, source(&caller), sim.now_ms()).map_err(ApiError::bad_request)?;
    let record = hub.record(object_type, primary).expect("the primary stays");
    Ok(axum::Json(record.to_json(object_type, Selection::Default, &[])).into_response())
}

/// Creates a record and the links its create asked for.
fn create_linked(
    hub: &mut Hub,
    object_type: ObjectType,
    values: &BTreeMap<String, String>,
    links: &[(ObjectType, u64)],
    (source, now): (Source, i64),
) -> u64 {
    let id = hub.create(object_type, values, source, now);
    for &(to_type, to_id) in links {
        hub.associate(object_type, id, to_type, to_id, source, now);
    }
    id
}

pub async fn update(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path((object, id)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let object_type = object_type(&object)?;
    caller.require(&[object_type.write_scope()])?;
    let params = Params(query);
    let properties = properties_of(&parse_json(&body)?)?;
    let mut state = sim.lock();
    let hub = &mut state.portals.get_mut(&caller.hub_id).expect("caller's portal").hub;
    let record_id =
        hub.find(object_type, params.get("idProperty"), &id).map(|r| r.id).ok_or_else(|| record_not_found(&id))?;
    let values = check_write(hub, object_type, &properties, Some(record_id))?;
    hub.update(object_type, record_id, &values, source(&caller), sim.now_ms());
    let record = hub.record(object_type, record_id).expect("just updated");
    Ok(axum::Json(record.to_json(object_type, Selection::All, &[])).into_response())
}

pub async fn archive(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path((object, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let object_type = object_type(&object)?;
    caller.require(&[object_type.write_scope()])?;
    let mut state = sim.lock();
    let hub = &mut state.portals.get_mut(&caller.hub_id).expect("caller's portal").hub;
    if let Ok(id) = id.parse() {
        hub.archive(object_type, id, source(&caller), sim.now_ms());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

// Batches.

/// A batch request's body: `inputs` and the options some endpoints take.
struct Batch {
    inputs: Vec<Value>,
    properties: Vec<String>,
    history: Vec<String>,
    id_property: Option<String>,
}

fn batch(body: &Bytes) -> Result<Batch, ApiError> {
    let body = parse_json(body)?;
    let inputs = match body.get("inputs") {
        Some(Value::Array(inputs)) => inputs.clone(),
        _ => return Err(ApiError::bad_request("Invalid input JSON: inputs must be an array")),
    };
    if inputs.len() > BATCH_LIMIT {
        return Err(ApiError::bad_request(format!(
            "Too many inputs: {} were provided. The maximum number of inputs supported in a batch request is {BATCH_LIMIT}",
            inputs.len()
        ))
        .with("context", json!({ "maxInputs": [BATCH_LIMIT.to_string()] })));
    }
    let names = |key: &str| -> Vec<String> {
        body.get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|v| text(Some(v))).collect())
            .unwrap_or_default()
    };
    Ok(Batch {
        properties: names("properties"),
        history: names("propertiesWithHistory"),
        id_property: text(body.get("idProperty")),
        inputs,
    })
}

/// The `BatchResponse…` body: 207 with `errors` and `numErrors` when any input failed.
pub fn batch_response(success: StatusCode, results: Vec<Value>, errors: Vec<Value>, started: i64) -> Response {
    let mut body = json!({
        "status": "COMPLETE",
        "results": results,
        "requestedAt": iso(started),
        "startedAt": iso(started),
        "completedAt": iso(started),
    });
    let status = if errors.is_empty() {
        success
    } else {
        body["numErrors"] = json!(errors.len());
        body["errors"] = Value::Array(errors);
        StatusCode::MULTI_STATUS
    };
    (status, axum::Json(body)).into_response()
}

/// The context that ties a batch error to its input: HubSpot names the input's id and, when
/// it was sent, its `objectWriteTraceId`.
fn item_context(id: Option<&str>, trace: Option<&str>) -> Value {
    let mut context = Map::new();
    if let Some(id) = id {
        context.insert("ids".into(), json!([id]));
    }
    if let Some(trace) = trace {
        context.insert("objectWriteTraceId".into(), json!([trace]));
    }
    Value::Object(context)
}

fn with_trace(mut record: Value, trace: Option<&str>) -> Value {
    if let Some(trace) = trace {
        record["objectWriteTraceId"] = json!(trace);
    }
    record
}

fn reject_duplicates(keys: &[Option<String>]) -> Result<(), ApiError> {
    let mut seen = BTreeSet::new();
    let duplicates: BTreeSet<&String> = keys.iter().flatten().filter(|k| !seen.insert(*k)).collect();
    if duplicates.is_empty() {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!("Duplicate IDs found in batch input: {duplicates:?}. IDs must be unique")))
    }
}

pub async fn batch_read(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path(object): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let object_type = object_type(&object)?;
    caller.require(&[object_type.read_scope()])?;
    let started = sim.now_ms();
    let batch = batch(&body)?;
    if !batch.history.is_empty() && batch.inputs.len() > HISTORY_BATCH_LIMIT {
        return Err(ApiError::bad_request(format!(
            "The maximum number of inputs supported in a batch request for property histories is {HISTORY_BATCH_LIMIT}"
        )));
    }
    let archived = Params(query).flag("archived");
    let state = sim.lock();
    let hub = &state.portals[&caller.hub_id].hub;
    let mut results = Vec::new();
    let mut seen = BTreeSet::new();
    let mut missing = Vec::new();
    for input in &batch.inputs {
        let Some(key) = text(input.get("id")) else { continue };
        let record = if archived {
            key.parse().ok().and_then(|id| hub.record(object_type, id)).filter(|r| r.is_archived())
        } else {
            hub.find(object_type, batch.id_property.as_deref(), &key)
        };
        match record {
            Some(record) if seen.insert(record.id) => {
                results.push(record.to_json(object_type, selection(&batch.properties), &batch.history));
            }
            Some(_) => {}
            None => missing.push(key),
        }
    }
    if missing.is_empty() {
        return Ok(batch_response(StatusCode::OK, results, Vec::new(), started));
    }
    let error = ApiError::not_found(format!(
        "Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.",
        object_type.upper_singular()
    ))
    .with("context", json!({ "ids": missing }));
    if results.is_empty() {
        // HubSpot answers 404 when none of the inputs exist.
        return Err(error);
    }
    Ok(batch_response(StatusCode::OK, results, vec![error.into_batch_item(json!({ "ids": missing }))], started))
}

pub async fn batch_create(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path(object): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let object_type = object_type(&object)?;
    caller.require(&[object_type.write_scope()])?;
    let started = sim.now_ms();
    let batch = batch(&body)?;
    let traces: Vec<Option<String>> = batch.inputs.iter().map(|i| text(i.get("objectWriteTraceId"))).collect();
    let mut properties = Vec::with_capacity(batch.inputs.len());
    for input in &batch.inputs {
        properties.push(properties_of(input)?);
    }
    let now = sim.now_ms();
    let mut state = sim.lock();
    let hub = &mut state.portals.get_mut(&caller.hub_id).expect("caller's portal").hub;

    // With an objectWriteTraceId on every input, each input stands alone (207 on failures).
    if !traces.is_empty() && traces.iter().all(Option::is_some) {
        let mut results = Vec::new();
        let mut errors = Vec::new();
        for ((properties, trace), input) in properties.iter().zip(&traces).zip(&batch.inputs) {
            let checked = check_write(hub, object_type, properties, None)
                .and_then(|values| Ok((values, associations::on_create(hub, object_type, input)?)));
            match checked {
                Ok((values, links)) => {
                    let id = create_linked(hub, object_type, &values, &links, (source(&caller), now));
                    let record = hub.record(object_type, id).expect("just created");
                    results.push(with_trace(record.to_json(object_type, Selection::All, &[]), trace.as_deref()));
                }
                Err(error) => errors.push(error.into_batch_item(item_context(None, trace.as_deref()))),
            }
        }
        return Ok(batch_response(StatusCode::CREATED, results, errors, started));
    }

    // Without them the batch is all or nothing: the first bad input fails the call.
    let mut checked = Vec::with_capacity(properties.len());
    let mut claimed: BTreeSet<(String, String)> = BTreeSet::new();
    for (properties, input) in properties.iter().zip(&batch.inputs) {
        let values = check_write(hub, object_type, properties, None)?;
        let links = associations::on_create(hub, object_type, input)?;
        for p in hub.properties(object_type).iter().filter(|p| p.has_unique_value) {
            if let Some(value) = values.get(&p.name).filter(|v| !v.is_empty()) {
                if !claimed.insert((p.name.clone(), value.to_lowercase())) {
                    return Err(ApiError::bad_request(format!(
                        "Duplicate value {value} for unique property {} in batch input",
                        p.name
                    )));
                }
            }
        }
        checked.push((values, links));
    }
    let results: Vec<Value> = checked
        .iter()
        .map(|(values, links)| {
            let id = create_linked(hub, object_type, values, links, (source(&caller), now));
            hub.record(object_type, id).expect("just created").to_json(object_type, Selection::All, &[])
        })
        .collect();
    Ok(batch_response(StatusCode::CREATED, results, Vec::new(), started))
}

pub async fn batch_update(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path(object): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let object_type = object_type(&object)?;
    caller.require(&[object_type.write_scope()])?;
    let started = sim.now_ms();
    let batch = batch(&body)?;
    let keys: Vec<Option<String>> = batch.inputs.iter().map(|i| text(i.get("id"))).collect();
    reject_duplicates(&keys)?;
    let now = sim.now_ms();
    let mut state = sim.lock();
    let hub = &mut state.portals.get_mut(&caller.hub_id).expect("caller's portal").hub;
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for (input, key) in batch.inputs.iter().zip(&keys) {
        let trace = text(input.get("objectWriteTraceId"));
        let key = key.clone().unwrap_or_default();
        let id_property = text(input.get("idProperty")).or_else(|| batch.id_property.clone());
        let outcome = (|| {
            let id = hub
                .find(object_type, id_property.as_deref(), &key)
                .map(|r| r.id)
                .ok_or_else(|| record_not_found(&key))?;
            let values = check_write(hub, object_type, &properties_of(input)?, Some(id))?;
            hub.update(object_type, id, &values, source(&caller), now);
            Ok::<_, ApiError>(hub.record(object_type, id).expect("just updated").to_json(
                object_type,
                Selection::All,
                &[],
            ))
        })();
        match outcome {
            Ok(record) => results.push(with_trace(record, trace.as_deref())),
            Err(error) => errors.push(error.into_batch_item(item_context(Some(&key), trace.as_deref()))),
        }
    }
    Ok(batch_response(StatusCode::OK, results, errors, started))
}

pub async fn batch_upsert(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path(object): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let object_type = object_type(&object)?;
    caller.require(&[object_type.write_scope()])?;
    let started = sim.now_ms();
    let batch = batch(&body)?;
    let now = sim.now_ms();
    let omitted = sim.config.email_upsert_omitted;
    let mut state = sim.lock();
    let hub = &mut state.portals.get_mut(&caller.hub_id).expect("caller's portal").hub;

    let id_properties: Vec<String> = batch
        .inputs
        .iter()
        .map(|i| {
            text(i.get("idProperty")).or_else(|| batch.id_property.clone()).unwrap_or_else(|| "hs_object_id".into())
        })
        .collect();
    for name in &id_properties {
        let unique = name == "hs_object_id" || hub.property(object_type, name).is_some_and(|p| p.has_unique_value);
        if !unique {
            return Err(ApiError::bad_request(format!(
                "{name} is not a unique identifier property for {}; upserts need a property with hasUniqueValue",
                object_type.name()
            )));
        }
    }
    let keys: Vec<Option<String>> = batch
        .inputs
        .iter()
        .zip(&id_properties)
        .map(|(i, p)| {
            text(i.get("id"))
                .map(|id| if p == "email" { format!("{p}:{}", id.to_lowercase()) } else { format!("{p}:{id}") })
        })
        .collect();
    reject_duplicates(&keys)?;

    let mut results = Vec::new();
    let mut errors = Vec::new();
    for (input, id_property) in batch.inputs.iter().zip(&id_properties) {
        let trace = text(input.get("objectWriteTraceId"));
        let key = text(input.get("id")).unwrap_or_default();
        let outcome = (|| {
            let mut properties = properties_of(input)?;
            if id_property != "hs_object_id" && !properties.contains_key(id_property) {
                properties.insert(id_property.clone(), json!(key));
            }
            match hub.find(object_type, Some(id_property), &key).map(|r| r.id) {
                Some(id) => {
                    let mut values = check_write(hub, object_type, &properties, Some(id))?;
                    if id_property == "email" && omitted == OmittedOnUpsert::Clear {
                        let record = hub.record(object_type, id).expect("found");
                        for name in record.values.keys() {
                            let writable = hub.property(object_type, name).is_some_and(|p| p.is_writable());
                            if writable && !values.contains_key(name) {
                                values.insert(name.clone(), String::new());
                            }
                        }
                    }
                    hub.update(object_type, id, &values, source(&caller), now);
                    Ok((id, false))
                }
                None if id_property == "hs_object_id" => Err(record_not_found(&key)),
                None => {
                    let values = check_write(hub, object_type, &properties, None)?;
                    Ok((hub.create(object_type, &values, source(&caller), now), true))
                }
            }
        })();
        match outcome {
            Ok((id, new)) => {
                let mut record =
                    hub.record(object_type, id).expect("just written").to_json(object_type, Selection::All, &[]);
                record["new"] = json!(new);
                results.push(with_trace(record, trace.as_deref()));
            }
            Err(error) => errors.push(error.into_batch_item(item_context(Some(&key), trace.as_deref()))),
        }
    }
    Ok(batch_response(StatusCode::OK, results, errors, started))
}

pub async fn batch_archive(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path(object): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let object_type = object_type(&object)?;
    caller.require(&[object_type.write_scope()])?;
    let batch = batch(&body)?;
    let now = sim.now_ms();
    let mut state = sim.lock();
    let hub = &mut state.portals.get_mut(&caller.hub_id).expect("caller's portal").hub;
    for input in &batch.inputs {
        if let Some(id) = text(input.get("id")).and_then(|id| id.parse().ok()) {
            hub.archive(object_type, id, source(&caller), now);
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
