//! HubSpot's webhooks API for an app's settings and subscriptions, as its public specification
//! describes it (`/webhooks/v3/{appId}/settings`, `/webhooks/v3/{appId}/subscriptions`, and
//! the same under `/webhooks/2026-03/` and `/app-webhooks/2026-09/`), authenticated by the
//! developer account's API key in the `hapikey` query parameter:
//! - settings: GET (404 before any), PUT `{targetUrl, throttling: {maxConcurrentRequests}}`,
//!   DELETE (204; subscriptions stay, paused until a target is set again);
//! - subscriptions: GET all `{results}`, POST `{eventType, propertyName?, active?}` (201; a
//!   subscription is paused unless `active: true`), GET/PATCH `{active}`/DELETE (204) one,
//!   POST `batch/update` `{inputs: [{id, active}]}` (200, or 207 with `errors` for unknown ids).
//!
//! Ids are strings in answers and integers in paths and batch inputs, as in the specification.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::errors::ApiError;
use crate::state::{Sim, iso};
use crate::webhooks::{Subscribed, Subscription, Target, parse_subscription};

/// HubSpot refuses an app's 1001st subscription.
const SUBSCRIPTIONS_MAX: usize = 1000;

pub fn routes() -> Router<Sim> {
    let mut router = Router::new();
    for prefix in ["/webhooks/v3", "/webhooks/2026-03", "/app-webhooks/2026-09"] {
        let app = format!("{prefix}/{{appId}}");
        router = router
            .route(&format!("{app}/settings"), get(get_settings).put(put_settings).delete(delete_settings))
            .route(&format!("{app}/subscriptions"), get(list).post(create))
            .route(&format!("{app}/subscriptions/batch/update"), post(batch_update))
            .route(&format!("{app}/subscriptions/{{subscriptionId}}"), get(read).patch(update).delete(remove));
    }
    router
}

#[derive(Deserialize)]
struct DeveloperKey {
    hapikey: Option<String>,
}

/// The app a request manages: the `{appId}` of its path, when the `hapikey` of its query is the
/// app's developer key. Every route takes it first.
struct DeveloperApp {
    app_id: u64,
    client_id: String,
}

impl FromRequestParts<Sim> for DeveloperApp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, sim: &Sim) -> Result<Self, ApiError> {
        let Query(key) = Query::<DeveloperKey>::from_request_parts(parts, sim)
            .await
            .map_err(|_| ApiError::bad_request("the query string is not valid"))?;
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, sim)
            .await
            .map_err(|_| ApiError::not_found("No such app"))?;
        let app_id: u64 = params
            .get("appId")
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| ApiError::bad_request("appId must be an integer"))?;
        let Some(key) = key.hapikey.as_deref() else {
            return Err(ApiError::unauthenticated());
        };
        let state = sim.lock();
        match state.apps.iter().find(|(_, app)| app.app_id == app_id) {
            Some((client_id, app)) if app.developer_api_key == key => {
                Ok(DeveloperApp { app_id, client_id: client_id.clone() })
            }
            Some(_) => Err(invalid_key()),
            None if state.apps.values().any(|app| app.developer_api_key == key) => {
                Err(ApiError::not_found(format!("App {app_id} does not exist or belongs to another developer account")))
            }
            None => Err(invalid_key()),
        }
    }
}

/// The `{subscriptionId}` of the path.
fn subscription_id(parts: &HashMap<String, String>) -> Result<u64, ApiError> {
    parts
        .get("subscriptionId")
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| ApiError::bad_request("subscriptionId must be an integer"))
}

fn invalid_key() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "INVALID_AUTHENTICATION",
        "The API key provided is invalid. View or manage your API key here: https://app.hubspot.com/l/api-key/",
    )
}

fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("Invalid input JSON: {e}")))
}

fn settings_json(target: &Target) -> Value {
    json!({
        "targetUrl": target.url,
        "throttling": { "maxConcurrentRequests": target.max_concurrent_requests, "period": "SECONDLY" },
        "createdAt": iso(target.created_at),
        "updatedAt": iso(target.updated_at),
    })
}

