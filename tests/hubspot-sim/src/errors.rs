//! HubSpot's error bodies, built in one place so every endpoint answers in the same dialect:
//! `{"status":"error","message","correlationId","category","errors":[…],"context":{…}}` with an
//! `x-hubspot-correlation-id` header, plus the two shapes that differ (OAuth's and the 429's).

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::properties::PropertyError;
use crate::ratelimit::Budget;

pub fn correlation_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// An error answer. Handlers return `Result<_, ApiError>`; the body gets its correlation id
/// (and the matching header) when it is turned into a response.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: Map<String, Value>,
    /// Rate-limit headers to send along (429s carry them too).
    pub rate_limit: Option<Budget>,
}

impl ApiError {
    /// The standard CRM error shape.
    pub fn new(status: StatusCode, category: &str, message: impl Into<String>) -> ApiError {
        let mut body = Map::new();
        body.insert("status".into(), json!("error"));
        body.insert("message".into(), json!(message.into()));
        body.insert("category".into(), json!(category));
        ApiError { status, body, rate_limit: None }
    }

    /// A body that is not the standard shape (OAuth, rate limits, faults).
    pub fn raw(status: StatusCode, body: Value) -> ApiError {
        let body = match body {
            Value::Object(map) => map,
            other => Map::from_iter([("message".to_string(), other)]),
        };
        ApiError { status, body, rate_limit: None }
    }

    pub fn with(mut self, key: &str, value: Value) -> ApiError {
        self.body.insert(key.into(), value);
        self
    }

    /// The same error as an item of a batch's `errors` array (`StandardError`, whose spec
    /// requires `errors` and `links` too: the details default to the message itself).
    pub fn into_batch_item(mut self, context: Value) -> Value {
        self.body.remove("correlationId");
        self.body.insert("context".into(), context);
        if !self.body.contains_key("errors") {
            let message = self.body.get("message").cloned().unwrap_or(Value::Null);
            self.body.insert("errors".into(), json!([{ "message": message }]));
        }
        self.body.entry("links").or_insert_with(|| json!({}));
        Value::Object(self.body)
    }

    // Constructors for the errors more than one module answers with.

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND", message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "CONFLICT", message)
    }

    /// HubSpot's answer to a token it does not know (or no token at all).
    pub fn unauthenticated() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find \
             more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        )
    }

    pub fn expired(seconds_ago: i64, expired_at_ms: i64) -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "EXPIRED_AUTHENTICATION",
            format!("The OAuth token used to make this call expired {seconds_ago} second(s) ago."),
        )
        .with("context", json!({ "expire time": [crate::state::iso(expired_at_ms)] }))
    }

    pub fn missing_scopes(required: &[String]) -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "MISSING_SCOPES",
            "This app hasn't been granted all required scopes to make this call. Read more about required scopes \
             here: https://developers.hubspot.com/scopes.",
        )
        .with(
            "errors",
            json!([{
                "message": "One or more of the following scopes are required.",
                "context": { "requiredGranularScopes": required },
            }]),
        )
        .with("links", json!({ "scopes": "https://developers.hubspot.com/scopes" }))
    }

    /// The 429 body, which has its own shape (`errorType`, `policyName`, `requestId`).
    pub fn rate_limited() -> ApiError {
        ApiError::raw(
            StatusCode::TOO_MANY_REQUESTS,
            json!({
                "status": "error",
                "message": "You have reached your ten_secondly_rolling limit.",
                "errorType": "RATE_LIMIT",
                "policyName": "TEN_SECONDLY_ROLLING",
                "requestId": uuid::Uuid::new_v4().to_string(),
            }),
        )
    }

    /// The search endpoints' own per-second limit.
    pub fn search_limited() -> ApiError {
        ApiError::raw(
            StatusCode::TOO_MANY_REQUESTS,
            json!({
                "status": "error",
                "message": "You have reached your secondly limit.",
                "errorType": "RATE_LIMIT",
                "policyName": "SECONDLY",
                "requestId": uuid::Uuid::new_v4().to_string(),
            }),
        )
    }

    /// Invalid property values: HubSpot embeds the per-property results as JSON in `message`
    /// and repeats them in `errors` with a `propertyName` context.
    pub fn invalid_properties(problems: &[PropertyError]) -> ApiError {
        let inner: Vec<Value> = problems
            .iter()
            .map(|p| {
                json!({
                    "isValid": false,
                    "message": p.message,
                    "error": p.code,
                    "name": p.name,
                    "localizedErrorMessage": p.message,
                })
            })
            .collect();
        let errors: Vec<Value> = problems
            .iter()
            .map(|p| json!({ "message": p.message, "code": p.code, "context": { "propertyName": [p.name] } }))
            .collect();
        ApiError::bad_request(format!("Property values were not valid: {}", Value::Array(inner)))
            .with("errors", Value::Array(errors))
    }

    /// OAuth endpoints answer with the legacy (`status`, `message`) and RFC 6749 (`error`,
    /// `error_description`) fields at once, so clients of either generation understand them.
    pub fn oauth(status: &str, message: &str, error: &str) -> ApiError {
        ApiError::raw(
            StatusCode::BAD_REQUEST,
            json!({ "status": status, "message": message, "error": error, "error_description": message }),
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), Value::Object(self.body.clone()))
    }
}

impl IntoResponse for ApiError {
    fn into_response(mut self) -> Response {
        let id = match self.body.get("correlationId").and_then(Value::as_str) {
            Some(id) => id.to_string(),
            None => {
                let id = correlation_id();
                self.body.insert("correlationId".into(), json!(id));
                id
            }
        };
        let mut response = (self.status, axum::Json(Value::Object(self.body))).into_response();
        if let Some(budget) = self.rate_limit {
            response.headers_mut().extend(budget.headers());
        }
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert("x-hubspot-correlation-id", value);
        }
        response
    }
}
