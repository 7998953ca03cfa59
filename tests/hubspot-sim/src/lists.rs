//! The Lists API (`/crm/v3/lists`, HubSpot's segments): create and read lists, and change and
//! page the memberships of manual and snapshot lists. Dynamic lists keep their members by
//! their filters, so HubSpot refuses to change them by hand; the simulator stores a dynamic
//! list's `filterBranch` but does not evaluate it.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::errors::ApiError;
use crate::objects::parse_json;
use crate::records::Hub;
use crate::state::{ObjectType, Sim, iso};

/// Record ids one membership call may carry. HubSpot documents no cap; a body this large is a
/// client bug, not a workload.
pub const MEMBERSHIP_IDS_LIMIT: usize = 10_000;
/// Memberships per page when the request names no `limit`.
pub const MEMBERSHIP_PAGE_DEFAULT: usize = 100;
/// Larger `limit`s are capped to this.
pub const MEMBERSHIP_PAGE_MAX: usize = 250;

/// The object types lists can hold here, by the type id HubSpot's list bodies use.
const LIST_OBJECT_TYPES: [ObjectType; 3] = [ObjectType::Contacts, ObjectType::Companies, ObjectType::Deals];

/// How a list gets its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Processing {
    /// Only changed by hand (the UI or the memberships API).
    Manual,
    /// Maintained by HubSpot from the list's filters; never changed by hand.
    Dynamic,
    /// Filled from the filters once at creation, then changed by hand like a manual list.
    Snapshot,
}

impl Processing {
    pub fn parse(name: &str) -> Option<Processing> {
        match name {
            "MANUAL" => Some(Processing::Manual),
            "DYNAMIC" => Some(Processing::Dynamic),
            "SNAPSHOT" => Some(Processing::Snapshot),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Processing::Manual => "MANUAL",
            Processing::Dynamic => "DYNAMIC",
            Processing::Snapshot => "SNAPSHOT",
        }
    }
}

/// One list of a portal.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct List {
    pub id: u64,
    pub name: String,
    pub object_type: ObjectType,
    pub processing: Processing,
    pub filter_branch: Option<Value>,
    pub version: u64,
    pub created_at: i64,
    pub updated_at: i64,
    /// Member record ids (the order HubSpot pages memberships in), each with when it joined.
    pub members: BTreeMap<u64, i64>,
}

/// How a list is answered: as just created (a dynamic list is still `PROCESSING` its filters,
/// which the answer shows), or as read later (filters only when asked for, `includeFilters`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    Created,
    Read { include_filters: bool },
}

impl List {
    /// The `PublicObjectList` JSON.
    fn to_json(&self, view: View) -> Value {
        let processing = view == View::Created && self.processing == Processing::Dynamic;
        let mut list = json!({
            "listId": self.id.to_string(),
            "listVersion": self.version,
            "name": self.name,
            "objectTypeId": self.object_type.type_id(),
            "processingStatus": if processing { "PROCESSING" } else { "COMPLETE" },
            "processingType": self.processing.name(),
            "size": self.members.len(),
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
        });
        let show_filters = matches!(view, View::Created | View::Read { include_filters: true });
        if let (Some(branch), true) = (&self.filter_branch, show_filters) {
            list["filterBranch"] = branch.clone();
            list["filtersUpdatedAt"] = json!(iso(self.updated_at));
        }
        list
    }

    /// Refuses hand-made changes to a list HubSpot maintains itself.
    fn check_manual(&self) -> Result<(), ApiError> {
        if self.processing == Processing::Dynamic {
            return Err(ApiError::bad_request(format!(
                "List {} is a DYNAMIC list: its memberships follow its filters and cannot be changed manually. \
                 Only MANUAL and SNAPSHOT lists accept membership changes.",
                self.id
            )));
        }
        Ok(())
    }

    /// Adds the ids that are live records of the list's type and not yet members.
    fn add(&mut self, hub: &Hub, ids: &[String], now: i64, change: &mut Change) {
        for id in ids {
            match id.trim().parse::<u64>().ok().filter(|&r| hub.live(self.object_type, r).is_some()) {
                None => change.missing.push(id.clone()),
                Some(record) => {
                    if let Entry::Vacant(member) = self.members.entry(record) {
                        member.insert(now);
                        change.added.push(id.clone());
                    }
                }
            }
        }
    }

    /// Removes the ids that are members; the others are reported missing.
    fn remove(&mut self, ids: &[String], change: &mut Change) {
        for id in ids {
            match id.trim().parse::<u64>().ok().and_then(|r| self.members.remove(&r)) {
                Some(_) => change.removed.push(id.clone()),
                None => change.missing.push(id.clone()),
            }
        }
    }
}

/// The lists of one portal.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Lists {
    by_id: BTreeMap<u64, List>,
    next_id: u64,
}

impl Lists {
    pub fn get(&self, id: &str) -> Option<&List> {
        self.by_id.get(&id.trim().parse().ok()?)
    }

    fn get_mut(&mut self, id: &str) -> Option<&mut List> {
        self.by_id.get_mut(&id.trim().parse().ok()?)
    }

