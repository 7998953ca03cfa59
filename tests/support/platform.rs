//! A platform ingest endpoint for tests: checks hubsync's signature, records what it receives
//! and answers `status` for every record (`http_503` answers the whole request with a 503),
//! or `error` for the records whose key it refuses.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hubsync::inbound::verify;
use serde_json::{Value, json};

/// A platform ingest endpoint that checks hubsync's signature, records what it gets and
/// answers `status` for every record.
#[derive(Clone)]
pub struct Platform {
    received: Arc<Mutex<Vec<Value>>>,
    pub status: Arc<Mutex<&'static str>>,
    /// Record keys answered `error` whatever `status` says.
    pub refused: Arc<Mutex<BTreeSet<String>>>,
}

impl Platform {
    pub async fn start(secret: &'static str) -> (Platform, String) {
        let platform =
            Platform { received: Arc::default(), status: Arc::new(Mutex::new("applied")), refused: Arc::default() };
        let state = platform.clone();
        let app = Router::new().route(
            "/ingest",
            post(move |headers: HeaderMap, body: String| {
                let state = state.clone();
                async move {
                    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
                    let secret = hubsync::domain::Secret::new(secret);
                    if !verify(&secret, header("x-hubsync-timestamp"), body.as_bytes(), header("x-hubsync-signature")) {
                        return (StatusCode::UNAUTHORIZED, axum::Json(json!({})));
                    }
                    let delivery: Value = serde_json::from_str(&body).unwrap();
                    let status = *state.status.lock().unwrap();
                    if status == "http_503" {
                        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({})));
                    }
                    let refused = state.refused.lock().unwrap().clone();
                    let results: Vec<Value> = delivery["records"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| {
                            let refused = r["record_key"].as_str().is_some_and(|key| refused.contains(key));
                            let status = if refused { "error" } else { status };
                            json!({ "idempotency_key": r["idempotency_key"], "status": status })
                        })
                        .collect();
                    state.received.lock().unwrap().push(delivery);
                    (StatusCode::OK, axum::Json(json!({ "results": results })))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/ingest", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (platform, url)
    }

    pub fn records(&self) -> Vec<Value> {
        self.received.lock().unwrap().iter().flat_map(|d| d["records"].as_array().unwrap().clone()).collect()
    }
}
