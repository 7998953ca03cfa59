//! HubSpot's burst limits. Most CRM calls share a rolling 10-second window per portal and app
//! (110 requests for a public app), announced on every answer in `X-HubSpot-RateLimit-*`
//! headers. Search is exempt from it and has its own: 5 requests per second per portal,
//! without headers.

use std::time::Duration;

use tokio::time::Instant;

use axum::http::{HeaderMap, HeaderValue};

use crate::state::State;

pub const WINDOW: Duration = Duration::from_secs(10);
pub const SEARCH_WINDOW: Duration = Duration::from_secs(1);
pub const SEARCH_PER_SECOND: u32 = 5;

/// The limit and what is left of it after this request.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub max: u32,
    pub remaining: u32,
}

impl Budget {
    pub fn headers(self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-hubspot-ratelimit-max", HeaderValue::from(self.max));
        headers.insert("x-hubspot-ratelimit-remaining", HeaderValue::from(self.remaining));
        headers.insert("x-hubspot-ratelimit-interval-milliseconds", HeaderValue::from(WINDOW.as_millis() as u64));
        headers
    }
}

/// Counts a request against the portal and app's 10-second window; `Err` when it is full
/// (the refused request does not count).
pub fn take(state: &mut State, hub_id: u64, client_id: &str, default_max: u32) -> Result<Budget, Budget> {
    let max = state.portals.get(&hub_id).and_then(|p| p.rate_limit).unwrap_or(default_max);
    count(state, (hub_id, client_id.to_string()), max, WINDOW)
}

/// Counts a search request against the portal's per-second search limit
/// (`SimConfig::search_rate_limit_per_second`, HubSpot's [`SEARCH_PER_SECOND`] by default).
pub fn take_search(state: &mut State, hub_id: u64, per_second: u32) -> Result<Budget, Budget> {
    // Apps cannot be named "search" in client ids HubSpot issues (they are UUIDs), so the key
    // cannot collide with an app's window.
    count(state, (hub_id, "search".to_string()), per_second, SEARCH_WINDOW)
}

fn count(state: &mut State, key: (u64, String), max: u32, span: Duration) -> Result<Budget, Budget> {
    let now = Instant::now();
    let window = state.windows.entry(key).or_default();
    while window.front().is_some_and(|&t| now.duration_since(t) >= span) {
        window.pop_front();
    }
    if window.len() as u32 >= max {
        return Err(Budget { max, remaining: 0 });
    }
    window.push_back(now);
    Ok(Budget { max, remaining: max - window.len() as u32 })
}
