//! The associations API (v4, also under the dated paths): batch reads of a type's
//! associations, one record's associations page by page, and links made and removed one at a
//! time or in batches. Associations are stored per portal in both directions (see
//! `records::Hub`), without labels: a labelled link is kept as a plain one.

use std::collections::BTreeSet;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::errors::ApiError;
use crate::objects::{batch_response, object_type, parse_json, source, text};
use crate::records::Hub;
use crate::state::{ObjectType, Sim};

/// Inputs per associations batch read (HubSpot's v4 limit).
pub const ASSOCIATION_BATCH_LIMIT: usize = 1000;

/// Inputs per association write batch: HubSpot documents no limit for these, so the simulator
/// takes as many as a batch read.
pub const ASSOCIATION_WRITE_LIMIT: usize = 1000;
/// One record's associations per page (`GET …/associations/{toObjectType}`): HubSpot's "Limit
/// 500 per call".
pub const ASSOCIATION_PAGE_MAX: usize = 500;

/// HubSpot's unlabeled (`HUBSPOT_DEFINED`, label `null`) association type id from one type to
/// another, for the pairs the simulator links. 1, 2, 5 and 6 are HubSpot's *primary* company
/// types, which the simulator does not model.
pub fn default_type_id(from: ObjectType, to: ObjectType) -> Option<u32> {
    use ObjectType::{Companies, Contacts, Deals, LineItems};
    match (from, to) {
        (Contacts, Companies) => Some(279),
        (Companies, Contacts) => Some(280),
        (Deals, Contacts) => Some(3),
        (Contacts, Deals) => Some(4),
        (Deals, Companies) => Some(341),
        (Companies, Deals) => Some(342),
        (Deals, LineItems) => Some(19),
        (LineItems, Deals) => Some(20),
        _ => None,
    }
}

/// HubSpot's primary type id from one type to another (contacts' and deals' primary company).
fn primary_type_id(from: ObjectType, to: ObjectType) -> Option<u32> {
    use ObjectType::{Companies, Contacts, Deals};
    match (from, to) {
        (Contacts, Companies) => Some(1),
        (Companies, Contacts) => Some(2),
        (Deals, Companies) => Some(5),
        (Companies, Deals) => Some(6),
        _ => None,
    }
}

/// The type id of a pair the simulator links, or a 400.
pub fn type_id(from: ObjectType, to: ObjectType) -> Result<u32, ApiError> {
    default_type_id(from, to).ok_or_else(|| {
        ApiError::bad_request(format!(
            "hubspot-sim links contacts, companies and deals with each other and deals with line items, not {} with {}",
            from.name(),
            to.name()
        ))
    })
}

/// Whether a request reads or changes links: it needs the from-type's read or write scope.
#[derive(Clone, Copy)]
enum Access {
    Read,
    Write,
}

/// The two object types a links request names, once the caller may use them and the simulator
/// links them, with the pair's unlabeled type id.
fn linkable(
    caller: &Caller,
    (from, to): (&str, &str),
    access: Access,
) -> Result<(ObjectType, ObjectType, u32), ApiError> {
    let (from_type, to_type) = (object_type(from)?, object_type(to)?);
    let scope = match access {
        Access::Read => from_type.read_scope(),
        Access::Write => from_type.write_scope(),
    };
    caller.require(&[scope])?;
    Ok((from_type, to_type, type_id(from_type, to_type)?))
}

/// Checks that two live records of a pair of types the simulator links exist; returns their ids.
pub fn check(
    hub: &Hub,
    from_type: ObjectType,
    from_id: &str,
    to_type: ObjectType,
    to_id: &str,
) -> Result<(u64, u64), ApiError> {
    type_id(from_type, to_type)?;
    let live = |object_type: ObjectType, id: &str| {
        id.parse().ok().filter(|&id| hub.live(object_type, id).is_some()).ok_or_else(|| {
            ApiError::not_found(format!("No {} with id {id} exists", object_type.singular()))
                .with("context", json!({ "objectType": [object_type.singular()], "objectId": [id] }))
        })
    };
    Ok((live(from_type, from_id)?, live(to_type, to_id)?))
}

/// `{"category": "HUBSPOT_DEFINED", "typeId": N, "label": null}`.
fn association_type(type_id: u32) -> Value {
    json!({ "category": "HUBSPOT_DEFINED", "typeId": type_id, "label": null })
}

