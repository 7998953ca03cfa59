//! The one place where errors become HTTP responses. Clients get a stable JSON shape and a
//! message that helps them; internals (store or HubSpot details) are logged, never shown.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use reqwest::Url;

use crate::domain::mapping::ConfigProblem;
use crate::ports::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("a valid API key is required: send it as `Authorization: Bearer <key>`")]
    Unauthorized,
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the config has {} problem(s)", .0.len())]
    InvalidConfig(Vec<ConfigProblem>),
    /// HubSpot refused or failed; the message is safe to show (no tokens, no internals).
    #[error("{0}")]
    HubSpot(String),
    #[error("the connection needs to be re-authorised: install the HubSpot app again")]
    NeedsReauth,
    /// HubSpot's rate limit for the portal is spent for now; the client may retry shortly.
    #[error("{0}")]
    RateLimited(String),
    /// A webhook whose signature does not hold.
    #[error("{0}")]
    Unverified(String),
    #[error("{0}")]
    TooLarge(String),
    /// A dependency is down; the caller should retry (HubSpot does, for webhooks).
    #[error("{0}")]
    Unavailable(String),
    /// Anything the client can do nothing about. The detail is logged with a reference.
    #[error("internal error")]
    Internal(String),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    problems: Option<&'a [ConfigProblem]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<String>,
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::InvalidConfig(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_config"),
            ApiError::HubSpot(_) => (StatusCode::BAD_GATEWAY, "hubspot_error"),
            ApiError::NeedsReauth => (StatusCode::CONFLICT, "needs_reauth"),
            ApiError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Unverified(_) => (StatusCode::UNAUTHORIZED, "bad_signature"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let reference = match &self {
            ApiError::Internal(detail) => {
                let reference = uuid::Uuid::new_v4().to_string();
                tracing::error!(%reference, %detail, "internal error");
                Some(reference)
            }
            _ => None,
        };
        let problems = match &self {
            ApiError::InvalidConfig(problems) => Some(problems.as_slice()),
            _ => None,
        };
        let body = ErrorBody { error: ErrorDetail { code, message: self.to_string(), problems, reference } };
        (status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::VersionConflict { expected, actual } => ApiError::Conflict(format!(
                "the config changed since you read it (you sent version {expected}, it is now {actual}): \
                 reload it, re-apply your change and save again"
            )),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// Keys are ~60 characters; anything much longer is not a key and is not hashed.
const MAX_BEARER_LEN: usize = 256;

/// The key of `Authorization: Bearer <key>`, when there is a plausible one.
pub fn bearer_key(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= MAX_BEARER_LEN)
}

/// A JSON body whose rejections (bad JSON, wrong shape, wrong content type) use [`ApiError`]'s
/// shape, with serde's explanation of what was wrong.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(ApiError::BadRequest(rejection_message(rejection))),
        }
    }
}

fn rejection_message(rejection: JsonRejection) -> String {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            "send the body as JSON with `Content-Type: application/json`".into()
        }
        other => format!("the request body is not valid: {}", other.body_text()),
    }
}

/// The path's parameters (one id, or a tuple of them). A path whose parameters do not decode
/// names nothing that exists, so it is "not found", in [`ApiError`]'s shape.
pub struct PathParams<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(PathParams(value)),
            Err(_) => Err(ApiError::NotFound(format!("`{}`", parts.uri.path()))),
        }
    }
}
