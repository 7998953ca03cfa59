//! hubsync: a HubSpot sync connector for SaaS platforms.
//!
//! - [`domain`]: the pure model (connections, configs, cursors, sync state). No I/O.
//! - [`ports`]: the traits the domain needs from the outside world (store, queues, secrets).
//! - [`adapters`]: implementations of the ports, on AWS and embedded in-process.
//! - [`hubspot`]: a typed client for HubSpot's API.
//! - [`connect`]: installing the HubSpot app (OAuth), and keeping its tokens valid and sealed.
//! - [`console`]: the console API's operations (connections, configs, schemas), behind tenant auth.
//! - [`outbound`]: the push worker: platform changes to HubSpot, paced, retried, parked with reasons.
//! - [`inbound`]: the inbound worker: HubSpot changes delivered to the platform, newest wins.
//! - [`webhooks`]: HubSpot's webhooks, verified, de-duplicated and routed to connections.
//! - [`work`]: what queue workers share: the pipeline, the outcome type, the HubSpot gateway with
//!   the per-portal rate budget, record claims, backoff, parking, redrive.
//! - [`transport`]: how the HTTP clients put requests on the wire (or in-process, in simulations).
//! - [`deps`]: the dependencies a function builds once per cold start.

pub mod adapters;
pub mod admin;
pub mod connect;
pub mod console;
pub mod deps;
pub mod domain;
pub mod http;
pub mod hubspot;
pub mod inbound;
pub mod outbound;
pub mod ports;
pub mod settings;
pub mod telemetry;
pub mod transport;
pub mod webhooks;
pub mod work;
