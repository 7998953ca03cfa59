//! Test controls: the operations tests use in process (`Simulator`'s methods), and the same
//! operations over HTTP under `/_sim/…` for curl, Node and the local runner.

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Map, Value, json};

use crate::associations;
use crate::errors::ApiError;
use crate::faults::{Fault, FaultKind};
use crate::lists;
use crate::objects::{self, parse_json};
use crate::properties::validate;
use crate::records::{Hub, Source};
use crate::state::{DEFAULT_CLIENT_ID, IssuedTokens, ObjectType, Sim, Tokens};
use crate::webhooks::{Subscription, WebhookAttempt};

/// Records per `POST /_sim/portals/{hubId}/objects/{objectType}/bulk`.
pub const SEED_MANY_LIMIT: usize = 50_000;
/// Bytes per bulk seeding call: room for 50,000 records of a dozen properties.
const SEED_MANY_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// A handle on a simulator's state; cheap to clone.
#[derive(Clone)]
pub struct Simulator {
    pub(crate) sim: Sim,
}

impl Simulator {
    /// Adds an app (or changes a known app's secret). Each new app gets the next app id.
    pub fn add_app(&self, client_id: &str, client_secret: &str) {
        self.sim.lock().add_app(client_id, client_secret);
    }

    /// The numeric app id of an app (`appId` in webhooks, `app_id` in token metadata); the
    /// default app's is 54321.
    pub fn app_id(&self, client_id: &str) -> u64 {
        let state = self.sim.lock();
        let app = state.apps.get(client_id).unwrap_or_else(|| panic!("hubspot-sim: unknown app {client_id}"));
        app.app_id
    }

    /// The developer API key (`hapikey`) that manages an app's webhook settings and
    /// subscriptions through HubSpot's webhooks API (`/webhooks/v3/{appId}/...`).
    pub fn developer_api_key(&self, client_id: &str) -> String {
        let state = self.sim.lock();
        let app = state.apps.get(client_id).unwrap_or_else(|| panic!("hubspot-sim: unknown app {client_id}"));
        app.developer_api_key.clone()
    }

    /// Sets an app's webhook target URL and subscriptions, replacing earlier ones, as in the
    /// app's settings on HubSpot. Events fire on the portals the app has been issued tokens for.
    /// Returns the subscription ids (`subscriptionId` in events), in the order given.
    pub fn subscribe_webhooks(&self, client_id: &str, target_url: &str, subscriptions: &[Subscription]) -> Vec<u64> {
        self.try_subscribe_webhooks(client_id, target_url, subscriptions)
            .unwrap_or_else(|e| panic!("hubspot-sim: subscribe_webhooks: {e}"))
    }

    fn try_subscribe_webhooks(
        &self,
        client_id: &str,
        target_url: &str,
        subscriptions: &[Subscription],
    ) -> Result<Vec<u64>, String> {
        let mut state = self.sim.lock();
        if !state.apps.contains_key(client_id) {
            return Err(format!("unknown app {client_id}: add it with add_app first"));
        }
        let now = self.sim.now_ms();
        state.webhooks.subscribe(client_id, target_url, subscriptions, now)
    }

    /// Every webhook POST so far, in the order they ended.
    pub fn webhook_attempts(&self) -> Vec<WebhookAttempt> {
        self.sim.lock().webhooks.attempts().to_vec()
    }

    /// HubSpot's time now, in epoch milliseconds (what it stamps changes with).
    pub fn now_ms(&self) -> i64 {
        self.sim.now_ms()
    }

    /// No webhook event is queued and no delivery (retries included) is under way.
    pub fn webhooks_idle(&self) -> bool {
        self.sim.lock().webhooks.is_idle()
    }

