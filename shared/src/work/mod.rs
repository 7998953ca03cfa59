//! What every queue worker shares: the per-portal HubSpot rate budget, retry backoff, and the
//! dead-letter queue with reasons (and its redrive).

pub mod calls;
pub mod pacer;
pub mod parking;
pub mod sqs;

pub use pacer::Pacer;
pub use parking::{
    Disposition, MAX_ATTEMPTS, ParkNote, ParkedMessage, RedriveReport, Verdict, backoff, park, redrive, settle,
};
pub use sqs::{QueueWorker, handle_sqs_event, poll};
