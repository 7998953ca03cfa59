//! Data-in: HubSpot changes, from the inbound and bulk queues to the platform.
//!
//! - [`events`]: the inbound job: webhook events, folded per record, read, delivered.
//! - [`pull`]: scheduled pulls on the bulk queue, page by page; [`plan`]: their planners.
//! - [`deliver`]: what both share: what is news, the delivery, what the platform applied.
//! - [`read`]: HubSpot's reads for inbound work; [`record`]: one record on its way.
//! - [`platform`]: the signed delivery to the platform's ingest endpoint, and its answers;
//!   [`destination`]: where deliveries may go.

pub mod deliver;
pub mod destination;
pub mod events;
pub mod plan;
pub mod platform;
pub mod pull;
pub mod read;
pub mod record;

pub use events::InboundJob;
pub use plan::{CATCH_UP_SPAN, PlanReport, plan_pulls};
pub use platform::{DeliveredRecord, Delivery, PlatformClient, RecordAnswer, RecordStatus, sign, verify};
pub use pull::{BulkJob, PullJob, StartError, start_full_sync, start_pull};

/// The inbound queue's worker: the inbound job on the shared pipeline.
pub type InboundWorker = crate::work::Pipeline<InboundJob>;
/// Pull jobs on the shared pipeline.
pub type PullWorker = crate::work::Pipeline<BulkJob>;
/// The bulk queue's worker: pull jobs, and the redrives asked for after a reinstall.
pub type BulkWorker = crate::work::WithRedrive<PullWorker>;

pub fn inbound_worker(deps: crate::deps::Deps) -> InboundWorker {
    crate::work::Pipeline::new(deps.clone(), InboundJob::new(deps))
}

pub fn pull_worker(deps: crate::deps::Deps) -> PullWorker {
    crate::work::Pipeline::new(deps.clone(), BulkJob::new(deps))
}

pub fn bulk_worker(deps: crate::deps::Deps) -> BulkWorker {
    crate::work::WithRedrive::new(deps.clone(), pull_worker(deps))
}
