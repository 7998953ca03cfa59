//! A stand-in for the platform's ingest endpoint, so a change made "in HubSpot" can be seen
//! arriving: it checks hubsync's signature, logs and keeps what it receives, and applies
//! every record. `GET /local/platform/received` shows what arrived; code in the same process
//! can also watch every delivery as it arrives ([`StandInPlatform::watch`]).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use hubsync::domain::Secret;
use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// What arrived, newest last; at most this many records are kept for `received`.
const KEPT: usize = 1000;

/// One delivery the stand-in platform accepted (signature checked), and when it arrived.
#[derive(Debug, Clone)]
pub struct PlatformArrival {
    pub arrived_at: Instant,
    /// The body hubsync POSTed: `connection_id`, `portal_id` and `records`.
    pub delivery: Value,
}

#[derive(Clone)]
pub struct StandInPlatform {
    signing_secret: Secret,
    received: Arc<Mutex<Vec<Value>>>,
    watchers: Arc<Mutex<Vec<UnboundedSender<PlatformArrival>>>>,
}

impl StandInPlatform {
    pub fn new(signing_secret: Secret) -> Self {
        StandInPlatform { signing_secret, received: Arc::default(), watchers: Arc::default() }
    }

    pub fn routes(&self) -> Router {
        Router::new()
            .route("/local/platform/ingest", post(ingest))
            .route("/local/platform/received", get(received))
            .with_state(self.clone())
    }

    /// Every delivery accepted from now on, unlike `received`, which keeps only the last
    /// [`KEPT`] records.
    pub fn watch(&self) -> UnboundedReceiver<PlatformArrival> {
        let (sender, receiver) = unbounded_channel();
        self.watchers.lock().unwrap_or_else(|e| e.into_inner()).push(sender);
        receiver
    }

    fn tell_watchers(&self, arrival: PlatformArrival) {
        let mut watchers = self.watchers.lock().unwrap_or_else(|e| e.into_inner());
        // A watcher that dropped its receiver is forgotten.
        watchers.retain(|watcher| watcher.send(arrival.clone()).is_ok());
    }
}

async fn ingest(
    State(platform): State<StandInPlatform>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, Json<Value>) {
    let arrived_at = Instant::now();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let signature = header("x-hubsync-signature");
    if !hubsync::inbound::verify(&platform.signing_secret, header("x-hubsync-timestamp"), body.as_bytes(), signature) {
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
    {
        let mut received = platform.received.lock().unwrap_or_else(|e| e.into_inner());
        received.extend(records);
        let excess = received.len().saturating_sub(KEPT);
        received.drain(..excess);
    }
    platform.tell_watchers(PlatformArrival { arrived_at, delivery });
    (StatusCode::OK, Json(json!({ "results": results })))
}

async fn received(State(platform): State<StandInPlatform>) -> Json<Value> {
    let received = platform.received.lock().unwrap_or_else(|e| e.into_inner());
    Json(json!({ "records": *received }))
}
