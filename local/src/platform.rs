//! A stand-in for the platform's ingest endpoint, so a change made "in HubSpot" can be seen
//! arriving: it checks hubsync's signature, logs and keeps what it receives, and applies
//! every record. `GET /local/platform/received` shows what arrived.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use hubsync::domain::Secret;
use serde_json::{Value, json};

/// What arrived, newest last; at most this many deliveries are kept.
const KEPT: usize = 1000;

#[derive(Clone)]
struct Platform {
    signing_secret: Secret,
    received: Arc<Mutex<Vec<Value>>>,
}

pub fn routes(signing_secret: Secret) -> Router {
    let platform = Platform { signing_secret, received: Arc::default() };
    Router::new()
        .route("/local/platform/ingest", post(ingest))
        .route("/local/platform/received", get(received))
        .with_state(platform)
}

async fn ingest(State(platform): State<Platform>, headers: HeaderMap, body: String) -> (StatusCode, Json<Value>) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let expected = format!(
        "v1={}",
        hubsync::inbound::sign(&platform.signing_secret, header("x-hubsync-timestamp"), body.as_bytes())
    );
    if header("x-hubsync-signature") != expected {
        return (StatusCode::UNAUTHORIZED, Json(json!({ "error": "bad signature" })));
    }
    let Ok(delivery) = serde_json::from_str::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, Json(json!({ "error": "not JSON" })));
    };
    let records = delivery["records"].as_array().cloned().unwrap_or_default();
    for record in &records {
        tracing::info!(event = %record["event"], key = %record["record_key"], fields = %record["fields"], "platform received");
    }
    let results: Vec<Value> =
        records.iter().map(|r| json!({ "idempotency_key": r["idempotency_key"], "status": "applied" })).collect();
    let mut received = platform.received.lock().unwrap_or_else(|e| e.into_inner());
    received.extend(records);
    let excess = received.len().saturating_sub(KEPT);
    received.drain(..excess);
    (StatusCode::OK, Json(json!({ "results": results })))
}

async fn received(State(platform): State<Platform>) -> Json<Value> {
    let received = platform.received.lock().unwrap_or_else(|e| e.into_inner());
    Json(json!({ "records": *received }))
}
