//! Data-out: platform changes, from the push queue to HubSpot, under the per-record write
//! protocol ([`crate::domain::record`]).
//!
//! - [`job`]: the push job the shared pipeline runs: fold, claim, plan, announce, write, save.
//! - [`write`]: HubSpot writes by write mode, and the check of both-ways values in HubSpot.
//! - [`lists`]: list memberships of pushed records.
//! - [`links`]: links of pushed records to their related records (HubSpot associations).

pub mod job;
mod links;
mod lists;
pub mod write;

pub use job::PushJob;

/// The push queue's worker: the push job on the shared pipeline.
pub type PushWorker = crate::work::Pipeline<PushJob>;

/// The push worker for these dependencies.
pub fn push_worker(deps: crate::deps::Deps) -> PushWorker {
    crate::work::Pipeline::new(deps.clone(), PushJob::new(deps))
}
