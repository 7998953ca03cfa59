//! Data-in: HubSpot changes, from the inbound queue to the platform.
//!
//! - [`worker`]: folds events per record, reads the records, delivers them, newest wins.
//! - [`pull`]: scheduled pulls (enrichment, catch-up) on the bulk queue, page by page.
//! - [`platform`]: the signed delivery to the platform's ingest endpoint, and its answers.

pub mod platform;
pub mod pull;
pub mod worker;

pub use platform::{DeliveredRecord, Delivery, PlatformClient, RecordAnswer, RecordStatus, sign, verify};
pub use pull::{PlanReport, PullJob, PullWorker, plan_pulls, start_full_sync, start_pull};
pub use worker::InboundWorker;
