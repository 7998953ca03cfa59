//! A typed client for HubSpot's API: OAuth, CRM records and properties.
//!
//! - [`client`]: [`HubSpotClient`], built once per cold start; base URLs, timeouts, body limits.
//! - [`oauth`]: the authorize URL, code exchange, refresh, introspection, revocation.
//! - [`objects`]: records of one object type in one portal ([`HubSpotClient::objects`]),
//!   including batch calls that report an outcome per input.
//! - [`properties`]: a portal's property schema ([`HubSpotClient::properties`]).
//! - [`lists`]: a portal's lists and their memberships ([`HubSpotClient::lists`]).
//! - [`app_webhooks`]: the app's webhook settings and subscriptions ([`HubSpotClient::app_webhooks`]).
//! - [`error`]: [`HubSpotError`] and its [`ErrorClass`] (retry, re-authorise, or give up).
//! - [`rate_limit`]: the `X-HubSpot-RateLimit-*` headers, read on every response.
//!
//! The client never retries and never paces: callers own that policy, because the portal's
//! budget is shared by every Lambda that talks to it.

pub mod app_webhooks;
pub mod associations;
pub mod client;
pub mod error;
mod lenient;
pub mod lists;
pub mod oauth;
pub mod objects;
pub mod properties;
pub mod rate_limit;

pub use app_webhooks::{AppSubscription, AppWebhookSettings, AppWebhooks};
pub use client::{
    ApiVersion, CURRENT_API_VERSION, ClientOptions, DEFAULT_API_BASE_URL, DEFAULT_APP_BASE_URL, HubSpotClient,
};
pub use error::{ErrorBody, ErrorClass, ErrorDetail, ErrorResponse, HubSpotError};
pub use lists::{HubSpotList, ListProcessing, Lists, MEMBERSHIP_CHUNK, MembershipChange};
pub use oauth::{AccessTokenInfo, TokenGrant};
pub use objects::{
    BATCH_LIMIT, BatchOutcome, CrmObject, HISTORY_BATCH_LIMIT, ItemError, Objects, PAGE_LIMIT, Page, PropertyChange,
    PropertyValues, UpdateInput, UpsertInput,
};
pub use properties::{ModificationMetadata, Properties, Property, PropertyCreate, PropertyOption};
pub use rate_limit::RateLimit;
