//! One HubSpot request budget per portal, shared by every concurrent worker.
//!
//! HubSpot counts a portal's requests in a rolling window (110 per 10 s for public apps). Rather
//! than discovering the limit through 429s, each call first reserves a send slot in the store:
//! slots are spaced so that no window ever holds more than the limit, whichever Lambda sends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::domain::PortalId;
use crate::hubspot::RateLimit;
use crate::ports::{Clock, Store, StoreError};

/// HubSpot's default for public apps: 110 requests per rolling 10 seconds.
pub const DEFAULT_LIMIT_PER_10S: u32 = 110;
/// The share of the limit hubsync spends: the rest absorbs calls made outside the pacer
/// (token refreshes, the console's schema reads) and clock differences between Lambdas.
pub const BUDGET_SHARE: f64 = 0.97;
const WINDOW: Duration = Duration::from_secs(10);
/// HubSpot's search limit: 5 requests per second per portal.
pub const SEARCH_PER_SECOND: f64 = 5.0;

/// A slot further away than this is not waited for: the work is handed back for later instead,
/// so a crowded budget never keeps a Lambda waiting long (nor past its deadline).
pub const MAX_WAIT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum PaceError {
    #[error("the portal's request budget is booked for the next {0:?}")]
    Busy(Duration),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Clone)]
pub struct Pacer {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// The limit HubSpot last reported per portal (`X-HubSpot-RateLimit-Max` per interval).
    reported: Arc<Mutex<HashMap<PortalId, (u64, Duration)>>>,
}

impl Pacer {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Pacer { store, clock, reported: Arc::default() }
    }

    /// The gap between two calls to this portal: the configured limit, or what HubSpot reported
    /// if that is lower, times [`BUDGET_SHARE`].
    pub fn interval(&self, portal: PortalId, configured_per_10s: Option<u32>) -> Duration {
        let configured = f64::from(configured_per_10s.unwrap_or(DEFAULT_LIMIT_PER_10S).max(1)) / WINDOW.as_secs_f64();
        let reported = self.reported.lock().unwrap_or_else(|e| e.into_inner()).get(&portal).copied();
        let per_second = match reported {
            Some((max, interval)) if max > 0 && !interval.is_zero() => {
                configured.min(max as f64 / interval.as_secs_f64())
            }
            _ => configured,
        };
        Duration::from_secs_f64(1.0 / (per_second * BUDGET_SHARE))
    }

    /// Waits for this caller's turn to call the portal, at most `patience` (and [`MAX_WAIT`]).
    pub async fn wait_turn(
        &self,
        portal: PortalId,
        configured_per_10s: Option<u32>,
        patience: Duration,
    ) -> Result<(), PaceError> {
        self.take_slot(&budget_key(portal), self.interval(portal, configured_per_10s), patience).await
    }

    /// Waits for this caller's turn to search the portal: search has its own limit of 5
    /// requests per second per portal, shared the same way.
    pub async fn wait_search_turn(&self, portal: PortalId, patience: Duration) -> Result<(), PaceError> {
        let interval = Duration::from_secs_f64(1.0 / (SEARCH_PER_SECOND * BUDGET_SHARE));
        self.take_slot(&format!("search:{portal}"), interval, patience).await
    }

    /// Reserves the budget's next slot and sleeps until it, unless it is too far away. A slot
    /// reserved and not waited for is simply unused: the budget is spent a little more slowly.
    async fn take_slot(&self, key: &str, interval: Duration, patience: Duration) -> Result<(), PaceError> {
        let now = self.clock.now();
        let slot = self.store.reserve_rate_slot(key, now, time_duration(interval)).await?;
        let wait = std_duration(slot - now);
        if wait > MAX_WAIT.min(patience) {
            return Err(PaceError::Busy(wait));
        }
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    /// Learns from a response's headers: HubSpot's own limit, and whether the window is spent
    /// (then nobody sends until it has rolled over).
    pub async fn observe(&self, portal: PortalId, rate_limit: Option<RateLimit>) -> Result<(), StoreError> {
        let Some(rate_limit) = rate_limit else { return Ok(()) };
        let interval = rate_limit.interval.unwrap_or(WINDOW);
        if let Some(max) = rate_limit.max {
            self.reported.lock().unwrap_or_else(|e| e.into_inner()).insert(portal, (max, interval));
        }
        if rate_limit.remaining == Some(0) {
            self.hold(portal, interval).await?;
        }
        Ok(())
    }

    /// Nobody calls this portal for `pause` (after a 429, or a spent window).
    pub async fn hold(&self, portal: PortalId, pause: Duration) -> Result<(), StoreError> {
        let until = self.clock.now() + time_duration(pause);
        self.store.hold_rate_budget(&budget_key(portal), until).await
    }
}

fn budget_key(portal: PortalId) -> String {
    format!("portal:{portal}")
}

fn time_duration(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

fn std_duration(d: time::Duration) -> Duration {
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::MemoryStore;

    fn pacer() -> Pacer {
        Pacer::new(Arc::new(MemoryStore::new()), Arc::new(crate::ports::SystemClock))
    }

    #[test]
    fn the_default_budget_spends_97_percent_of_110_per_10_seconds() {
        let gap = pacer().interval(1, None);
        let calls_per_window = WINDOW.as_secs_f64() / gap.as_secs_f64();
        assert!((calls_per_window - 106.7).abs() < 0.1, "{calls_per_window}");
    }

    #[tokio::test]
    async fn a_lower_limit_reported_by_hubspot_wins_over_the_configured_one() {
        let pacer = pacer();
        let limit = RateLimit { max: Some(50), remaining: Some(40), interval: Some(WINDOW), ..RateLimit::default() };
        pacer.observe(7, Some(limit)).await.unwrap();
        assert!(pacer.interval(7, Some(190)) > pacer.interval(8, Some(190)));
        assert_eq!(pacer.interval(7, Some(190)), pacer.interval(9, Some(50)));
    }

    #[tokio::test]
    async fn a_spent_window_holds_every_caller_back() {
        let pacer = pacer();
        let spent = RateLimit { remaining: Some(0), interval: Some(Duration::from_secs(60)), ..RateLimit::default() };
        pacer.observe(7, Some(spent)).await.unwrap();
        assert!(matches!(pacer.wait_turn(7, None, MAX_WAIT).await, Err(PaceError::Busy(wait)) if wait > MAX_WAIT));
        pacer.wait_turn(8, None, MAX_WAIT).await.unwrap();
    }
}