fn subscription_json(s: &Subscribed) -> Value {
    let mut json = json!({
        "id": s.id.to_string(),
        "eventType": s.subscription_type(),
        "active": s.active,
        "createdAt": iso(s.created_at),
        "updatedAt": iso(s.updated_at),
    });
    if let Some(property) = &s.property_name {
        json["propertyName"] = json!(property);
    }
    json
}

async fn get_settings(State(sim): State<Sim>, app: DeveloperApp) -> Result<Response, ApiError> {
    let client_id = app.client_id;
    let state = sim.lock();
    match state.webhooks.targets.get(&client_id).filter(|t| t.url.is_some()) {
        Some(target) => Ok(axum::Json(settings_json(target)).into_response()),
        None => Err(ApiError::not_found(format!("No webhook settings for app {}", app.app_id))),
    }
}

async fn put_settings(State(sim): State<Sim>, app: DeveloperApp, body: Bytes) -> Result<Response, ApiError> {
    let client_id = app.client_id;
    let body = parse_body(&body)?;
    let url = body.get("targetUrl").and_then(Value::as_str).unwrap_or_default();
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(ApiError::bad_request(format!("targetUrl `{url}` is not a valid URL")));
    }
    let concurrent = body.pointer("/throttling/maxConcurrentRequests").and_then(Value::as_u64);
    let Some(concurrent) = concurrent.filter(|c| *c >= 5) else {
        return Err(ApiError::bad_request("throttling.maxConcurrentRequests must be at least 5"));
    };
    let now = sim.now_ms();
    let mut state = sim.lock();
    let target = state.webhooks.targets.entry(client_id).or_default();
    if target.url.is_none() {
        target.created_at = now;
    }
    target.url = Some(url.to_string());
    target.max_concurrent_requests = u32::try_from(concurrent).unwrap_or(u32::MAX);
    target.updated_at = now;
    Ok(axum::Json(settings_json(target)).into_response())
}

