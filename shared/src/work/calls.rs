//! HubSpot calls made by queue workers: paced to the portal's shared budget, with the
//! connection's token (renewed once on a 401), and 429s holding the budget for everyone.

use std::future::Future;
use std::time::Duration;

use crate::connect::calls::{CallError, with_token};
use crate::connect::tokens::TokenError;
use crate::deps::Deps;
use crate::domain::{Connection, Secret};
use crate::hubspot::{BatchOutcome, CrmObject, ErrorClass, HubSpotError, ItemError};
use crate::work::pacer::{PaceError, Pacer};

pub const NEEDS_REAUTH: &str = "the connection needs re-authorisation: reinstall the HubSpot app, then redrive";

/// Tries of one search when HubSpot answers 429, and search's rate-limit window.
const SEARCH_ATTEMPTS: u32 = 3;
const SEARCH_WINDOW: Duration = Duration::from_secs(1);

/// The connection a worker calls HubSpot through, with its share of the portal's rate budget.
pub struct Target {
    pub connection: Connection,
    pub limit_per_10s: Option<u32>,
}

/// Why a HubSpot call did not happen or did not succeed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum CallFailed {
    #[error(transparent)]
    Pace(#[from] PaceError),
    #[error(transparent)]
    Call(#[from] CallError),
}

/// What to do about a failed call: try again later, or give up with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Retry(String),
    Permanent(String),
}

impl CallFailed {
    pub fn failure(&self) -> Failure {
        match self {
            CallFailed::Call(CallError::Token(TokenError::NeedsReauth(_) | TokenError::NotConnected(_))) => {
                Failure::Retry(NEEDS_REAUTH.into())
            }
            CallFailed::Call(CallError::HubSpot(err)) if err.class() == ErrorClass::Permanent => {
                Failure::Permanent(err.to_string())
            }
            other => Failure::Retry(other.to_string()),
        }
    }
}

pub struct PacedCalls {
    deps: Deps,
    pacer: Pacer,
}

impl PacedCalls {
    pub fn new(deps: Deps) -> Self {
        let pacer = Pacer::new(deps.store.clone());
        PacedCalls { deps, pacer }
    }

    /// One paced HubSpot call with the connection's token.
    pub async fn call<T, F, Fut>(&self, target: &Target, call: F) -> Result<T, CallFailed>
    where
        F: Fn(Secret) -> Fut,
        Fut: Future<Output = Result<T, HubSpotError>>,
    {
        self.pacer.wait_turn(target.connection.portal_id, target.limit_per_10s).await?;
        self.with_token(target, call).await
    }

    /// One search, paced to search's own limit. Search counts requests per second, so a
    /// request that reaches HubSpot a few milliseconds early (a 429) is tried again once the
    /// second has rolled over, rather than sending its whole pull into a backoff.
    pub async fn search<T, F, Fut>(&self, target: &Target, call: F) -> Result<T, CallFailed>
    where
        F: Fn(Secret) -> Fut,
        Fut: Future<Output = Result<T, HubSpotError>>,
    {
        let mut attempt = 1;
        loop {
            self.pacer.wait_search_turn(target.connection.portal_id).await?;
            match self.with_token(target, &call).await {
                Err(CallFailed::Call(CallError::HubSpot(HubSpotError::RateLimited(_))))
                    if attempt < SEARCH_ATTEMPTS =>
                {
                    attempt += 1;
                    tokio::time::sleep(SEARCH_WINDOW).await;
                }
                result => return result,
            }
        }
    }

    async fn with_token<T, F, Fut>(&self, target: &Target, call: F) -> Result<T, CallFailed>
    where
        F: Fn(Secret) -> Fut,
        Fut: Future<Output = Result<T, HubSpotError>>,
    {
        let connection = &target.connection;
        let result = with_token(&self.deps, &connection.id, call).await;
        if let Err(CallError::HubSpot(err)) = &result {
            self.observe(connection, err).await;
        }
        Ok(result?)
    }

    /// A paced batch call. A batch reports failures per input; a refused token or a spent
    /// budget fails every input alike, and is handled here once for the call.
    pub async fn batch<F, Fut>(&self, target: &Target, call: F) -> Result<BatchOutcome<CrmObject>, CallFailed>
    where
        F: Fn(Secret) -> Fut,
        Fut: Future<Output = BatchOutcome<CrmObject>>,
    {
        let connection = &target.connection;
        let outcome = self
            .call(target, |token| {
                let pending = call(token);
                async move {
                    let outcome = pending.await;
                    match credentials_refused(&outcome) {
                        Some(err) => Err(err),
                        None => Ok(outcome),
                    }
                }
            })
            .await?;
        if let Err(err) = self.pacer.observe(connection.portal_id, outcome.rate_limit).await {
            tracing::warn!(error = %err, "could not record HubSpot's rate-limit headers");
        }
        for item in &outcome.items {
            if let Err(ItemError::CallFailed(err)) = item {
                self.observe(connection, err).await;
                break;
            }
        }
        Ok(outcome)
    }

    /// After a failed call: a 429 holds the portal's budget for everyone.
    async fn observe(&self, connection: &Connection, err: &HubSpotError) {
        if let HubSpotError::RateLimited(response) = err {
            let pause = response.retry_after.unwrap_or(Duration::from_secs(10));
            tracing::warn!(portal = connection.portal_id, ?pause, "HubSpot rate limit reached; holding the budget");
            if let Err(err) = self.pacer.hold(connection.portal_id, pause).await {
                tracing::warn!(error = %err, "could not hold the rate budget");
            }
        }
    }
}

/// The call-wide credentials failure of a batch, rebuilt as the error `with_token` acts on.
fn credentials_refused(outcome: &BatchOutcome<CrmObject>) -> Option<HubSpotError> {
    outcome.items.iter().find_map(|item| match item {
        Err(ItemError::CallFailed(err)) => match err.as_ref() {
            HubSpotError::Unauthorized(response) => Some(HubSpotError::Unauthorized(response.clone())),
            HubSpotError::InactiveToken => Some(HubSpotError::InactiveToken),
            _ => None,
        },
        _ => None,
    })
}
