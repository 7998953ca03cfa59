//! A webhook receiver on 127.0.0.1: records every POST it gets and answers 200, or what the
//! test scripted for the next requests. Signatures are checked here independently of the
//! simulator's code, the way HubSpot's docs describe them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// How the receiver answers one request.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    Status(u16),
    /// 200 after this long.
    Slow(Duration),
}

/// One POST as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_else(|| panic!("no {name} header"))
    }

    pub fn events(&self) -> Vec<Value> {
        match serde_json::from_slice(&self.body).expect("a JSON body") {
            Value::Array(events) => events,
            other => panic!("webhook bodies are arrays, got {other}"),
        }
    }

    /// Checks the v3 and v1 signatures and the timestamp as a receiver following HubSpot's
    /// docs would: v3 = base64(HMAC-SHA256(secret, method + URI + body + timestamp)),
    /// v1 = hex(SHA-256(secret + body)).
    pub fn assert_signed(&self, url: &str, client_secret: &str) {
        assert_eq!(self.header("content-type"), "application/json");
        let timestamp = self.header("x-hubspot-request-timestamp");
        let sent_at: i64 = timestamp.parse().expect("a ms timestamp");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        assert!(now - sent_at < 300_000, "older than HubSpot's five minutes");

        let mut mac = Hmac::<Sha256>::new_from_slice(client_secret.as_bytes()).unwrap();
        mac.update(b"POST");
        mac.update(url.as_bytes());
        mac.update(&self.body);
        mac.update(timestamp.as_bytes());
        assert_eq!(self.header("x-hubspot-signature-v3"), STANDARD.encode(mac.finalize().into_bytes()));

        let mut hash = Sha256::new();
        hash.update(client_secret.as_bytes());
        hash.update(&self.body);
        let v1: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(self.header("x-hubspot-signature"), v1);
        assert_eq!(self.header("x-hubspot-signature-version"), "v1");
    }
}

#[derive(Default)]
struct Log {
    received: Vec<Received>,
    script: VecDeque<Answer>,
}

type Shared = Arc<Mutex<Log>>;

pub struct Receiver {
    /// The target URL to subscribe with.
    pub url: String,
    log: Shared,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let log = Shared::default();
        let app = Router::new().route("/hubspot/webhooks", post(receive)).with_state(log.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hubspot/webhooks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, log }
    }

    /// Answers for the next requests, in order; 200 after them.
    pub fn answer_next(&self, answers: &[Answer]) {
        self.log.lock().unwrap().script.extend(answers);
    }

    pub fn requests(&self) -> Vec<Received> {
        self.log.lock().unwrap().received.clone()
    }

    /// Every event received, in arrival order (retries included).
    pub fn events(&self) -> Vec<Value> {
        self.requests().iter().flat_map(Received::events).collect()
    }
}

async fn receive(State(log): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let answer = {
        let mut log = log.lock().unwrap();
        log.received.push(Received { headers, body });
        log.script.pop_front()
    };
    match answer {
        None => StatusCode::OK,
        Some(Answer::Status(status)) => StatusCode::from_u16(status).unwrap(),
        Some(Answer::Slow(delay)) => {
            tokio::time::sleep(delay).await;
            StatusCode::OK
        }
    }
}
