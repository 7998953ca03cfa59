//! Data-in: HubSpot changes, from the inbound queue to the platform.
//!
//! - [`worker`]: folds events per record, reads the records, delivers them, newest wins.
//! - [`platform`]: the signed delivery to the platform's ingest endpoint, and its answers.

pub mod platform;
pub mod worker;

pub use platform::{DeliveredRecord, Delivery, PlatformClient, RecordAnswer, RecordStatus, sign};
pub use worker::InboundWorker;
