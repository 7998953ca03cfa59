//! What every queue worker shares: one pipeline ([`pipeline`]) from queue batch to outcomes, the
//! one outcome type ([`outcome`]), the HubSpot gateway with the per-portal rate budget
//! ([`gateway`], [`pacer`]), record claims ([`claims`]), the invocation's deadline, retry
//! backoff, and the dead-letter queues with reasons (and their redrive, [`redrive`] as a job).

pub mod claims;
pub mod deadline;
pub mod gateway;
pub mod outcome;
pub mod pacer;
pub mod parking;
pub mod pipeline;
pub mod redrive;
pub mod sqs;

pub use deadline::Deadline;
pub use gateway::{HubSpotGateway, Target};
pub use outcome::{Outcome, Verdict};
pub use pacer::Pacer;
pub use parking::{Disposition, MAX_ATTEMPTS, ParkNote, ParkedMessage, RedriveReport, backoff, park, redrive, settle};
pub use pipeline::{Group, GroupResult, Job, Pipeline, Routed, Settled};
pub use redrive::{RedriveJob, WithRedrive, queue_redrive};
pub use sqs::{QueueWorker, handle_sqs_event, poll};
