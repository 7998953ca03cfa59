//! What the console API does, independent of HTTP: authentication, connections, configs,
//! property schemas, the sync's controls (one record, full sync, runs, redrive) and uninstall.
//! The console-api function maps these onto routes.

pub mod auth;
pub mod catalogue;
pub mod configs;
pub mod didomi;
pub mod schemas;
pub mod sync;
pub mod uninstall;

use crate::connect::calls::CallError;
use crate::connect::tokens::TokenError;
use crate::http::ApiError;
use crate::hubspot::HubSpotError;

impl From<CallError> for ApiError {
    fn from(err: CallError) -> Self {
        match err {
            CallError::Token(TokenError::NeedsReauth(_) | TokenError::NotConnected(_)) => ApiError::NeedsReauth,
            CallError::Token(other) => ApiError::HubSpot(format!("HubSpot is unavailable: {other}")),
            // The portal's budget is spent for a few seconds: the console's to retry, not a fault.
            CallError::HubSpot(err @ HubSpotError::RateLimited(_)) => ApiError::RateLimited(format!(
                "HubSpot's rate limit for this portal is reached: try again in {} s",
                err.retry_after().map_or(10, |wait| wait.as_secs().max(1))
            )),
            CallError::HubSpot(err) => ApiError::HubSpot(format!("HubSpot refused the request: {err}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::response::IntoResponse;
    use reqwest::StatusCode;
    use reqwest::header::{HeaderMap, HeaderValue};

    use super::*;

    #[test]
    fn a_spent_hubspot_rate_limit_is_a_429_with_hubspots_wait() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("3"));
        let body = br#"{"status":"error","message":"You have reached your ten_secondly_rolling limit.","errorType":"RATE_LIMIT","policyName":"TEN_SECONDLY_ROLLING"}"#;
        let limited = HubSpotError::from_response("get list", StatusCode::TOO_MANY_REQUESTS, &headers, body, &[]);

        let error = ApiError::from(CallError::HubSpot(limited));
        assert_eq!(error.to_string(), "HubSpot's rate limit for this portal is reached: try again in 3 s");
        assert_eq!(error.into_response().status(), StatusCode::TOO_MANY_REQUESTS);
    }
}
