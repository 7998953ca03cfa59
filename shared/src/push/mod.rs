//! Data-out: platform changes, from the push queue to HubSpot.
//!
//! - [`worker`]: folds, maps and writes a queue batch, and says what becomes of each message.
//! - [`pacer`]: one rate budget per HubSpot portal, shared by every concurrent worker.
//! - [`parking`]: retry backoff, the dead-letter queue with reasons, and redrive.

pub mod pacer;
pub mod parking;
pub mod worker;

pub use parking::{Disposition, ParkedMessage, RedriveReport, redrive};
pub use worker::PushWorker;