/// What HubSpot answers, per input, for a record without associations of the asked type.
fn no_associations(from_type: ObjectType, from_id: &str, to_type: ObjectType) -> Value {
    ApiError::not_found(format!("No {} is associated with {} {from_id}.", to_type.singular(), from_type.singular()))
        .with("subCategory", json!("crm.associations.NO_ASSOCIATIONS_FOUND"))
        .into_batch_item(json!({
            "fromObjectId": [from_id],
            "fromObjectType": [from_type.singular()],
            "toObjectType": [to_type.singular()],
        }))
}

/// `POST /crm/v4/associations/{fromObjectType}/{toObjectType}/batch/read`: each input's
/// associated records; inputs without any are errors of a 207.
pub async fn batch_read(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path((from, to)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (from_type, to_type, type_id) = linkable(&caller, (&from, &to), Access::Read)?;
    let started = sim.now_ms();
    let body = parse_json(&body)?;
    let inputs = inputs(&body, ASSOCIATION_BATCH_LIMIT)?;
    let state = sim.lock();
    let hub = &state.portals[&caller.hub_id].hub;
    let mut seen = BTreeSet::new();
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for key in inputs.iter().filter_map(|input| text(input.get("id"))) {
        if !seen.insert(key.clone()) {
            continue;
        }
        let to_ids = key.trim().parse().map(|id| hub.associated(from_type, id, to_type)).unwrap_or_default();
        if to_ids.is_empty() {
            errors.push(no_associations(from_type, &key, to_type));
            continue;
        }
        let to: Vec<Value> = to_ids
            .iter()
            .map(|id| json!({ "toObjectId": id, "associationTypes": [association_type(type_id)] }))
            .collect();
        results.push(json!({ "from": { "id": key }, "to": to }));
    }
    Ok(batch_response(StatusCode::OK, results, errors, started))
}

/// `PUT /crm/v4/objects/{fromObjectType}/{fromObjectId}/associations/default/{toObjectType}/{toObjectId}`:
/// links two records with the default type, answering both directions.
pub async fn create_default(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path((from, from_id, to, to_id)): Path<(String, String, String, String)>,
) -> Result<Response, ApiError> {
    let (from_type, to_type, _) = linkable(&caller, (&from, &to), Access::Write)?;
    let started = sim.now_ms();
    let mut state = sim.lock();
    let hub = &mut state.portals.get_mut(&caller.hub_id).expect("caller's portal").hub;
    let (from_id, to_id) = check(hub, from_type, &from_id, to_type, &to_id)?;
    hub.associate(from_type, from_id, to_type, to_id, source(&caller), sim.now_ms());
    let results = vec![
        default_spec(from_id, to_id, default_type_id(from_type, to_type)),
        default_spec(to_id, from_id, default_type_id(to_type, from_type)),
    ];
    Ok(batch_response(StatusCode::OK, results, Vec::new(), started))
}

/// `DELETE /crm/v4/objects/{fromObjectType}/{fromObjectId}/associations/{toObjectType}/{toObjectId}`:
/// removes every association between the two records; 204 whether there was one or not.
pub async fn remove(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path((from, from_id, to, to_id)): Path<(String, String, String, String)>,
) -> Result<Response, ApiError> {
    let (from_type, to_type, _) = linkable(&caller, (&from, &to), Access::Write)?;
    if let (Ok(from_id), Ok(to_id)) = (from_id.trim().parse(), to_id.trim().parse()) {
        let mut state = sim.lock();
        let hub = &mut state.portals.get_mut(&caller.hub_id).expect("caller's portal").hub;
        hub.dissociate(from_type, from_id, to_type, to_id, source(&caller), sim.now_ms());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Whether the request came by a legacy (`/crm/v4/…`) path: those answer batch creates with 201
/// and batch archives with 204, the dated versions with 200 and a body.
fn legacy(uri: &Uri) -> bool {
    uri.path().contains("/v4/")
}

/// The `inputs` array of a batch body, within `limit`.
fn inputs(body: &Value, limit: usize) -> Result<&Vec<Value>, ApiError> {
    let Some(Value::Array(inputs)) = body.get("inputs") else {
        return Err(ApiError::bad_request("Invalid input JSON: inputs must be an array"));
    };
    if inputs.len() > limit {
        return Err(ApiError::bad_request(format!(
            "Too many inputs: {} were provided. The maximum number of inputs supported in a batch request is {limit}",
            inputs.len()
        )));
    }
    Ok(inputs)
}

/// `{"id": …}` → the id, as text.
fn id_of(value: Option<&Value>) -> Option<String> {
    text(value?.get("id"))
}

/// What a batch answers for one pair it could not link: the pair is named in the context.
fn pair_error(err: ApiError, from_id: &str, to_id: &str) -> Value {
    let context = json!({ "fromObjectId": [from_id], "toObjectId": [to_id] });
    err.into_batch_item(context)
}

/// The `(from, to)` ids of a link input, or a 400 naming what is missing.
fn link_input(input: &Value) -> Result<(String, String), ApiError> {
    match (id_of(input.get("from")), id_of(input.get("to"))) {
        (Some(from), Some(to)) => Ok((from, to)),
        _ => Err(ApiError::bad_request("Invalid input JSON: each input needs `from.id` and `to.id`")),
    }
}

/// The association types a labelled create asks for: each must be this pair's unlabeled or
/// primary `HUBSPOT_DEFINED` type, or a `USER_DEFINED` label (any id: the simulator keeps a
/// labelled link as a plain one).
fn check_types(input: &Value, from_type: ObjectType, to_type: ObjectType) -> Result<Vec<String>, ApiError> {
    let Some(Value::Array(types)) = input.get("types") else {
        return Err(ApiError::bad_request("Invalid input JSON: each input needs `types`, an array"));
    };
    let mut labels = Vec::new();
    for spec in types {
        let category = spec.get("associationCategory").and_then(Value::as_str);
        let type_id = spec.get("associationTypeId").and_then(Value::as_u64);
        let (Some(category), Some(type_id)) = (category, type_id) else {
            return Err(ApiError::bad_request(
                "Invalid input JSON: each type needs `associationCategory` and `associationTypeId`",
            ));
        };
        let known = match category {
            "HUBSPOT_DEFINED" => {
                let primary = primary_type_id(from_type, to_type).map(u64::from) == Some(type_id);
                if primary {
                    labels.push("Primary".to_string());
                }
                primary || default_type_id(from_type, to_type).map(u64::from) == Some(type_id)
            }
            "USER_DEFINED" | "INTEGRATOR_DEFINED" => {
                labels.push(format!("label {type_id}"));
                true
            }
            _ => false,
        };
        if !known {
            return Err(ApiError::bad_request(format!(
                "{category} association type {type_id} is not valid from {} to {}",
                from_type.singular(),
                to_type.singular()
            )));
        }
    }
    Ok(labels)
}

/// The ids of two live records, or the error a batch names the pair with.
fn live_pair(hub: &Hub, from_type: ObjectType, from: &str, to_type: ObjectType, to: &str) -> Result<(u64, u64), Value> {
    check(hub, from_type, from, to_type, to).map_err(|err| pair_error(err, from, to))
}

/// `POST /crm/v4/associations/{fromObjectType}/{toObjectType}/batch/associate/default`: links
/// each pair with the unlabeled type; answers each link in both directions (200, or 207 with
/// the pairs it could not link).
pub async fn batch_associate_default(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path((from, to)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (from_type, to_type, _) = linkable(&caller, (&from, &to), Access::Write)?;
    let started = sim.now_ms();
    let body = parse_json(&body)?;
    let pairs: Vec<(String, String)> =
        inputs(&body, ASSOCIATION_WRITE_LIMIT)?.iter().map(link_input).collect::<Result<_, _>>()?;
    let mut state = sim.lock();
    let hub = &mut state.portals.get_mut(&caller.hub_id).expect("caller's portal").hub;
    let (mut results, mut errors) = (Vec::new(), Vec::new());
    for (from, to) in pairs {
        match live_pair(hub, from_type, &from, to_type, &to) {
            Ok((from_id, to_id)) => {
                hub.associate(from_type, from_id, to_type, to_id, source(&caller), sim.now_ms());
                results.push(default_spec(from_id, to_id, default_type_id(from_type, to_type)));
                results.push(default_spec(to_id, from_id, default_type_id(to_type, from_type)));
            }
            Err(error) => errors.push(error),
        }
    }
    Ok(batch_response(StatusCode::OK, results, errors, started))
}

/// `PublicDefaultAssociation`: one direction of a default link.
fn default_spec(from: u64, to: u64, type_id: Option<u32>) -> Value {
    json!({
        "from": { "id": from.to_string() },
        "to": { "id": to.to_string() },
        "associationSpec": { "associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id },
    })
}

/// `POST /crm/v4/associations/{fromObjectType}/{toObjectType}/batch/create`: links each pair
/// with the types it names (`LabelsBetweenObjectPair` per pair; 201 on v4, 200 on the dated
/// versions, 207 with the pairs it could not link).
pub async fn batch_create(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path((from, to)): Path<(String, String)>,
    uri: Uri,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (from_type, to_type, _) = linkable(&caller, (&from, &to), Access::Write)?;
    let started = sim.now_ms();
    let body = parse_json(&body)?;
    let mut links = Vec::new();
    for input in inputs(&body, ASSOCIATION_WRITE_LIMIT)? {
        let (from, to) = link_input(input)?;
        links.push((from, to, check_types(input, from_type, to_type)?));
    }
    let mut state = sim.lock();
    let hub = &mut state.portals.get_mut(&caller.hub_id).expect("caller's portal").hub;
    let (mut results, mut errors) = (Vec::new(), Vec::new());
    for (from, to, labels) in links {
        match live_pair(hub, from_type, &from, to_type, &to) {
            Ok((from_id, to_id)) => {
                hub.associate(from_type, from_id, to_type, to_id, source(&caller), sim.now_ms());
                results.push(json!({
                    "fromObjectTypeId": from_type.type_id(), "fromObjectId": from_id,
                    "toObjectTypeId": to_type.type_id(), "toObjectId": to_id, "labels": labels,
                }));
            }
            Err(error) => errors.push(error),
        }
    }
    let success = if legacy(&uri) { StatusCode::CREATED } else { StatusCode::OK };
    Ok(batch_response(success, results, errors, started))
}

/// `POST /crm/v4/associations/{fromObjectType}/{toObjectType}/batch/archive`: removes every
/// association between each `from` and its `to` records (`to` is an array). 204 on v4, 200
/// with an empty batch body on the dated versions; pairs that were not linked are no error.
pub async fn batch_archive(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path((from, to)): Path<(String, String)>,
    uri: Uri,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (from_type, to_type, _) = linkable(&caller, (&from, &to), Access::Write)?;
    let started = sim.now_ms();
    let body = parse_json(&body)?;
    let mut pairs = Vec::new();
    for input in inputs(&body, ASSOCIATION_WRITE_LIMIT)? {
        let (Some(from), Some(Value::Array(to))) = (id_of(input.get("from")), input.get("to")) else {
            return Err(ApiError::bad_request("Invalid input JSON: each input needs `from.id` and `to`, an array"));
        };
        for to in to {
            let to =
                id_of(Some(to)).ok_or_else(|| ApiError::bad_request("Invalid input JSON: each `to` needs `id`"))?;
            pairs.push((from.clone(), to));
        }
    }
    let mut state = sim.lock();
    let hub = &mut state.portals.get_mut(&caller.hub_id).expect("caller's portal").hub;
    for (from, to) in pairs {
        if let (Ok(from_id), Ok(to_id)) = (from.trim().parse(), to.trim().parse()) {
            hub.dissociate(from_type, from_id, to_type, to_id, source(&caller), sim.now_ms());
        }
    }
    if legacy(&uri) {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok(batch_response(StatusCode::OK, Vec::new(), Vec::new(), started))
}

/// `GET /crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}?limit&after`: one
/// record's associated records of a type, page by page (`after` is the last id of a page).
pub async fn page(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path((from, from_id, to)): Path<(String, String, String)>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let (from_type, to_type, type_id) = linkable(&caller, (&from, &to), Access::Read)?;
    let param = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let limit = match param("limit") {
        None => ASSOCIATION_PAGE_MAX,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=ASSOCIATION_PAGE_MAX).contains(n))
            .ok_or_else(|| ApiError::bad_request(format!("limit must be between 1 and {ASSOCIATION_PAGE_MAX}")))?,
    };
    let after: u64 = match param("after") {
        None => 0,
        Some(raw) => raw.parse().map_err(|_| ApiError::bad_request(format!("Invalid after: {raw}")))?,
    };
    let state = sim.lock();
    let hub = &state.portals[&caller.hub_id].hub;
    let id: u64 = from_id
        .trim()
        .parse()
        .ok()
        .filter(|&id| hub.live(from_type, id).is_some())
        .ok_or_else(|| ApiError::not_found(format!("No {} with id {from_id} exists", from_type.singular())))?;
    let linked: Vec<u64> = hub.associated(from_type, id, to_type).into_iter().filter(|&to| to > after).collect();
    let results: Vec<Value> = linked
        .iter()
        .take(limit)
        .map(|to| json!({ "toObjectId": to, "associationTypes": [association_type(type_id)] }))
        .collect();
    let mut body = json!({ "results": results });
    if linked.len() > limit {
        let next = linked[limit - 1].to_string();
        body["paging"] = json!({ "next": { "after": next } });
    }
    Ok(axum::Json(body).into_response())
}

/// The links an object create asks for (`associations: [{to: {id}, types: [...]}]`): each
/// type must be a `HUBSPOT_DEFINED` id of a pair the simulator links from `from_type` (the id
/// names the other object), and each `to` record must be live. Returns (type, id) per link.
pub fn on_create(hub: &Hub, from_type: ObjectType, input: &Value) -> Result<Vec<(ObjectType, u64)>, ApiError> {
    let Some(associations) = input.get("associations").filter(|a| !a.is_null()) else { return Ok(Vec::new()) };
    let Value::Array(associations) = associations else {
        return Err(ApiError::bad_request("Invalid input JSON: associations must be an array"));
    };
    let mut links = Vec::new();
    for association in associations {
        let to_id = id_of(association.get("to"))
            .ok_or_else(|| ApiError::bad_request("Invalid input JSON: each association needs `to.id`"))?;
        let Some(Value::Array(types)) = association.get("types") else {
            return Err(ApiError::bad_request("Invalid input JSON: each association needs `types`, an array"));
        };
        for spec in types {
            let category = spec.get("associationCategory").and_then(Value::as_str).unwrap_or_default();
            let type_id = spec.get("associationTypeId").and_then(Value::as_u64).unwrap_or_default();
            let to_type = ObjectType::ALL.into_iter().find(|&to| {
                let ids = [default_type_id(from_type, to), primary_type_id(from_type, to)];
                category == "HUBSPOT_DEFINED" && ids.into_iter().flatten().any(|id| u64::from(id) == type_id)
            });
            let to_type = to_type.ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{category} association type {type_id} is not valid from {}: the simulator takes HubSpot's own \
                     type ids here",
                    from_type.singular()
                ))
            })?;
            let to =
                to_id.trim().parse().ok().filter(|&id| hub.live(to_type, id).is_some()).ok_or_else(|| {
                    ApiError::bad_request(format!("No {} with id {to_id} exists", to_type.singular()))
                })?;
            links.push((to_type, to));
        }
    }
    Ok(links)
}

/// A record's links as get and list answer them with `?associations=companies,deals`: per
/// asked-for type, `{"results": [{"id", "type"}]}` (`contact_to_company_unlabeled` where HubSpot
/// also has a primary type, `deal_to_contact` otherwise). Unknown types are ignored; types
/// without links are left out.
pub fn on_read(hub: &Hub, from_type: ObjectType, from_id: u64, asked: &[String]) -> Option<Value> {
    let mut found = serde_json::Map::new();
    for to_type in asked.iter().filter_map(|name| ObjectType::parse(name)) {
        let linked = hub.associated(from_type, from_id, to_type);
        if linked.is_empty() || default_type_id(from_type, to_type).is_none() {
            continue;
        }
        let mut kind = format!("{}_to_{}", from_type.singular(), to_type.singular());
        if primary_type_id(from_type, to_type).is_some() {
            kind.push_str("_unlabeled");
        }
        let results: Vec<Value> = linked.iter().map(|id| json!({ "id": id.to_string(), "type": kind })).collect();
        found.insert(to_type.name().to_string(), json!({ "results": results }));
    }
    (!found.is_empty()).then_some(Value::Object(found))
}