    /// Waits until no webhook event is queued and no delivery (retries included) is under way;
    /// `false` if that did not happen within `timeout`.
    pub async fn wait_webhooks_idle(&self, timeout: Duration) -> bool {
        let settled = async {
            loop {
                // Registered before looking, so a delivery ending in between still wakes us.
                let notified = self.sim.webhook_settled.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.sim.lock().webhooks.is_idle() {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, settled).await.is_ok()
    }

    /// Adds a portal granting `scopes` on install (or changes a known portal's scopes). It
    /// becomes the portal an authorize request without a portal lands on.
    pub fn add_portal(&self, hub_id: u64, scopes: &[&str]) {
        self.sim.lock().add_portal(hub_id, scopes.iter().map(|s| s.to_string()));
    }

    /// Every access and refresh token handed out so far, in order, revoked ones included.
    pub fn issued_tokens(&self) -> IssuedTokens {
        self.sim.lock().issued_tokens.clone()
    }

    /// Tokens as a completed install would get them, without the OAuth dance. An unknown
    /// portal is added with these scopes.
    pub fn issue_tokens(&self, hub_id: u64, client_id: &str, scopes: &[&str]) -> Tokens {
        self.try_issue_tokens(hub_id, client_id, scopes.iter().map(|s| s.to_string()).collect())
            .unwrap_or_else(|e| panic!("hubspot-sim: {e}"))
    }

    fn try_issue_tokens(&self, hub_id: u64, client_id: &str, scopes: Vec<String>) -> Result<Tokens, String> {
        let mut state = self.sim.lock();
        if !state.apps.contains_key(client_id) {
            return Err(format!("unknown app {client_id}: add it with add_app first"));
        }
        if !state.portals.contains_key(&hub_id) {
            state.add_portal(hub_id, scopes.clone());
        }
        Ok(state.mint_tokens(hub_id, client_id, scopes, self.sim.config.access_token_ttl))
    }

    /// The token's next use answers 401 EXPIRED_AUTHENTICATION.
    pub fn expire_access_token(&self, access_token: &str) {
        if let Some(token) = self.sim.lock().access_tokens.get_mut(access_token) {
            token.expires_at = token.expires_at.min(self.sim.now_ms() - 1);
        }
    }

    /// The portal's users take the app's access away: every refresh token for the portal stops
    /// working and every access token expires, until the app is installed again.
    pub fn revoke_portal_grants(&self, hub_id: u64) {
        let mut state = self.sim.lock();
        state.refresh_tokens.retain(|_, token| token.hub_id != hub_id);
        for token in state.access_tokens.values_mut().filter(|token| token.hub_id == hub_id) {
            token.expires_at = token.expires_at.min(self.sim.now_ms() - 1);
        }
    }

    /// Requests per rolling 10 s for this portal (each app has its own window).
    pub fn set_rate_limit(&self, hub_id: u64, per_10s: u32) {
        let mut state = self.sim.lock();
        if let Some(portal) = state.portals.get_mut(&hub_id) {
            portal.rate_limit = Some(per_10s);
        }
    }

    /// Changes `SimConfig::search_index_delay` on every portal. A write is judged by the delay
    /// in force when it happened and when search looks: seed with no delay and turn it on
    /// afterwards to have a large portal indexed at once; set it back to zero and search sees
    /// every write.
    pub fn set_search_index_delay(&self, delay: Duration) {
        self.sim.lock().set_search_index_delay(delay);
    }

    pub fn inject_fault(&self, fault: Fault) {
        self.sim.lock().faults.push(fault);
    }

    pub fn clear_faults(&self) {
        self.sim.lock().faults.clear();
    }

    /// How many requests reached `method` + `path_pattern`: a route pattern
    /// (`/crm/v3/objects/{objectType}/batch/upsert`) or a concrete path
    /// (`/crm/v3/objects/contacts/batch/upsert`). Faulted and refused requests count.
    pub fn request_count(&self, method: &str, path_pattern: &str) -> u64 {
        let key = (method.to_ascii_uppercase(), path_pattern.to_string());
        self.sim.lock().request_counts.get(&key).copied().unwrap_or_default()
    }

    /// Creates a record as if it had been in the portal already (source `IMPORT`); it may set
    /// read-only properties such as `createdate` or `lastmodifieddate` to stage old data.
    /// Returns the new record's id.
    pub fn seed(&self, hub_id: u64, object_type: &str, properties: Value) -> String {
        self.try_seed(hub_id, object_type, &properties).unwrap_or_else(|e| panic!("hubspot-sim: seed: {e}"))
    }

    fn try_seed(&self, hub_id: u64, object_type: &str, properties: &Value) -> Result<String, ApiError> {
        let object_type = objects::object_type(object_type)?;
        let mut state = self.sim.lock();
        let hub = &mut state.portals.get_mut(&hub_id).ok_or_else(|| unknown_portal(hub_id))?.hub;
        let values = validate(hub.properties(object_type), &as_map(properties)?, true)
            .map_err(|p| ApiError::invalid_properties(&p))?;
        if let Some((name, id)) = hub.unique_conflict(object_type, &values, None) {
            return Err(ApiError::conflict(format!("{name} already belongs to record {id}")));
        }
        Ok(hub.create(object_type, &values, Source::Import, self.sim.now_ms()).to_string())
    }

    /// Seeds many records at once, under one lock: each as [`seed`](Self::seed) would (source
    /// `IMPORT`, the same webhook events), hundreds of thousands in seconds. Read-only
    /// properties may be set, e.g. `lastmodifieddate` (contacts) or `hs_lastmodifieddate` to
    /// stage 20,000 records changed at the same instant. All or nothing: an invalid record, or a
    /// unique value taken (also by another record of the call), seeds none. Returns the new
    /// records' ids, in order.
    pub fn seed_many(&self, hub_id: u64, object_type: &str, records: impl IntoIterator<Item = Value>) -> Vec<String> {
        self.try_seed_many(hub_id, object_type, records).unwrap_or_else(|e| panic!("hubspot-sim: seed_many: {e}"))
    }

    fn try_seed_many(
        &self,
        hub_id: u64,
        object_type: &str,
        records: impl IntoIterator<Item = Value>,
    ) -> Result<Vec<String>, ApiError> {
        let object_type = objects::object_type(object_type)?;
        let mut state = self.sim.lock();
        let hub = &mut state.portals.get_mut(&hub_id).ok_or_else(|| unknown_portal(hub_id))?.hub;
        let unique: Vec<String> = hub
            .properties(object_type)
            .iter()
            .filter(|p| p.has_unique_value && !p.archived)
            .map(|p| p.name.clone())
            .collect();
        let mut taken: HashMap<(usize, String), usize> = HashMap::new();
        let mut all = Vec::new();
        for (n, properties) in records.into_iter().enumerate() {
            let at = |e: ApiError| e.with("context", json!({ "record": [n.to_string()] }));
            let properties = match properties {
                Value::Object(map) => map,
                Value::Null => Map::new(),
                _ => return Err(at(ApiError::bad_request(format!("record {n}: properties must be a JSON object")))),
            };
            let values = validate(hub.properties(object_type), &properties, true)
                .map_err(|p| at(ApiError::invalid_properties(&p)))?;
            if let Some((name, id)) = hub.unique_conflict(object_type, &values, None) {
                return Err(at(ApiError::conflict(format!("record {n}: {name} already belongs to record {id}"))));
            }
            for (i, name) in unique.iter().enumerate() {
                let Some(value) = values.get(name).filter(|v| !v.is_empty()) else { continue };
                if let Some(first) = taken.insert((i, value.clone()), n) {
                    return Err(at(ApiError::conflict(format!("record {n}: {name} {value} is also record {first}'s"))));
                }
            }
            all.push(values);
        }
        let now = self.sim.now_ms();
        Ok(all.into_iter().map(|values| hub.create(object_type, &values, Source::Import, now).to_string()).collect())
    }

    /// Everything stored about a record (archived ones included): properties, timestamps,
    /// `propertiesWithHistory` with each write's source, and `version`.
    pub fn record(&self, hub_id: u64, object_type: &str, id: &str) -> Option<Value> {
        let object_type = ObjectType::parse(object_type)?;
        let state = self.sim.lock();
        let record = state.portals.get(&hub_id)?.hub.record(object_type, id.parse().ok()?)?;
        Some(record.to_full_json(object_type))
    }

    /// Every record of a type, archived ones included, in id order.
    pub fn records(&self, hub_id: u64, object_type: &str) -> Vec<Value> {
        let Some(object_type) = ObjectType::parse(object_type) else { return Vec::new() };
        let state = self.sim.lock();
        let Some(portal) = state.portals.get(&hub_id) else { return Vec::new() };
        portal.hub.records(object_type).map(|r| r.to_full_json(object_type)).collect()
    }

    /// Changes a record as a person would in HubSpot's UI (source `CRM_UI`, the portal's user).
    pub fn edit_as_user(&self, hub_id: u64, object_type: &str, id: &str, properties: Value) {
        self.try_edit_as_user(hub_id, object_type, id, &properties)
            .unwrap_or_else(|e| panic!("hubspot-sim: edit: {e}"));
    }

    fn try_edit_as_user(
        &self,
        hub_id: u64,
        object_type: &str,
        id: &str,
        properties: &Value,
    ) -> Result<Value, ApiError> {
        let object_type = objects::object_type(object_type)?;
        let mut state = self.sim.lock();
        let portal = state.portals.get_mut(&hub_id).ok_or_else(|| unknown_portal(hub_id))?;
        let source = Source::User { user_id: portal.user_id };
        let hub = &mut portal.hub;
        let record_id = id.parse().ok().filter(|&i| hub.live(object_type, i).is_some());
        let record_id = record_id.ok_or_else(|| ApiError::not_found(format!("no live {} {id}", object_type.name())))?;
        let values = validate(hub.properties(object_type), &as_map(properties)?, false)
            .map_err(|p| ApiError::invalid_properties(&p))?;
        if let Some((name, other)) = hub.unique_conflict(object_type, &values, Some(record_id)) {
            return Err(ApiError::conflict(format!("{name} already belongs to record {other}")));
        }
        hub.update(object_type, record_id, &values, source, self.sim.now_ms());
        Ok(hub.record(object_type, record_id).expect("updated").to_full_json(object_type))
    }

    /// Restores an archived record as a person would in HubSpot's recycling bin (a
    /// `{type}.restore` event, source `CRM_UI`). Fails if another record took one of its
    /// unique values meanwhile.
    pub fn restore(&self, hub_id: u64, object_type: &str, id: &str) {
        self.try_restore(hub_id, object_type, id).unwrap_or_else(|e| panic!("hubspot-sim: restore: {e}"));
    }

    fn try_restore(&self, hub_id: u64, object_type: &str, id: &str) -> Result<(), ApiError> {
        let object_type = objects::object_type(object_type)?;
        self.as_user(hub_id, |hub, source| {
            let id = id.parse().map_err(|_| ApiError::bad_request(format!("bad record id {id}")))?;
            hub.restore(object_type, id, source, self.sim.now_ms()).map_err(ApiError::conflict)
        })
    }

    /// Merges `merged_id` into `primary_id` as a person would in HubSpot (source `CRM_UI`): the
    /// primary keeps its id and gains the merged record's values for properties it has none
    /// for, and its associations; the merged record is archived. Fires `{type}.merge`.
    pub fn merge(&self, hub_id: u64, object_type: &str, primary_id: &str, merged_id: &str) {
        self.try_merge(hub_id, object_type, primary_id, merged_id)
            .unwrap_or_else(|e| panic!("hubspot-sim: merge: {e}"));
    }

    fn try_merge(&self, hub_id: u64, object_type: &str, primary_id: &str, merged_id: &str) -> Result<(), ApiError> {
        let object_type = objects::object_type(object_type)?;
        self.as_user(hub_id, |hub, source| {
            let parse = |id: &str| id.parse().map_err(|_| ApiError::bad_request(format!("bad record id {id}")));
            let (primary_id, merged_id) = (parse(primary_id)?, parse(merged_id)?);
            hub.merge(object_type, primary_id, merged_id, source, self.sim.now_ms())
                .map(|_| ())
                .map_err(ApiError::bad_request)
        })
    }

    /// Associates two records with HubSpot's default type, as a person would (source `CRM_UI`);
    /// fires `{type}.associationChange` from both sides.
    pub fn associate(&self, hub_id: u64, from_type: &str, from_id: &str, to_type: &str, to_id: &str) {
        self.try_associate(hub_id, from_type, from_id, to_type, to_id, false)
            .unwrap_or_else(|e| panic!("hubspot-sim: associate: {e}"));
    }

    /// Removes the association between two records, as a person would (source `CRM_UI`).
    pub fn dissociate(&self, hub_id: u64, from_type: &str, from_id: &str, to_type: &str, to_id: &str) {
        self.try_associate(hub_id, from_type, from_id, to_type, to_id, true)
            .unwrap_or_else(|e| panic!("hubspot-sim: dissociate: {e}"));
    }

    fn try_associate(
        &self,
        hub_id: u64,
        from_type: &str,
        from_id: &str,
        to_type: &str,
        to_id: &str,
        remove: bool,
    ) -> Result<(), ApiError> {
        let (from_type, to_type) = (objects::object_type(from_type)?, objects::object_type(to_type)?);
        self.as_user(hub_id, |hub, source| {
            let (from_id, to_id) = associations::check(hub, from_type, from_id, to_type, to_id)?;
            if remove {
                hub.dissociate(from_type, from_id, to_type, to_id, source, self.sim.now_ms());
            } else {
                hub.associate(from_type, from_id, to_type, to_id, source, self.sim.now_ms());
            }
            Ok(())
        })
    }

    /// The ids of the live `to_type` records a record is associated with, in id order.
    pub fn associations(&self, hub_id: u64, from_type: &str, from_id: &str, to_type: &str) -> Vec<String> {
        let (Some(from_type), Some(to_type), Ok(from_id)) =
            (ObjectType::parse(from_type), ObjectType::parse(to_type), from_id.parse())
        else {
            return Vec::new();
        };
        let state = self.sim.lock();
        let Some(portal) = state.portals.get(&hub_id) else { return Vec::new() };
        portal.hub.associated(from_type, from_id, to_type).iter().map(u64::to_string).collect()
    }

    /// Runs `change` on a portal's CRM as its user (source `CRM_UI`).
    fn as_user<T>(
        &self,
        hub_id: u64,
        change: impl FnOnce(&mut Hub, Source) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut state = self.sim.lock();
        let portal = state.portals.get_mut(&hub_id).ok_or_else(|| unknown_portal(hub_id))?;
        let source = Source::User { user_id: portal.user_id };
        change(&mut portal.hub, source)
    }

    /// Creates a list as a person would in HubSpot (no filters). `object_type` is a name or a
    /// type id (`contacts`, `0-1`); `processing_type` is `MANUAL`, `DYNAMIC` or `SNAPSHOT`.
    /// Returns the list id.
    pub fn create_list(&self, hub_id: u64, name: &str, object_type: &str, processing_type: &str) -> String {
        self.try_create_list(hub_id, name, object_type, processing_type)
            .unwrap_or_else(|e| panic!("hubspot-sim: create_list: {e}"))
    }

    fn try_create_list(
        &self,
        hub_id: u64,
        name: &str,
        object_type: &str,
        processing_type: &str,
    ) -> Result<String, ApiError> {
        let object_type = lists::list_object_type(objects::object_type(object_type)?.type_id())?;
        let processing = lists::processing(processing_type)?;
        let mut state = self.sim.lock();
        let portal = state.portals.get_mut(&hub_id).ok_or_else(|| unknown_portal(hub_id))?;
        Ok(portal.lists.create(name, object_type, processing, None, self.sim.now_ms())?.id.to_string())
    }

    /// The record ids in a list, in id order; empty for an unknown list.
    pub fn list_members(&self, hub_id: u64, list_id: &str) -> Vec<String> {
        let state = self.sim.lock();
        let list = state.portals.get(&hub_id).and_then(|p| p.lists.get(list_id));
        list.map(|l| l.members.keys().map(u64::to_string).collect()).unwrap_or_default()
    }

    /// While `true`, the authorize step redirects with `error=access_denied`, as if the
    /// person declined the install.
    pub fn authorize_denies(&self, deny: bool) {
        self.sim.lock().deny_authorize = deny;
    }
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator").finish_non_exhaustive()
    }
}

fn unknown_portal(hub_id: u64) -> ApiError {
    ApiError::not_found(format!("no portal {hub_id}: add it with add_portal"))
}

fn as_map(properties: &Value) -> Result<Map<String, Value>, ApiError> {
    match properties {
        Value::Object(map) => Ok(map.clone()),
        Value::Null => Ok(Map::new()),
        _ => Err(ApiError::bad_request("properties must be a JSON object")),
    }
}

fn field<'a>(body: &'a Value, name: &str) -> Result<&'a Value, ApiError> {
    body.get(name).filter(|v| !v.is_null()).ok_or_else(|| ApiError::bad_request(format!("`{name}` is required")))
}

