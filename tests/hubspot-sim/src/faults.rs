//! Injected failures, applied before normal handling: 429s, 5xx answers, slow answers and
//! connections closed without an answer. Deterministic enough for tests: a rate of 1.0
//! always fires, and `remaining` limits how many times a fault fires.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::errors::ApiError;
use crate::ratelimit::Budget;
use crate::state::Sim;

#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// A 429 with HubSpot's rate-limit body and headers.
    TooManyRequests,
    /// An error answer with this status (500, 502, 503, 504, 423, 477…).
    ServerError(u16),
    /// The answer comes this much later (then normal handling).
    Latency(Duration),
    /// The connection closes without an answer.
    DropConnection,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub kind: FaultKind,
    /// Chance in 0..=1 that a matching request is hit.
    pub rate: f64,
    /// Only requests whose path starts with this (e.g. `/crm`, `/oauth`); all when `None`.
    pub path_prefix: Option<String>,
    /// How many more times it fires; unlimited when `None`.
    pub remaining: Option<u64>,
}

impl Fault {
    /// A fault that hits every request, forever.
    pub fn always(kind: FaultKind) -> Fault {
        Fault { kind, rate: 1.0, path_prefix: None, remaining: None }
    }

    fn matches(&self, path: &str) -> bool {
        self.remaining != Some(0) && self.path_prefix.as_deref().is_none_or(|p| path.starts_with(p))
    }
}

/// Picks the first matching fault that fires, counting it down.
fn fire(sim: &Sim, path: &str) -> Option<FaultKind> {
    use rand::Rng;
    let mut state = sim.lock();
    let state = &mut *state;
    let rng = &mut state.rng;
    let index = state.faults.iter().position(|f| f.matches(path) && (f.rate >= 1.0 || rng.random::<f64>() < f.rate))?;
    let fault = &mut state.faults[index];
    let kind = fault.kind.clone();
    if let Some(remaining) = fault.remaining.as_mut() {
        *remaining -= 1;
        if *remaining == 0 {
            state.faults.remove(index);
        }
    }
    Some(kind)
}

pub async fn inject(State(sim): State<Sim>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    if path.starts_with("/_sim") {
        return next.run(request).await;
    }
    match fire(&sim, &path) {
        None => next.run(request).await,
        Some(FaultKind::Latency(delay)) => {
            tokio::time::sleep(delay).await;
            next.run(request).await
        }
        Some(FaultKind::TooManyRequests) => {
            let mut error = ApiError::rate_limited();
            error.rate_limit = Some(Budget { max: sim.config.rate_limit_per_10s, remaining: 0 });
            error.into_response()
        }
        Some(FaultKind::ServerError(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let message = status.canonical_reason().unwrap_or("internal error");
            ApiError::new(status, "INTERNAL_ERROR", message).into_response()
        }
        Some(FaultKind::DropConnection) => {
            let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
            response.extensions_mut().insert(DroppedConnection);
            response
        }
    }
}

/// Marks a response that must never reach the client: the connection closes instead. Served
/// over TCP, [`hang_up`] does that; an in-process caller turns it into a connection error.
#[derive(Debug, Clone, Copy)]
pub struct DroppedConnection;

/// Closes the connection of a response marked [`DroppedConnection`], without an answer.
pub async fn hang_up(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if response.extensions().get::<DroppedConnection>().is_some() {
        // Unwinding the connection's task drops its socket, so the client sees the connection
        // close with no answer. `resume_unwind` skips the panic hook: no noise.
        std::panic::resume_unwind(Box::new("hubspot-sim: dropped connection"))
    }
    response
}