    /// Creates a list; names are unique within the portal (409 otherwise).
    pub fn create(
        &mut self,
        name: &str,
        object_type: ObjectType,
        processing: Processing,
        filter_branch: Option<Value>,
        now: i64,
    ) -> Result<&List, ApiError> {
        if self.by_id.values().any(|l| l.name == name) {
            return Err(ApiError::conflict(format!("A list named '{name}' already exists.")));
        }
        self.next_id += 1;
        let list = List {
            id: self.next_id,
            name: name.to_string(),
            object_type,
            processing,
            filter_branch,
            version: 1,
            created_at: now,
            updated_at: now,
            members: BTreeMap::new(),
        };
        Ok(self.by_id.entry(list.id).or_insert(list))
    }
}

/// What a membership call did, as `MembershipsUpdateResponse` reports it.
#[derive(Debug, Default)]
struct Change {
    added: Vec<String>,
    removed: Vec<String>,
    missing: Vec<String>,
}

impl Change {
    fn to_json(&self) -> Value {
        // `recordsIdsAdded` (sic) is HubSpot's spelling.
        json!({
            "recordIdsMissing": self.missing,
            "recordIdsRemoved": self.removed,
            "recordsIdsAdded": self.added,
        })
    }
}

fn read_scope() -> [String; 1] {
    ["crm.lists.read".to_string()]
}

fn write_scope() -> [String; 1] {
    ["crm.lists.write".to_string()]
}

fn list_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("List {id} does not exist.")).with("context", json!({ "listId": [id] }))
}

/// The object type of a new list, by type id (`0-1`, `0-2`, `0-3`).
pub fn list_object_type(type_id: &str) -> Result<ObjectType, ApiError> {
    LIST_OBJECT_TYPES.into_iter().find(|t| t.type_id() == type_id).ok_or_else(|| {
        ApiError::bad_request(format!("The objectTypeId {type_id} provided for the list is not valid for this portal."))
            .with("subCategory", json!("ListError.INVALID_OBJECT_TYPE_FOR_LIST"))
    })
}

pub fn processing(name: &str) -> Result<Processing, ApiError> {
    Processing::parse(name).ok_or_else(|| {
        ApiError::bad_request(format!("Invalid processingType '{name}': expected one of MANUAL, DYNAMIC, SNAPSHOT"))
    })
}

fn required_text<'a>(body: &'a Value, name: &str) -> Result<&'a str, ApiError> {
    match body.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
        None | Some(Value::Null) => Err(ApiError::bad_request(format!("Invalid input JSON: `{name}` is required"))
            .with("context", json!({ name: ["required"] }))),
        Some(_) => Err(ApiError::bad_request(format!("Invalid input JSON: `{name}` must be a non-empty string"))),
    }
}

