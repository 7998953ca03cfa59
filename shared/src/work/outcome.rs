//! The one word every worker has on each piece of work, and what it means for the run's counts
//! and for the queue message it came in.

use std::time::Duration;

use crate::domain::RunCounts;

/// How one record (or event, or page) of a message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    /// Nothing to do: HubSpot or the platform already has it.
    Unchanged,
    /// Deliberately not synced, with the reason the run history shows.
    Skipped(String),
    /// Not done now, and not a failure: another worker holds the record, the portal's budget
    /// is booked, or the invocation's time ran out. The message goes back to the queue after
    /// `after`, without counting an attempt.
    Deferred {
        reason: String,
        after: Duration,
    },
    /// Failed for now (HubSpot busy or down, the platform down...): retried with backoff, and
    /// parked with the reason after the last attempt.
    Retry(String),
    /// Refused for a reason retrying will not fix: parked with that reason.
    Failed(String),
}

impl Outcome {
    pub fn deferred(reason: impl Into<String>, after: Duration) -> Outcome {
        Outcome::Deferred { reason: reason.into(), after }
    }

    /// Finished, one way or another: nothing about it is left to do.
    pub fn is_final(&self) -> bool {
        matches!(self, Outcome::Created | Outcome::Updated | Outcome::Unchanged | Outcome::Skipped(_))
    }

    pub fn verdict(&self) -> Verdict {
        match self {
            Outcome::Created | Outcome::Updated | Outcome::Unchanged | Outcome::Skipped(_) => Verdict::Done,
            Outcome::Deferred { reason, after } => Verdict::Defer { reason: reason.clone(), after: *after },
            Outcome::Retry(reason) => Verdict::Retry(reason.clone()),
            Outcome::Failed(reason) => Verdict::Park(reason.clone()),
        }
    }

    /// Adds this outcome to a run's counts; `folded` more items were folded into it (older
    /// changes of the same record), counted as skipped for `folded_reason` when it finished.
    pub fn count(&self, counts: &mut RunCounts, folded: usize, folded_reason: &str) {
        match self {
            Outcome::Created => counts.created += 1,
            Outcome::Updated => counts.updated += 1,
            Outcome::Unchanged => counts.unchanged += 1,
            Outcome::Skipped(reason) => counts.skip(reason.clone()),
            Outcome::Deferred { reason, .. } => counts.defer(reason.clone()),
            Outcome::Retry(reason) => counts.retry(reason.clone()),
            Outcome::Failed(reason) => counts.fail(reason.clone()),
        }
        if self.is_final() {
            (0..folded).for_each(|_| counts.skip(folded_reason));
        }
    }
}

/// What becomes of one queue message, from the outcomes of what it carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Done,
    Defer { reason: String, after: Duration },
    Retry(String),
    Park(String),
}

impl Verdict {
    /// The verdict for a message whose parts ended differently: anything to retry retries the
    /// whole message (finished parts are skipped the next time), then anything deferred defers
    /// it, then anything refused parks it.
    pub fn combine(self, other: Verdict) -> Verdict {
        use Verdict::*;
        match (self, other) {
            (Retry(reason), _) | (_, Retry(reason)) => Retry(reason),
            (Defer { reason, after }, Defer { after: other, .. }) => Defer { reason, after: after.max(other) },
            (Defer { reason, after }, _) | (_, Defer { reason, after }) => Defer { reason, after },
            (Park(reason), _) | (_, Park(reason)) => Park(reason),
            (Done, Done) => Done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_retries_before_it_defers_and_defers_before_it_parks() {
        let defer = |s| Verdict::Defer { reason: "held".into(), after: Duration::from_secs(s) };
        assert_eq!(Verdict::Park("bad".into()).combine(Verdict::Retry("down".into())), Verdict::Retry("down".into()));
        assert_eq!(Verdict::Park("bad".into()).combine(defer(1)), defer(1));
        assert_eq!(defer(1).combine(defer(5)), defer(5));
        assert_eq!(Verdict::Done.combine(Verdict::Park("bad".into())), Verdict::Park("bad".into()));
        assert_eq!(Verdict::Done.combine(Verdict::Done), Verdict::Done);
    }

    #[test]
    fn folded_items_count_as_skipped_only_once_their_record_is_finished() {
        let mut counts = RunCounts::default();
        Outcome::Updated.count(&mut counts, 2, "merged");
        Outcome::Retry("down".into()).count(&mut counts, 3, "merged");
        assert_eq!((counts.updated, counts.skipped["merged"], counts.retried["down"]), (1, 2, 1));
    }
}
