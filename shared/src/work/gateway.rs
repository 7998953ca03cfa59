//! The one way workers call HubSpot: paced to the portal's shared budget, with the connection's
//! token (renewed once on a 401), 429s holding the budget for everyone, and never started when
//! the invocation could not wait for the answer.

use std::future::Future;
use std::time::Duration;

use crate::connect::calls::{CallError, with_token};
use crate::connect::tokens::TokenError;
use crate::deps::Deps;
use crate::domain::{Connection, ObjectType, Secret};
use crate::hubspot::{BatchOutcome, CrmObject, ErrorClass, HubSpotError, ItemError};
use crate::work::deadline::{Deadline, OUT_OF_TIME};
use crate::work::outcome::Outcome;
use crate::work::pacer::{PaceError, Pacer};

pub const NEEDS_REAUTH: &str = "the connection needs re-authorisation: reinstall the HubSpot app, then redrive";

/// Tries of one search when HubSpot answers 429, and search's rate-limit window.
const SEARCH_ATTEMPTS: u32 = 3;
const SEARCH_WINDOW: Duration = Duration::from_secs(1);
/// What one HubSpot call may take, answer included (the client's timeout, and a margin): no call
/// starts with less than this left before the deadline.
pub const CALL_BUDGET: Duration = Duration::from_secs(35);

/// The connection a worker calls HubSpot through, with its share of the portal's rate budget
/// and the time it has.
pub struct Target {
    pub connection: Connection,
    pub limit_per_10s: Option<u32>,
    pub deadline: Deadline,
}

/// Why a HubSpot call did not happen or did not succeed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum CallFailed {
    #[error(transparent)]
    Pace(#[from] PaceError),
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("{OUT_OF_TIME}")]
    OutOfTime,
}

impl CallFailed {
    /// What becomes of the work the call was for.
    pub fn outcome(&self) -> Outcome {
        match self {
            CallFailed::Call(CallError::Token(TokenError::NeedsReauth(_) | TokenError::NotConnected(_))) => {
                Outcome::Retry(NEEDS_REAUTH.into())
            }
            CallFailed::Call(CallError::HubSpot(err)) if err.class() == ErrorClass::Permanent => {
                Outcome::Failed(err.to_string())
            }
            CallFailed::Pace(PaceError::Busy(wait)) => Outcome::deferred(self.to_string(), *wait),
            CallFailed::OutOfTime => crate::work::deadline::out_of_time(),
            other => Outcome::Retry(other.to_string()),
        }
    }

    /// Whether HubSpot may have acted on the request: it was sent, and no answer says it was
    /// refused as a whole. A write that may have landed is not known to have failed.
    pub fn may_have_landed(&self) -> bool {
        match self {
            CallFailed::Pace(_) | CallFailed::OutOfTime | CallFailed::Call(CallError::Token(_)) => false,
            CallFailed::Call(CallError::HubSpot(err)) => may_have_landed(err),
        }
    }
}

/// Whether a request that ended in `err` may still have been carried out by HubSpot.
pub fn may_have_landed(err: &HubSpotError) -> bool {
    matches!(
        err,
        HubSpotError::Timeout { .. }
            | HubSpotError::Connection { .. }
            | HubSpotError::Unavailable(_)
            | HubSpotError::InvalidResponse { .. }
    )
}

pub struct HubSpotGateway {
    deps: Deps,
    pacer: Pacer,
}

impl HubSpotGateway {
    pub fn new(deps: Deps) -> Self {
        let pacer = Pacer::new(deps.store.clone(), deps.clock.clone());
        HubSpotGateway { deps, pacer }
    }

    /// The longest a call may wait for its turn and still be answered before the deadline.
    fn patience(&self, target: &Target) -> Result<Duration, CallFailed> {
        let left = target.deadline.remaining(self.deps.clock.now());
        left.checked_sub(CALL_BUDGET).ok_or(CallFailed::OutOfTime)
    }

    /// One paced HubSpot call with the connection's token.
    pub async fn call<T, F, Fut>(&self, target: &Target, call: F) -> Result<T, CallFailed>
    where
        F: Fn(Secret) -> Fut,
        Fut: Future<Output = Result<T, HubSpotError>>,
    {
        let patience = self.patience(target)?;
        self.pacer.wait_turn(target.connection.portal_id, target.limit_per_10s, patience).await?;
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
            let patience = self.patience(target)?;
            self.pacer.wait_search_turn(target.connection.portal_id, patience).await?;
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

    /// Reads records by HubSpot id, or by a unique property when `id_property` is given, with
    /// the history of the `history` properties: a paced batch read (a record HubSpot does not
    /// have is an item refused with `OBJECT_NOT_FOUND`).
    pub async fn read(
        &self,
        target: &Target,
        object: ObjectType,
        ids: &[String],
        id_property: Option<&str>,
        properties: &[&str],
        history: &[&str],
    ) -> Result<BatchOutcome<CrmObject>, CallFailed> {
        self.batch(target, |token| async move {
            self.deps
                .hubspot
                .objects(&token, object)
                .batch_read_with_history(ids, id_property, properties, history)
                .await
        })
        .await
    }

    /// After a failed call: a 429 holds the portal's budget for everyone.
    async fn observe(&self, connection: &Connection, err: &HubSpotError) {
        if let HubSpotError::RateLimited(response) = err {
            let pause = response.retry_after.unwrap_or(Duration::from_secs(10));
            tracing::warn!(portal = connection.portal_id, ?pause, "HubSpot rate limit reached; holding the budget");
            let policy = response.body.policy_name.as_deref().unwrap_or("unknown");
            crate::telemetry::emit_metrics(&[("Policy", policy)], &[("HubSpot429", 1)]);
            if let Err(err) = self.pacer.hold(connection.portal_id, pause).await {
                tracing::warn!(error = %err, "could not hold the rate budget");
            }
        }
    }
}

/// Whether one batch input failed because HubSpot has no such record.
fn not_found(err: &ItemError) -> bool {
    matches!(err, ItemError::Rejected(body) if body.category.as_deref() == Some("OBJECT_NOT_FOUND"))
}

/// What a batch read found of each of `inputs` records, in order: `Ok(Some(record))`,
/// `Ok(None)` when HubSpot has no such record, or how the record's work ends when the call or
/// its input failed.
pub fn found_each(
    answer: Result<BatchOutcome<CrmObject>, CallFailed>,
    inputs: usize,
) -> Vec<Result<Option<CrmObject>, Outcome>> {
    match answer {
        Err(failed) => (0..inputs).map(|_| Err(failed.outcome())).collect(),
        Ok(outcome) => outcome
            .items
            .into_iter()
            .map(|item| match item {
                Ok(found) => Ok(Some(found)),
                Err(err) if not_found(&err) => Ok(None),
                Err(err) => Err(item_outcome(&err)),
            })
            .collect(),
    }
}

/// The outcome of one batch input that failed.
pub fn item_outcome(err: &ItemError) -> Outcome {
    match err.class() {
        ErrorClass::Permanent => Outcome::Failed(match err.body() {
            Some(body) => body.to_string(),
            None => err.to_string(),
        }),
        ErrorClass::Retryable | ErrorClass::Reauth => Outcome::Retry(err.to_string()),
    }
}

/// Whether HubSpot may have carried out one batch input that failed.
pub fn item_may_have_landed(err: &ItemError) -> bool {
    match err {
        ItemError::CallFailed(err) => may_have_landed(err),
        ItemError::Rejected(_) | ItemError::NotSent => false,
        // Neither a result nor an error: the write may have happened.
        ItemError::Unanswered => true,
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
