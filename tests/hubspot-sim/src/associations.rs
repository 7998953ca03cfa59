//! The associations API (v4, also under the 2026-03 paths): batch reads of a type's
//! associations, and creating or removing the default association between two records.
//! Associations are stored per portal in both directions (see `records::Hub`).

use std::collections::BTreeSet;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::errors::ApiError;
use crate::objects::{batch_response, object_type, parse_json, source, text};
use crate::records::Hub;
use crate::state::{ObjectType, Sim};

/// Inputs per associations batch read (HubSpot's v4 limit).
pub const ASSOCIATION_BATCH_LIMIT: usize = 1000;

/// HubSpot's default (`HUBSPOT_DEFINED`) association type id from one type to another, for the
/// pairs the simulator links.
pub fn default_type_id(from: ObjectType, to: ObjectType) -> Option<u32> {
    use ObjectType::{Companies, Contacts, Deals, LineItems};
    match (from, to) {
        (Contacts, Companies) => Some(1),
        (Companies, Contacts) => Some(2),
        (Deals, Contacts) => Some(3),
        (Contacts, Deals) => Some(4),
        (Deals, Companies) => Some(5),
        (Companies, Deals) => Some(6),
        (Deals, LineItems) => Some(19),
        (LineItems, Deals) => Some(20),
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
    let (from_type, to_type) = (object_type(&from)?, object_type(&to)?);
    caller.require(&[from_type.read_scope()])?;
    let type_id = type_id(from_type, to_type)?;
    let started = sim.now_ms();
    let body = parse_json(&body)?;
    let Some(Value::Array(inputs)) = body.get("inputs") else {
        return Err(ApiError::bad_request("Invalid input JSON: inputs must be an array"));
    };
    if inputs.len() > ASSOCIATION_BATCH_LIMIT {
        return Err(ApiError::bad_request(format!(
            "Too many inputs: {} were provided. The maximum number of inputs supported in a batch request is {ASSOCIATION_BATCH_LIMIT}",
            inputs.len()
        )));
    }
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
    let (from_type, to_type) = (object_type(&from)?, object_type(&to)?);
    caller.require(&[from_type.write_scope()])?;
    let started = sim.now_ms();
    let mut state = sim.lock();
    let hub = &mut state.portals.get_mut(&caller.hub_id).expect("caller's portal").hub;
    let (from_id, to_id) = check(hub, from_type, &from_id, to_type, &to_id)?;
    hub.associate(from_type, from_id, to_type, to_id, source(&caller), sim.now_ms());
    let spec = |from: u64, to: u64, type_id: Option<u32>| {
        json!({
            "from": { "id": from.to_string() },
            "to": { "id": to.to_string() },
            "associationSpec": { "associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id },
        })
    };
    let results = vec![
        spec(from_id, to_id, default_type_id(from_type, to_type)),
        spec(to_id, from_id, default_type_id(to_type, from_type)),
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
    let (from_type, to_type) = (object_type(&from)?, object_type(&to)?);
    caller.require(&[from_type.write_scope()])?;
    type_id(from_type, to_type)?;
    if let (Ok(from_id), Ok(to_id)) = (from_id.trim().parse(), to_id.trim().parse()) {
        let mut state = sim.lock();
        let hub = &mut state.portals.get_mut(&caller.hub_id).expect("caller's portal").hub;
        hub.dissociate(from_type, from_id, to_type, to_id, source(&caller), sim.now_ms());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
