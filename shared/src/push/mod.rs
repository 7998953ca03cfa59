//! Data-out: platform changes, from the push queue to HubSpot ([`worker`]).

pub mod worker;

pub use worker::PushWorker;
