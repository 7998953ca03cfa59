//! An invocation's deadline. Lambda stops a function at its timeout, mid-step; a worker that
//! knows the time left starts only what it can finish and hands the rest back to the queue.

use std::time::Duration;

use time::OffsetDateTime;

/// When the invocation ends (Lambda's `deadline`, or the local runner's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(OffsetDateTime);

impl Deadline {
    pub fn at(at: OffsetDateTime) -> Deadline {
        Deadline(at)
    }

    pub fn after(now: OffsetDateTime, budget: Duration) -> Deadline {
        Deadline(now + budget)
    }

    /// Lambda's deadline, in epoch milliseconds (the runtime's `Lambda-Runtime-Deadline-Ms`).
    pub fn from_epoch_ms(ms: u64) -> Deadline {
        let at =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        Deadline(at)
    }

    pub fn instant(&self) -> OffsetDateTime {
        self.0
    }

    /// Time left at `now` (zero once past).
    pub fn remaining(&self, now: OffsetDateTime) -> Duration {
        Duration::try_from(self.0 - now).unwrap_or(Duration::ZERO)
    }

    /// Whether a step that may take `needed` can still finish before the deadline.
    pub fn allows(&self, now: OffsetDateTime, needed: Duration) -> bool {
        self.remaining(now) >= needed
    }
}

/// The reason of work handed back because the invocation's time ran out.
pub const OUT_OF_TIME: &str = "the invocation's time ran out before this could start";

/// Work the invocation had no time for: back to the queue for the next invocation, which has
/// its whole time (a second's pause keeps a misconfigured timeout from spinning).
pub fn out_of_time() -> crate::work::Outcome {
    crate::work::Outcome::deferred(OUT_OF_TIME, Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_is_allowed_only_if_it_fits_before_the_deadline() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let deadline = Deadline::after(now, Duration::from_secs(10));
        assert!(deadline.allows(now, Duration::from_secs(10)));
        assert!(!deadline.allows(now, Duration::from_secs(11)));
        assert_eq!(deadline.remaining(now + Duration::from_secs(20)), Duration::ZERO);
        assert_eq!(Deadline::from_epoch_ms(10_000).instant(), now + Duration::from_secs(10));
    }
}
