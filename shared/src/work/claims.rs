//! The claims one piece of work holds on its records (see [`crate::domain::record`] for why):
//! taken all at once without waiting, so no two workers ever wait for each other, and given up
//! when the work is done (or, if the worker stops, by expiry).

use std::time::Duration;

use time::OffsetDateTime;

use crate::deps::Deps;
use crate::domain::record::{CLAIM_MARGIN, CLAIM_TTL};
use crate::domain::{RecordKey, RecordSyncState};
use crate::ports::{Claimed, OutboundSave, StoreError};
use crate::work::outcome::Outcome;

/// The outcome of work on a record another worker holds: back to the queue, a little later.
pub fn held() -> Outcome {
    Outcome::deferred("another worker is syncing this record; handed back for a little later", HELD_RETRY)
}

/// How long a record held by another worker is left alone: most claims last one HubSpot call.
const HELD_RETRY: Duration = Duration::from_secs(5);

/// Claims held under one holder id until one expiry.
pub struct Claims {
    deps: Deps,
    holder: String,
    until: OffsetDateTime,
}

impl Claims {
    pub fn new(deps: &Deps) -> Claims {
        Claims { deps: deps.clone(), holder: deps.ids.new_id(), until: deps.clock.now() + CLAIM_TTL }
    }

    /// Claims these records: each one's state, read with its claim, or `None` when another
    /// worker holds it.
    pub async fn claim(&self, keys: &[RecordKey]) -> Result<Vec<Option<RecordSyncState>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.deps.clock.now();
        let claimed = self.deps.store.claim_records(keys, &self.holder, now, self.until).await?;
        Ok(claimed
            .into_iter()
            .map(|claimed| match claimed {
                Claimed::Granted(state) => Some(*state),
                Claimed::Held => None,
            })
            .collect())
    }

    /// Whether a HubSpot write may still start under these claims: it must be over before
    /// they expire, or a worker taking them next could write before it.
    pub fn leave_time_to_write(&self) -> bool {
        self.until - self.deps.clock.now() >= CLAIM_MARGIN
    }

    /// Saves claimed records' outbound parts (each `release` gives its claim up too); answers
    /// whether each was saved: `false` when its claim was lost meanwhile.
    pub async fn save(&self, saves: &[OutboundSave]) -> Result<Vec<bool>, StoreError> {
        if saves.is_empty() {
            return Ok(Vec::new());
        }
        self.deps.store.save_outbound(saves, &self.holder, self.deps.clock.now()).await
    }

    /// Gives claims up. A failure only leaves them to expire, so it is logged, not returned.
    pub async fn release(&self, keys: &[RecordKey]) {
        if keys.is_empty() {
            return;
        }
        if let Err(err) = self.deps.store.release_records(keys, &self.holder).await {
            tracing::warn!(error = %err, records = keys.len(), "could not release record claims; they expire");
        }
    }
}
