//! A Lambda Runtime API emulator: what Lambda serves a function's process at
//! `AWS_LAMBDA_RUNTIME_API`, so a release binary can be started here as Lambda starts it.
//!
//! A function process initialises, then long-polls `GET /2018-06-01/runtime/invocation/next`
//! for an event, and answers it with `POST …/invocation/{id}/response` or `…/error`; a failed
//! initialisation is reported to `POST /2018-06-01/runtime/init/error`. Its first `next` marks
//! the end of its cold start.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

const ACCEPTED: StatusCode = StatusCode::ACCEPTED;
/// An invocation's deadline, as the function's `Timeout` would set it.
const INVOCATION_TIMEOUT: Duration = Duration::from_secs(60);
const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:hubsync";

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The function's response body.
    Response(String),
    /// The error the function reported (`errorType`, `errorMessage`).
    Error(Value),
}

#[derive(Default)]
struct Invocations {
    waiting: VecDeque<(String, String)>,
    outcomes: HashMap<String, Outcome>,
    init_error: Option<Value>,
}

struct Runtime {
    /// When the function first asked for an invocation: its initialisation was over.
    ready: watch::Sender<Option<Instant>>,
    invocations: Mutex<Invocations>,
    /// Wakes a waiting `next` (an invocation was queued) and waiting `outcome`s (one ended).
    changed: Notify,
}

impl Runtime {
    fn invocations(&self) -> MutexGuard<'_, Invocations> {
        self.invocations.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running emulator for one function process.
pub struct RuntimeApi {
    address: SocketAddr,
    runtime: Arc<Runtime>,
    server: JoinHandle<()>,
}

impl RuntimeApi {
    /// Serves the Runtime API on a free port of 127.0.0.1.
    pub async fn start() -> RuntimeApi {
        let runtime =
            Arc::new(Runtime { ready: watch::channel(None).0, invocations: Mutex::default(), changed: Notify::new() });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(runtime.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let address = listener.local_addr().expect("a bound address");
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("the runtime API serves");
        });
        RuntimeApi { address, runtime, server }
    }

    /// The value of `AWS_LAMBDA_RUNTIME_API`: host and port, no scheme.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// When the function first asked for an invocation; `None` if it did not within `timeout`.
    pub async fn ready(&self, timeout: Duration) -> Option<Instant> {
        let mut ready = self.runtime.ready.subscribe();
        let first = tokio::time::timeout(timeout, ready.wait_for(Option::is_some)).await.ok()?.ok()?;
        *first
    }

    /// Queues an invocation with `event` as its payload; returns its request id.
    pub fn invoke(&self, event: &Value) -> String {
        let request_id = uuid::Uuid::new_v4().to_string();
        self.runtime.invocations().waiting.push_back((request_id.clone(), event.to_string()));
        self.runtime.changed.notify_waiters();
        request_id
    }

    /// How the invocation ended; `None` if it did not within `timeout`.
    pub async fn outcome(&self, request_id: &str, timeout: Duration) -> Option<Outcome> {
        let wait = async {
            loop {
                let changed = self.runtime.changed.notified();
                if let Some(outcome) = self.runtime.invocations().outcomes.get(request_id) {
                    return outcome.clone();
                }
                changed.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.ok()
    }

    /// What the function reported if its initialisation failed.
    pub fn init_error(&self) -> Option<Value> {
        self.runtime.invocations().init_error.clone()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Long-polls for the next invocation, as Lambda holds the request until there is one.
async fn next(State(runtime): State<Arc<Runtime>>) -> Response {
    runtime.ready.send_if_modified(|ready| {
        let first = ready.is_none();
        if first {
            *ready = Some(Instant::now());
        }
        first
    });
    let (request_id, event) = loop {
        let changed = runtime.changed.notified();
        if let Some(invocation) = runtime.invocations().waiting.pop_front() {
            break invocation;
        }
        changed.await;
    };
    let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() + INVOCATION_TIMEOUT;
    let mut headers = HeaderMap::new();
    let mut header = |name: &'static str, value: String| {
        headers.insert(name, HeaderValue::from_str(&value).expect("a header value"));
    };
    header("lambda-runtime-aws-request-id", request_id);
    header("lambda-runtime-deadline-ms", deadline.as_millis().to_string());
    header("lambda-runtime-invoked-function-arn", FUNCTION_ARN.to_string());
    header("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000;Sampled=0".to_string());
    header("content-type", "application/json".to_string());
    (headers, event).into_response()
}

async fn response(State(runtime): State<Arc<Runtime>>, Path(id): Path<String>, body: String) -> StatusCode {
    runtime.invocations().outcomes.insert(id, Outcome::Response(body));
    runtime.changed.notify_waiters();
    ACCEPTED
}

async fn error(State(runtime): State<Arc<Runtime>>, Path(id): Path<String>, body: String) -> StatusCode {
    let error = serde_json::from_str(&body).unwrap_or(Value::String(body));
    runtime.invocations().outcomes.insert(id, Outcome::Error(error));
    runtime.changed.notify_waiters();
    ACCEPTED
}

async fn init_error(State(runtime): State<Arc<Runtime>>, body: String) -> StatusCode {
    runtime.invocations().init_error = Some(serde_json::from_str(&body).unwrap_or(Value::String(body)));
    ACCEPTED
}