async fn delete_settings(State(sim): State<Sim>, app: DeveloperApp) -> Result<Response, ApiError> {
    let client_id = app.client_id;
    if let Some(target) = sim.lock().webhooks.targets.get_mut(&client_id) {
        target.url = None;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list(State(sim): State<Sim>, app: DeveloperApp) -> Result<Response, ApiError> {
    let client_id = app.client_id;
    let state = sim.lock();
    let results: Vec<Value> = state
        .webhooks
        .targets
        .get(&client_id)
        .map(|t| t.subscriptions.iter().map(subscription_json).collect())
        .unwrap_or_default();
    Ok(axum::Json(json!({ "results": results })).into_response())
}

async fn create(State(sim): State<Sim>, app: DeveloperApp, body: Bytes) -> Result<Response, ApiError> {
    let client_id = app.client_id;
    let body = parse_body(&body)?;
    let Some(event_type) = body.get("eventType").and_then(Value::as_str) else {
        return Err(ApiError::bad_request("eventType is required"));
    };
    let property_name = body.get("propertyName").and_then(Value::as_str).map(str::to_string);
    let active = body.get("active").and_then(Value::as_bool).unwrap_or(false);
    let wanted = Subscription { subscription_type: event_type.to_string(), property_name };
    let (object_type, kind, property_name) = parse_subscription(&wanted).map_err(ApiError::bad_request)?;
    let now = sim.now_ms();
    let mut state = sim.lock();
    let webhooks = &mut state.webhooks;
    let count = webhooks.targets.get(&client_id).map_or(0, |t| t.subscriptions.len());
    if count >= SUBSCRIPTIONS_MAX {
        return Err(ApiError::bad_request(format!(
            "Couldn't create another subscription. You've reached the maximum number allowed ({SUBSCRIPTIONS_MAX})."
        )));
    }
    let existing = webhooks.targets.get(&client_id).and_then(|t| {
        t.subscriptions
            .iter()
            .find(|s| s.object_type == object_type && s.kind == kind && s.property_name == property_name)
    });
    if let Some(existing) = existing {
        return Err(ApiError::conflict(format!("A subscription for {event_type} already exists (id {})", existing.id)));
    }
    webhooks.next_subscription_id += 1;
    let subscribed = Subscribed {
        id: webhooks.next_subscription_id,
        object_type,
        kind,
        property_name,
        active,
        created_at: now,
        updated_at: now,
    };
    let answer = subscription_json(&subscribed);
    webhooks.targets.entry(client_id).or_default().subscriptions.push(subscribed);
    Ok((StatusCode::CREATED, axum::Json(answer)).into_response())
}

fn not_found(id: u64) -> ApiError {
    ApiError::not_found(format!(
        "Failed to find subscriptions by id `{id}`. Try again using a different subscriptionId."
    ))
}

async fn read(
    State(sim): State<Sim>,
    app: DeveloperApp,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let client_id = app.client_id;
    let id = subscription_id(&params)?;
    let state = sim.lock();
    let found = state.webhooks.targets.get(&client_id).and_then(|t| t.subscriptions.iter().find(|s| s.id == id));
    match found {
        Some(subscription) => Ok(axum::Json(subscription_json(subscription)).into_response()),
        None => Err(not_found(id)),
    }
}

async fn update(
    State(sim): State<Sim>,
    app: DeveloperApp,
    Path(params): Path<HashMap<String, String>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let client_id = app.client_id;
    let id = subscription_id(&params)?;
    let body = parse_body(&body)?;
    let Some(active) = body.get("active").and_then(Value::as_bool) else {
        return Err(ApiError::bad_request("active is required"));
    };
    let now = sim.now_ms();
    let mut state = sim.lock();
    let found =
        state.webhooks.targets.get_mut(&client_id).and_then(|t| t.subscriptions.iter_mut().find(|s| s.id == id));
    let Some(subscription) = found else { return Err(not_found(id)) };
    subscription.active = active;
    subscription.updated_at = now;
    Ok(axum::Json(subscription_json(subscription)).into_response())
}

async fn remove(
    State(sim): State<Sim>,
    app: DeveloperApp,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let client_id = app.client_id;
    let id = subscription_id(&params)?;
    let mut state = sim.lock();
    let Some(target) = state.webhooks.targets.get_mut(&client_id) else { return Err(not_found(id)) };
    let before = target.subscriptions.len();
    target.subscriptions.retain(|s| s.id != id);
    if target.subscriptions.len() == before {
        return Err(not_found(id));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn batch_update(State(sim): State<Sim>, app: DeveloperApp, body: Bytes) -> Result<Response, ApiError> {
    let client_id = app.client_id;
    let body = parse_body(&body)?;
    let Some(inputs) = body.get("inputs").and_then(Value::as_array) else {
        return Err(ApiError::bad_request("inputs is required"));
    };
    let mut changes = Vec::with_capacity(inputs.len());
    for input in inputs {
        match (input.get("id").and_then(Value::as_u64), input.get("active").and_then(Value::as_bool)) {
            (Some(id), Some(active)) => changes.push((id, active)),
            _ => return Err(ApiError::bad_request("each input needs an integer `id` and a boolean `active`")),
        }
    }
    let started = iso(sim.now_ms());
    let now = sim.now_ms();
    let mut state = sim.lock();
    let target = state.webhooks.targets.entry(client_id).or_default();
    let mut results = Vec::new();
    let mut missing = Vec::new();
    for (id, active) in changes {
        match target.subscriptions.iter_mut().find(|s| s.id == id) {
            Some(subscription) => {
                subscription.active = active;
                subscription.updated_at = now;
                results.push(subscription_json(subscription));
            }
            None => missing.push(id.to_string()),
        }
    }
    let mut answer = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": started,
        "completedAt": iso(now),
    });
    if missing.is_empty() {
        return Ok(axum::Json(answer).into_response());
    }
    let message = format!(
        "Failed to find subscriptions by id `{}`. Try again using a different subscriptionId.",
        missing.join("`, `")
    );
    answer["numErrors"] = json!(1);
    answer["errors"] = json!([{
        "status": "error",
        "category": "SUBSCRIPTION_ID_NOT_FOUND",
        "subCategory": "SubscriptionErrors.SUBSCRIPTION_IDS_NOT_FOUND",
        "message": message,
        "context": { "subscriptionIds": missing },
    }]);
    Ok((StatusCode::MULTI_STATUS, axum::Json(answer)).into_response())
}