fn string_list(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// Fault JSON: `{"kind": "too_many_requests" | "server_error" | "latency" | "drop_connection",
/// "status": 503, "latency_ms": 3000, "rate": 1.0, "path_prefix": "/crm", "remaining": 2}`.
fn fault_from_json(body: &Value) -> Result<Fault, ApiError> {
    let kind = match field(body, "kind")?.as_str().unwrap_or_default() {
        "too_many_requests" => FaultKind::TooManyRequests,
        "server_error" => FaultKind::ServerError(body.get("status").and_then(Value::as_u64).unwrap_or(500) as u16),
        "latency" => FaultKind::Latency(Duration::from_millis(field(body, "latency_ms")?.as_u64().unwrap_or(0))),
        "drop_connection" => FaultKind::DropConnection,
        other => return Err(ApiError::bad_request(format!("unknown fault kind {other}"))),
    };
    Ok(Fault {
        kind,
        rate: body.get("rate").and_then(Value::as_f64).unwrap_or(1.0).clamp(0.0, 1.0),
        path_prefix: body.get("path_prefix").and_then(Value::as_str).map(str::to_string),
        remaining: body.get("remaining").and_then(Value::as_u64),
    })
}

fn handle(sim: &Sim) -> Simulator {
    Simulator { sim: sim.clone() }
}

fn ok() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

async fn add_app(State(sim): State<Sim>, body: Bytes) -> Result<Response, ApiError> {
    let body = parse_json(&body)?;
    let id = field(&body, "client_id")?.as_str().unwrap_or_default();
    let secret = field(&body, "client_secret")?.as_str().unwrap_or_default();
    handle(&sim).add_app(id, secret);
    Ok(ok())
}

async fn add_portal(State(sim): State<Sim>, body: Bytes) -> Result<Response, ApiError> {
    let body = parse_json(&body)?;
    let hub_id = field(&body, "hub_id")?.as_u64().ok_or_else(|| ApiError::bad_request("hub_id must be a number"))?;
    let scopes = string_list(body.get("scopes"));
    handle(&sim).add_portal(hub_id, &scopes.iter().map(String::as_str).collect::<Vec<_>>());
    Ok(ok())
}

async fn issue_tokens(State(sim): State<Sim>, body: Bytes) -> Result<Response, ApiError> {
    let body = parse_json(&body)?;
    let hub_id = field(&body, "hub_id")?.as_u64().ok_or_else(|| ApiError::bad_request("hub_id must be a number"))?;
    let client_id = body.get("client_id").and_then(Value::as_str).unwrap_or(DEFAULT_CLIENT_ID);
    let scopes = match body.get("scopes") {
        Some(list) => string_list(Some(list)),
        None => sim.lock().portals.get(&hub_id).map(|p| p.scopes.iter().cloned().collect()).unwrap_or_default(),
    };
    let tokens = handle(&sim).try_issue_tokens(hub_id, client_id, scopes).map_err(ApiError::bad_request)?;
    Ok(axum::Json(tokens).into_response())
}

async fn expire_token(State(sim): State<Sim>, body: Bytes) -> Result<Response, ApiError> {
    let body = parse_json(&body)?;
    handle(&sim).expire_access_token(field(&body, "access_token")?.as_str().unwrap_or_default());
    Ok(ok())
}

async fn set_rate_limit(State(sim): State<Sim>, Path(hub_id): Path<u64>, body: Bytes) -> Result<Response, ApiError> {
    let body = parse_json(&body)?;
    let per_10s = field(&body, "per_10s")?.as_u64().ok_or_else(|| ApiError::bad_request("per_10s must be a number"))?;
    handle(&sim).set_rate_limit(hub_id, per_10s as u32);
    Ok(ok())
}

async fn set_search_index_delay(State(sim): State<Sim>, body: Bytes) -> Result<Response, ApiError> {
    let body = parse_json(&body)?;
    let ms = field(&body, "ms")?.as_u64().ok_or_else(|| ApiError::bad_request("ms must be a number"))?;
    handle(&sim).set_search_index_delay(Duration::from_millis(ms));
    Ok(ok())
}

async fn inject_fault(State(sim): State<Sim>, body: Bytes) -> Result<Response, ApiError> {
    handle(&sim).inject_fault(fault_from_json(&parse_json(&body)?)?);
    Ok(ok())
}

async fn clear_faults(State(sim): State<Sim>) -> Response {
    handle(&sim).clear_faults();
    ok()
}

async fn request_count(State(sim): State<Sim>, Query(query): Query<Vec<(String, String)>>) -> Response {
    let get = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
    let count = handle(&sim).request_count(&get("method"), &get("path"));
    axum::Json(json!({ "count": count })).into_response()
}

async fn seed(
    State(sim): State<Sim>,
    Path((hub_id, object)): Path<(u64, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = parse_json(&body)?;
    let id = handle(&sim).try_seed(hub_id, &object, body.get("properties").unwrap_or(&Value::Null))?;
    Ok((StatusCode::CREATED, axum::Json(json!({ "id": id }))).into_response())
}

/// `{"records": [{properties}…]}` → 201 `{"ids": […]}`.
async fn seed_many(
    State(sim): State<Sim>,
    Path((hub_id, object)): Path<(u64, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = parse_json(&body)?;
    let Some(Value::Array(records)) = body.get("records").cloned() else {
        return Err(ApiError::bad_request("`records` must be an array of property objects"));
    };
    if records.len() > SEED_MANY_LIMIT {
        return Err(ApiError::bad_request(format!(
            "At most {SEED_MANY_LIMIT} records per call, not {}: split them",
            records.len()
        )));
    }
    let ids = handle(&sim).try_seed_many(hub_id, &object, records)?;
    Ok((StatusCode::CREATED, axum::Json(json!({ "ids": ids }))).into_response())
}

async fn records(State(sim): State<Sim>, Path((hub_id, object)): Path<(u64, String)>) -> Response {
    axum::Json(json!({ "results": handle(&sim).records(hub_id, &object) })).into_response()
}

async fn record(
    State(sim): State<Sim>,
    Path((hub_id, object, id)): Path<(u64, String, String)>,
) -> Result<Response, ApiError> {
    let record =
        handle(&sim).record(hub_id, &object, &id).ok_or_else(|| ApiError::not_found(format!("no record {id}")))?;
    Ok(axum::Json(record).into_response())
}

async fn edit_as_user(
    State(sim): State<Sim>,
    Path((hub_id, object, id)): Path<(u64, String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = parse_json(&body)?;
    let record = handle(&sim).try_edit_as_user(hub_id, &object, &id, body.get("properties").unwrap_or(&Value::Null))?;
    Ok(axum::Json(record).into_response())
}

async fn create_list(State(sim): State<Sim>, Path(hub_id): Path<u64>, body: Bytes) -> Result<Response, ApiError> {
    let body = parse_json(&body)?;
    let text = |name: &str| -> Result<String, ApiError> {
        field(&body, name)?
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ApiError::bad_request(format!("{name} must be a string")))
    };
    let id = handle(&sim).try_create_list(hub_id, &text("name")?, &text("object_type")?, &text("processing_type")?)?;
    Ok((StatusCode::CREATED, axum::Json(json!({ "listId": id }))).into_response())
}

async fn list_members(
    State(sim): State<Sim>,
    Path((hub_id, list_id)): Path<(u64, String)>,
) -> Result<Response, ApiError> {
    let known = sim.lock().portals.get(&hub_id).is_some_and(|p| p.lists.get(&list_id).is_some());
    if !known {
        return Err(ApiError::not_found(format!("no list {list_id} in portal {hub_id}")));
    }
    Ok(axum::Json(json!({ "results": handle(&sim).list_members(hub_id, &list_id) })).into_response())
}

async fn subscribe_webhooks(State(sim): State<Sim>, body: Bytes) -> Result<Response, ApiError> {
    let body = parse_json(&body)?;
    let client_id = field(&body, "client_id")?.as_str().unwrap_or_default();
    let target_url = field(&body, "target_url")?.as_str().unwrap_or_default();
    let subscriptions: Vec<Subscription> =
        serde_json::from_value(body.get("subscriptions").cloned().unwrap_or_else(|| json!([])))
            .map_err(|e| ApiError::bad_request(format!("subscriptions: {e}")))?;
    let ids =
        handle(&sim).try_subscribe_webhooks(client_id, target_url, &subscriptions).map_err(ApiError::bad_request)?;
    let app_id = sim.lock().app_id(client_id);
    let listed: Vec<Value> = subscriptions
        .iter()
        .zip(ids)
        .map(|(s, id)| json!({ "id": id, "subscriptionType": s.subscription_type, "propertyName": s.property_name }))
        .collect();
    Ok(axum::Json(json!({ "appId": app_id, "targetUrl": target_url, "subscriptions": listed })).into_response())
}

async fn webhook_attempts(State(sim): State<Sim>) -> Response {
    axum::Json(json!({ "results": handle(&sim).webhook_attempts() })).into_response()
}

async fn associate(State(sim): State<Sim>, Path(hub_id): Path<u64>, body: Bytes) -> Result<Response, ApiError> {
    let body = parse_json(&body)?;
    let text = |name: &str| -> Result<String, ApiError> {
        objects::text(Some(field(&body, name)?))
            .ok_or_else(|| ApiError::bad_request(format!("{name} must be a string")))
    };
    let remove = body.get("remove").and_then(Value::as_bool).unwrap_or(false);
    handle(&sim).try_associate(
        hub_id,
        &text("from_type")?,
        &text("from_id")?,
        &text("to_type")?,
        &text("to_id")?,
        remove,
    )?;
    Ok(ok())
}

async fn restore(
    State(sim): State<Sim>,
    Path((hub_id, object, id)): Path<(u64, String, String)>,
) -> Result<Response, ApiError> {
    handle(&sim).try_restore(hub_id, &object, &id)?;
    Ok(ok())
}

async fn merge(
    State(sim): State<Sim>,
    Path((hub_id, object, id)): Path<(u64, String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = parse_json(&body)?;
    let merged = objects::text(Some(field(&body, "merged_id")?))
        .ok_or_else(|| ApiError::bad_request("merged_id must be a record id"))?;
    handle(&sim).try_merge(hub_id, &object, &id, &merged)?;
    Ok(ok())
}

async fn authorize_denies(State(sim): State<Sim>, body: Bytes) -> Result<Response, ApiError> {
    let body = parse_json(&body)?;
    handle(&sim).authorize_denies(field(&body, "deny")?.as_bool().unwrap_or(false));
    Ok(ok())
}

pub fn routes() -> Router<Sim> {
    Router::new()
        .route("/_sim/apps", post(add_app))
        .route("/_sim/portals", post(add_portal))
        .route("/_sim/portals/{hubId}/rate-limit", put(set_rate_limit))
        .route("/_sim/portals/{hubId}/objects/{objectType}", get(records).post(seed))
        .route(
            "/_sim/portals/{hubId}/objects/{objectType}/bulk",
            post(seed_many).layer(DefaultBodyLimit::max(SEED_MANY_BODY_LIMIT)),
        )
        .route("/_sim/portals/{hubId}/objects/{objectType}/{objectId}", get(record).patch(edit_as_user))
        .route("/_sim/portals/{hubId}/objects/{objectType}/{objectId}/restore", post(restore))
        .route("/_sim/portals/{hubId}/objects/{objectType}/{objectId}/merge", post(merge))
        .route("/_sim/portals/{hubId}/associations", put(associate))
        .route("/_sim/portals/{hubId}/lists", post(create_list))
        .route("/_sim/portals/{hubId}/lists/{listId}/members", get(list_members))
        .route("/_sim/tokens", post(issue_tokens))
        .route("/_sim/tokens/expire", post(expire_token))
        .route("/_sim/search-index-delay", put(set_search_index_delay))
        .route("/_sim/faults", post(inject_fault).delete(clear_faults))
        .route("/_sim/requests", get(request_count))
        .route("/_sim/authorize-denies", put(authorize_denies))
        .route("/_sim/webhooks", put(subscribe_webhooks))
        .route("/_sim/webhooks/attempts", get(webhook_attempts))
}