/// A JSON array of record ids (strings, numbers tolerated), within [`MEMBERSHIP_IDS_LIMIT`].
fn record_ids(value: Option<&Value>, what: &str) -> Result<Vec<String>, ApiError> {
    let items = match value {
        Some(Value::Array(items)) => items,
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(_) => {
            return Err(ApiError::bad_request(format!("Invalid input JSON: {what} must be an array of record ids")));
        }
    };
    if items.len() > MEMBERSHIP_IDS_LIMIT {
        return Err(ApiError::bad_request(format!(
            "Too many record ids: {} were provided; at most {MEMBERSHIP_IDS_LIMIT} are accepted per request",
            items.len()
        ))
        .with("context", json!({ "maxInputs": [MEMBERSHIP_IDS_LIMIT.to_string()] })));
    }
    let mut seen = BTreeSet::new();
    let mut ids = Vec::with_capacity(items.len());
    for item in items {
        let id = match item {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => {
                return Err(ApiError::bad_request(format!("Invalid input JSON: {other} is not a record id")));
            }
        };
        // A repeated id is one request for that record.
        if seen.insert(id.clone()) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// The body of `memberships/add` and `memberships/remove`: an array of record ids.
fn body_ids(body: &Bytes) -> Result<Vec<String>, ApiError> {
    match parse_json(body)? {
        ids @ Value::Array(_) => record_ids(Some(&ids), "the body"),
        _ => Err(ApiError::bad_request("Invalid input JSON: the body must be an array of record ids")),
    }
}

pub async fn create(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(&write_scope())?;
    let body = parse_json(&body)?;
    let name = required_text(&body, "name")?.trim().to_string();
    let object_type = list_object_type(required_text(&body, "objectTypeId")?)?;
    let processing = processing(required_text(&body, "processingType")?)?;
    let filter_branch = match body.get("filterBranch") {
        None | Some(Value::Null) => None,
        Some(branch @ Value::Object(_)) => Some(normalise_branch(branch.clone())),
        Some(_) => return Err(ApiError::bad_request("Invalid input JSON: filterBranch must be an object")),
    };
    let mut state = sim.lock();
    let portal = state.portals.get_mut(&caller.hub_id).expect("caller's portal");
    let list = portal.lists.create(&name, object_type, processing, filter_branch, sim.now_ms())?;
    Ok(axum::Json(json!({ "list": list.to_json(View::Created) })).into_response())
}

/// A filter tree as HubSpot stores it (its create examples, request against answer): every
/// branch names its `filterBranchOperator` (its own type for `OR` and `AND`, `AND` for the
/// others, such as `ASSOCIATION`), and every property filter's `operation` says
/// `includeObjectsWithNoValueSet` (false unless sent).
fn normalise_branch(mut branch: Value) -> Value {
    if let Some(object) = branch.as_object_mut() {
        if !object.contains_key("filterBranchOperator") {
            let operator = match object.get("filterBranchType").and_then(Value::as_str) {
                Some(kind @ ("OR" | "AND")) => kind.to_string(),
                _ => "AND".to_string(),
            };
            object.insert("filterBranchOperator".into(), json!(operator));
        }
        for filter in object.get_mut("filters").and_then(Value::as_array_mut).into_iter().flatten() {
            if let Some(operation) = filter.get_mut("operation").and_then(Value::as_object_mut) {
                operation.entry("includeObjectsWithNoValueSet").or_insert(json!(false));
            }
        }
        if let Some(Value::Array(children)) = object.get_mut("filterBranches") {
            let taken = std::mem::take(children);
            *children = taken.into_iter().map(normalise_branch).collect();
        }
    }
    branch
}

pub async fn get(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path(list_id): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    caller.require(&read_scope())?;
    let include_filters = query.iter().any(|(k, v)| k == "includeFilters" && v.eq_ignore_ascii_case("true"));
    let state = sim.lock();
    let list = state.portals[&caller.hub_id].lists.get(&list_id).ok_or_else(|| list_not_found(&list_id))?;
    Ok(axum::Json(json!({ "list": list.to_json(View::Read { include_filters }) })).into_response())
}

/// Applies one membership call to a manual or snapshot list.
fn change(sim: &Sim, caller: &Caller, list_id: &str, add: &[String], remove: &[String]) -> Result<Response, ApiError> {
    let now = sim.now_ms();
    let mut state = sim.lock();
    let portal = state.portals.get_mut(&caller.hub_id).expect("caller's portal");
    let list = portal.lists.get_mut(list_id).ok_or_else(|| list_not_found(list_id))?;
    list.check_manual()?;
    let mut change = Change::default();
    // HubSpot does not say what an id in both lists does; removing first leaves it a member.
    list.remove(remove, &mut change);
    list.add(&portal.hub, add, now, &mut change);
    if !change.added.is_empty() || !change.removed.is_empty() {
        list.updated_at = now;
    }
    Ok(axum::Json(change.to_json()).into_response())
}

pub async fn add(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path(list_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(&write_scope())?;
    let ids = body_ids(&body)?;
    change(&sim, &caller, &list_id, &ids, &[])
}

pub async fn remove(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path(list_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(&write_scope())?;
    let ids = body_ids(&body)?;
    change(&sim, &caller, &list_id, &[], &ids)
}

pub async fn add_and_remove(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path(list_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(&write_scope())?;
    let body = parse_json(&body)?;
    if !body.is_object() {
        return Err(ApiError::bad_request("Invalid input JSON: expected {recordIdsToAdd, recordIdsToRemove}"));
    }
    let add = record_ids(body.get("recordIdsToAdd"), "recordIdsToAdd")?;
    let remove = record_ids(body.get("recordIdsToRemove"), "recordIdsToRemove")?;
    if add.len() + remove.len() > MEMBERSHIP_IDS_LIMIT {
        return Err(ApiError::bad_request(format!(
            "Too many record ids: at most {MEMBERSHIP_IDS_LIMIT} are accepted per request"
        )));
    }
    change(&sim, &caller, &list_id, &add, &remove)
}

/// Memberships in record-id order; `after` is the record id the page starts at.
pub async fn memberships(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path(list_id): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    caller.require(&read_scope())?;
    let param = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let limit = match param("limit") {
        None | Some("") => MEMBERSHIP_PAGE_DEFAULT,
        Some(l) => l.parse::<usize>().map_err(|_| ApiError::bad_request(format!("limit must be a number: {l}")))?,
    }
    .clamp(1, MEMBERSHIP_PAGE_MAX);
    let after = match param("after") {
        None | Some("") => 0,
        Some(a) => a.parse::<u64>().map_err(|_| ApiError::bad_request(format!("Invalid paging cursor: {a}")))?,
    };
    let state = sim.lock();
    let list = state.portals[&caller.hub_id].lists.get(&list_id).ok_or_else(|| list_not_found(&list_id))?;
    let mut page: Vec<(u64, i64)> = list.members.range(after..).take(limit + 1).map(|(&r, &t)| (r, t)).collect();
    let next = (page.len() > limit).then(|| page.pop().map(|(r, _)| r)).flatten();
    let results: Vec<Value> = page
        .iter()
        .map(|(record, joined)| json!({ "recordId": record.to_string(), "membershipTimestamp": iso(*joined) }))
        .collect();
    let mut body = json!({ "results": results, "total": list.members.len() });
    if let Some(next) = next {
        body["paging"] = json!({ "next": { "after": next.to_string() } });
    }
    Ok(axum::Json(body).into_response())
}
