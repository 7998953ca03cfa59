//! Data-in, live: HubSpot's webhooks, verified and routed to the connections that want them.
//!
//! - [`signature`]: HubSpot's v3 (and legacy v1/v2) request signatures.
//! - [`receive`]: verify, parse, de-duplicate, route, filter, enqueue.
//! - [`subscriptions`]: the app's subscriptions, kept in line with what the configs need.

pub mod receive;
pub mod signature;
pub mod subscriptions;

pub use receive::{Receipt, ReceiveError, receive, verify_and_parse};
pub use signature::{SignatureError, SignedRequest};
