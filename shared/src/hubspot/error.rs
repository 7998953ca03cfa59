//! What can go wrong talking to HubSpot, as types. Callers decide what to do from
//! [`HubSpotError::class`] (retry later, re-authorise, or give up with HubSpot's reason), never
//! by matching message text.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::Value;

use super::lenient;
use super::rate_limit::{self, RateLimit};
use crate::domain::Secret;

/// What a caller should do about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Try again later, paced: rate limits, HubSpot outages, timeouts, dropped connections.
    Retryable,
    /// The access token was refused: get a new one (refresh, or ask for a reinstall).
    Reauth,
    /// Trying again will fail the same way: bad input, missing scopes, not found, conflicts.
    Permanent,
}

/// HubSpot's error body, as documented (`Error` / `StandardError`) plus what real responses and
/// the OAuth endpoints add. Every field is optional: error bodies vary by endpoint and age.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// `"error"` on the CRM APIs; the error code itself on the legacy OAuth endpoints.
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub status: Option<String>,
    /// The machine-readable kind: `VALIDATION_ERROR`, `MISSING_SCOPES`, `EXPIRED_AUTHENTICATION`,
    /// `OBJECT_NOT_FOUND`, `CONFLICT`, or an OAuth code such as `BAD_AUTH_CODE` (see [`ErrorBody::parse`]).
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub category: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub sub_category: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub message: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub correlation_id: Option<String>,
    /// Which limit a 429 hit: `TEN_SECONDLY_ROLLING`, `SECONDLY`, `DAILY`.
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub policy_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub error_type: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub request_id: Option<String>,
    /// Details keyed by name, e.g. `ids`, `propertyName`, `requiredGranularScopes`, `objectWriteTraceId`.
    #[serde(default, deserialize_with = "lenient::context")]
    pub context: BTreeMap<String, Vec<String>>,
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub errors: Vec<ErrorDetail>,
    /// The record a batch error is about, when HubSpot names a single one.
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub id: Option<String>,
    /// RFC 6749 fields of the OAuth endpoints (`invalid_grant`).
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub error: Option<String>,
    #[serde(default, rename = "error_description", deserialize_with = "lenient::opt_text")]
    pub error_description: Option<String>,
}

/// One entry of an error body's `errors` list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub message: Option<String>,
    /// E.g. `PROPERTY_DOESNT_EXIST`, `INVALID_OPTION`.
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub code: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_text")]
    pub sub_category: Option<String>,
    #[serde(default, deserialize_with = "lenient::context")]
    pub context: BTreeMap<String, Vec<String>>,
}

/// Shorter values are not searched for: replacing a one-letter "secret" would mangle messages,
/// and real tokens and secrets are far longer.
const MIN_REDACTED_LEN: usize = 6;
const REDACTED: &str = "***";

impl ErrorBody {
    /// Reads an error body. Anything that is not a JSON object gives an empty body: the status
    /// code still says what happened. The legacy OAuth shape (`{"status":"BAD_AUTH_CODE"}`) and
    /// the RFC 6749 shape (`{"error":"invalid_grant"}`) get their code copied into `category`,
    /// so callers look in one place.
    pub fn parse(bytes: &[u8]) -> ErrorBody {
        let mut body = serde_json::from_slice::<ErrorBody>(bytes).unwrap_or_default();
        if body.category.is_none() {
            body.category = body
                .status
                .clone()
                .filter(|s| !s.eq_ignore_ascii_case("error") && !s.is_empty())
                .or_else(|| body.error.clone());
        }
        if body.message.is_none() {
            body.message = body.error_description.clone();
        }
        body
    }

    /// The properties HubSpot says are wrong: from `context.propertyName` (top level or in
    /// `errors`), and from the JSON list HubSpot embeds in "Property values were not valid: [...]".
    pub fn invalid_properties(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        let contexts = std::iter::once(&self.context).chain(self.errors.iter().map(|e| &e.context));
        for context in contexts {
            for key in ["propertyName", "propertyNames", "property"] {
                names.extend(context.get(key).into_iter().flatten().cloned());
            }
        }
        if let Some(embedded) = self.message.as_deref().and_then(|m| m.find('[').map(|at| &m[at..])) {
            if let Ok(Value::Array(items)) = serde_json::from_str::<Value>(embedded) {
                names.extend(items.iter().filter_map(|i| i.get("name")?.as_str().map(str::to_string)));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        names.retain(|n| seen.insert(n.clone()));
        names
    }

    /// The record ids or unique values this error is about (`context.ids`, `context.id`, `id`).
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> =
            ["ids", "id"].iter().flat_map(|k| self.context.get(*k).into_iter().flatten()).cloned().collect();
        ids.extend(self.id.clone());
        ids
    }

    /// The `objectWriteTraceId`s this error is about: how HubSpot ties a batch error to its input.
    pub fn trace_ids(&self) -> Vec<String> {
        let contexts = std::iter::once(&self.context).chain(self.errors.iter().map(|e| &e.context));
        contexts.flat_map(|c| c.get("objectWriteTraceId").into_iter().flatten()).cloned().collect()
    }

    /// The scopes HubSpot says are missing (a 403 `MISSING_SCOPES`).
    pub fn required_scopes(&self) -> Vec<String> {
        let contexts = std::iter::once(&self.context).chain(self.errors.iter().map(|e| &e.context));
        contexts
            .flat_map(|c| {
                ["requiredGranularScopes", "requiredScopes"].map(|k| c.get(k)).into_iter().flatten().flatten()
            })
            .cloned()
            .collect()
    }

    /// HubSpot never puts credentials in its messages, but an echo of a request is always
    /// possible: every value sent with the request is blanked out of the body before it is kept.
    pub(crate) fn redact(&mut self, secrets: &[&Secret]) {
        let secrets: Vec<&str> = secrets.iter().map(|s| s.expose()).filter(|s| s.len() >= MIN_REDACTED_LEN).collect();
        if secrets.is_empty() {
            return;
        }
        let clean = |text: &mut String| {
            for secret in &secrets {
                if text.contains(secret) {
                    *text = text.replace(secret, REDACTED);
                }
            }
        };
        let clean_opt = |text: &mut Option<String>| {
            if let Some(text) = text {
                clean(text);
            }
        };
        let clean_context = |context: &mut BTreeMap<String, Vec<String>>| {
            let entries = std::mem::take(context);
            for (mut key, mut values) in entries {
                clean(&mut key);
                values.iter_mut().for_each(clean);
                context.insert(key, values);
            }
        };
        for field in [
            &mut self.status,
            &mut self.category,
            &mut self.sub_category,
            &mut self.message,
            &mut self.correlation_id,
            &mut self.policy_name,
            &mut self.error_type,
            &mut self.request_id,
            &mut self.id,
            &mut self.error,
            &mut self.error_description,
        ] {
            clean_opt(field);
        }
        clean_context(&mut self.context);
        for detail in &mut self.errors {
            clean_opt(&mut detail.message);
            clean_opt(&mut detail.code);
            clean_opt(&mut detail.sub_category);
            clean_context(&mut detail.context);
        }
    }

    /// Retryable categories a batch may report for one record; everything else is about the
    /// record itself and will not change by trying again.
    pub fn class(&self) -> ErrorClass {
        match self.category.as_deref() {
            Some("RATE_LIMITS" | "RATE_LIMIT" | "LOCKED" | "INTERNAL_ERROR" | "SERVICE_UNAVAILABLE" | "TIMEOUT") => {
                ErrorClass::Retryable
            }
            _ => ErrorClass::Permanent,
        }
    }
}

impl fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.category.as_deref().unwrap_or("UNKNOWN"))?;
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        let properties = self.invalid_properties();
        if !properties.is_empty() {
            write!(f, " (properties: {})", properties.join(", "))?;
        }
        Ok(())
    }
}

/// HubSpot's answer to a call that failed with an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorResponse {
    /// What the client was doing, e.g. `batch upsert contacts`.
    pub operation: String,
    pub status: u16,
    pub body: ErrorBody,
    /// From the body, or from the `X-HubSpot-Correlation-Id` header when the body has none:
    /// the reference HubSpot support asks for.
    pub correlation_id: Option<String>,
    /// `Retry-After`, when HubSpot sent it (documented for 477; honoured whenever present).
    pub retry_after: Option<Duration>,
    pub rate_limit: Option<RateLimit>,
}

impl fmt::Display for ErrorResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: HTTP {}: {}", self.operation, self.status, self.body)?;
        if let Some(policy) = &self.body.policy_name {
            write!(f, " [policy {policy}]")?;
        }
        if let Some(after) = self.retry_after {
            write!(f, " [retry after {}s]", after.as_secs())?;
        }
        if let Some(id) = &self.correlation_id {
            write!(f, " [correlationId {id}]")?;
        }
        Ok(())
    }
}

/// Every way a HubSpot call can fail. Messages carry HubSpot's reason and never a token,
/// code or secret.
#[derive(Debug, thiserror::Error)]
pub enum HubSpotError {
    /// 400: invalid input (`VALIDATION_ERROR`), or an OAuth grant refused (`BAD_AUTH_CODE`,
    /// `BAD_REFRESH_TOKEN`, `BAD_CLIENT_ID`...).
    #[error("HubSpot rejected the request: {0}")]
    BadRequest(Box<ErrorResponse>),
    /// 401: the access token is expired, revoked or unknown.
    #[error("HubSpot refused the credentials: {0}")]
    Unauthorized(Box<ErrorResponse>),
    /// 403: usually `MISSING_SCOPES`; see [`ErrorBody::required_scopes`].
    #[error("HubSpot forbade the request: {0}")]
    Forbidden(Box<ErrorResponse>),
    /// 404.
    #[error("HubSpot found nothing: {0}")]
    NotFound(Box<ErrorResponse>),
    /// 409: the record or property already exists.
    #[error("HubSpot reported a conflict: {0}")]
    Conflict(Box<ErrorResponse>),
    /// 429: a rate limit; `policyName` says which.
    #[error("HubSpot rate limit reached: {0}")]
    RateLimited(Box<ErrorResponse>),
    /// 5xx, 408, 423 (locked), 477 (migration in progress): HubSpot can't serve this now.
    #[error("HubSpot is unavailable: {0}")]
    Unavailable(Box<ErrorResponse>),
    /// Any other status.
    #[error("HubSpot answered with an unexpected status: {0}")]
    UnexpectedStatus(Box<ErrorResponse>),
    #[error("{operation}: HubSpot did not answer in time")]
    Timeout { operation: String },
    #[error("{operation}: the connection to HubSpot failed: {source}")]
    Connection {
        operation: String,
        #[source]
        source: crate::transport::TransportError,
    },
    /// The body exceeded the client's limit; it was not read to the end.
    #[error("{operation}: HubSpot's response is larger than the {limit}-byte limit; refused")]
    ResponseTooLarge { operation: String, limit: usize },
    /// A success status whose body is not what HubSpot documents.
    #[error("{operation}: HubSpot's response could not be read: {reason}")]
    InvalidResponse { operation: String, reason: String },
    /// Introspection says the access token is no longer active.
    #[error("HubSpot says the access token is not active")]
    InactiveToken,
    /// The client could not be built or a request could not be formed (bad base URL, TLS setup).
    #[error("HubSpot client setup: {0}")]
    Setup(String),
}

impl HubSpotError {
    pub fn class(&self) -> ErrorClass {
        match self {
            HubSpotError::Unauthorized(_) | HubSpotError::InactiveToken => ErrorClass::Reauth,
            HubSpotError::RateLimited(_)
            | HubSpotError::Unavailable(_)
            | HubSpotError::Timeout { .. }
            | HubSpotError::Connection { .. }
            // A garbled success body is most likely a proxy or a cut: the calls are idempotent,
            // and a lasting mismatch still ends in a DLQ after the queue's retries.
            | HubSpotError::InvalidResponse { .. } => ErrorClass::Retryable,
            HubSpotError::BadRequest(_)
            | HubSpotError::Forbidden(_)
            | HubSpotError::NotFound(_)
            | HubSpotError::Conflict(_)
            | HubSpotError::UnexpectedStatus(_)
            | HubSpotError::ResponseTooLarge { .. }
            | HubSpotError::Setup(_) => ErrorClass::Permanent,
        }
    }

    /// HubSpot's answer, when the failure is an HTTP status.
    pub fn response(&self) -> Option<&ErrorResponse> {
        match self {
            HubSpotError::BadRequest(r)
            | HubSpotError::Unauthorized(r)
            | HubSpotError::Forbidden(r)
            | HubSpotError::NotFound(r)
            | HubSpotError::Conflict(r)
            | HubSpotError::RateLimited(r)
            | HubSpotError::Unavailable(r)
            | HubSpotError::UnexpectedStatus(r) => Some(r),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        self.response().map(|r| r.status)
    }

    pub fn category(&self) -> Option<&str> {
        self.response()?.body.category.as_deref()
    }

    pub fn message(&self) -> Option<&str> {
        self.response()?.body.message.as_deref()
    }

    pub fn correlation_id(&self) -> Option<&str> {
        self.response()?.correlation_id.as_deref()
    }

    pub fn policy_name(&self) -> Option<&str> {
        self.response()?.body.policy_name.as_deref()
    }

    pub fn retry_after(&self) -> Option<Duration> {
        self.response()?.retry_after
    }

    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.response()?.rate_limit
    }

    /// Builds the error for a non-success status. `secrets` are the credentials the request
    /// carried; they are blanked out of anything HubSpot echoed.
    pub(crate) fn from_response(
        operation: &str,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        secrets: &[&Secret],
    ) -> HubSpotError {
        let mut body = ErrorBody::parse(body);
        body.redact(secrets);
        let header_correlation =
            headers.get("x-hubspot-correlation-id").and_then(|v| v.to_str().ok()).map(str::to_string);
        let response = Box::new(ErrorResponse {
            operation: operation.to_string(),
            status: status.as_u16(),
            correlation_id: body.correlation_id.clone().or(header_correlation),
            retry_after: rate_limit::retry_after(headers),
            rate_limit: RateLimit::from_headers(headers),
            body,
        });
        match status.as_u16() {
            400 => HubSpotError::BadRequest(response),
            401 => HubSpotError::Unauthorized(response),
            403 => HubSpotError::Forbidden(response),
            404 => HubSpotError::NotFound(response),
            409 => HubSpotError::Conflict(response),
            429 => HubSpotError::RateLimited(response),
            408 | 423 | 477 | 500..=599 => HubSpotError::Unavailable(response),
            _ => HubSpotError::UnexpectedStatus(response),
        }
    }

    /// A transport failure (its text never carries the URL: query strings stay out of logs).
    pub(crate) fn transport(operation: &str, err: crate::transport::TransportError) -> HubSpotError {
        use crate::transport::TransportError;
        let operation = operation.to_string();
        match err {
            TransportError::Timeout => HubSpotError::Timeout { operation },
            TransportError::Invalid(reason) | TransportError::Forbidden(reason) => HubSpotError::Setup(reason),
            source @ TransportError::Connection(_) => HubSpotError::Connection { operation, source },
        }
    }

    /// A body that does not decode. Only serde's position is kept, never its message: the
    /// message can quote the body, and a token response's body holds fresh tokens.
    pub(crate) fn invalid_json(operation: &str, err: &serde_json::Error) -> HubSpotError {
        HubSpotError::InvalidResponse {
            operation: operation.to_string(),
            reason: format!("{:?} error at line {} column {}", err.classify(), err.line(), err.column()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn error(status: u16, body: &str, headers: &[(&'static str, &'static str)]) -> HubSpotError {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, HeaderValue::from_static(v));
        }
        HubSpotError::from_response("test call", StatusCode::from_u16(status).unwrap(), &map, body.as_bytes(), &[])
    }

    #[test]
    fn validation_error_keeps_category_message_and_the_bad_property() {
        let body = r#"{"status":"error","message":"Property values were not valid: [{\"isValid\":false,\"message\":\"Property \\\"testproperty\\\" does not exist\",\"error\":\"PROPERTY_DOESNT_EXIST\",\"name\":\"testproperty\"}]","correlationId":"3d3e35b7-0001","errors":[{"message":"Property \"testproperty\" does not exist","code":"PROPERTY_DOESNT_EXIST","context":{"propertyName":["testproperty"]}}],"category":"VALIDATION_ERROR"}"#;
        let err = error(400, body, &[]);
        assert!(matches!(err, HubSpotError::BadRequest(_)));
        assert_eq!(err.class(), ErrorClass::Permanent);
        assert_eq!(err.category(), Some("VALIDATION_ERROR"));
        assert_eq!(err.correlation_id(), Some("3d3e35b7-0001"));
        let response = err.response().unwrap();
        assert_eq!(response.body.errors[0].code.as_deref(), Some("PROPERTY_DOESNT_EXIST"));
        assert_eq!(response.body.invalid_properties(), vec!["testproperty"]);
        assert!(err.to_string().contains("VALIDATION_ERROR"));
        assert!(err.to_string().contains("testproperty"));
    }

    #[test]
    fn invalid_option_is_found_in_the_embedded_list_alone() {
        let body = r#"{"status":"error","message":"Property values were not valid: [{\"isValid\":false,\"message\":\"gold was not one of the allowed options\",\"error\":\"INVALID_OPTION\",\"name\":\"tier\"}]","category":"VALIDATION_ERROR"}"#;
        assert_eq!(ErrorBody::parse(body.as_bytes()).invalid_properties(), vec!["tier"]);
    }

    #[test]
    fn missing_scopes_is_permanent_and_lists_the_scopes() {
        let body = r#"{"status":"error","message":"This app hasn't been granted all required scopes to make this call. Read more about required scopes here: https://developers.hubspot.com/scopes.","correlationId":"c-1","errors":[{"message":"One or more of the following scopes are required.","context":{"requiredGranularScopes":["crm.objects.deals.read"]}}],"links":{"scopes":"https://developers.hubspot.com/scopes"},"category":"MISSING_SCOPES"}"#;
        let err = error(403, body, &[]);
        assert!(matches!(err, HubSpotError::Forbidden(_)));
        assert_eq!(err.class(), ErrorClass::Permanent);
        assert_eq!(err.category(), Some("MISSING_SCOPES"));
        assert_eq!(err.response().unwrap().body.required_scopes(), vec!["crm.objects.deals.read"]);
    }

    #[test]
    fn expired_authentication_asks_for_reauth() {
        let body = r#"{"status":"error","message":"The OAuth token used to make this call expired 0 second(s) ago.","correlationId":"c-2","category":"EXPIRED_AUTHENTICATION","context":{"expire time":["2026-03-10T23:04:41.164Z"]}}"#;
        let err = error(401, body, &[]);
        assert_eq!(err.class(), ErrorClass::Reauth);
        assert_eq!(err.category(), Some("EXPIRED_AUTHENTICATION"));
        assert_eq!(err.response().unwrap().body.context["expire time"], vec!["2026-03-10T23:04:41.164Z"]);
    }

    #[test]
    fn ten_secondly_429_is_retryable_with_policy_and_headers() {
        let body = r#"{"status":"error","message":"You have reached your ten_secondly_rolling limit.","errorType":"RATE_LIMIT","correlationId":"c-3","policyName":"TEN_SECONDLY_ROLLING","requestId":"r-3"}"#;
        let err = error(
            429,
            body,
            &[
                ("x-hubspot-ratelimit-max", "110"),
                ("x-hubspot-ratelimit-remaining", "0"),
                ("x-hubspot-ratelimit-interval-milliseconds", "10000"),
                ("retry-after", "3"),
            ],
        );
        assert!(matches!(err, HubSpotError::RateLimited(_)));
        assert_eq!(err.class(), ErrorClass::Retryable);
        assert_eq!(err.policy_name(), Some("TEN_SECONDLY_ROLLING"));
        assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
        let limit = err.rate_limit().unwrap();
        assert_eq!((limit.max, limit.remaining), (Some(110), Some(0)));
        assert!(err.to_string().contains("TEN_SECONDLY_ROLLING"));
    }

    #[test]
    fn legacy_and_rfc6749_oauth_bodies_land_in_category() {
        let err = error(400, r#"{"status":"BAD_AUTH_CODE","message":"missing or unknown auth code"}"#, &[]);
        assert_eq!(err.category(), Some("BAD_AUTH_CODE"));
        assert_eq!(err.class(), ErrorClass::Permanent);
        let both = r#"{"error":"invalid_grant","error_description":"refresh token is invalid, expired or revoked","status":"BAD_REFRESH_TOKEN","message":"refresh token is invalid, expired or revoked"}"#;
        assert_eq!(error(400, both, &[]).category(), Some("BAD_REFRESH_TOKEN"));
        let rfc = r#"{"error":"invalid_grant","error_description":"bad code"}"#;
        let err = error(400, rfc, &[]);
        assert_eq!((err.category(), err.message()), (Some("invalid_grant"), Some("bad code")));
    }

    #[test]
    fn statuses_map_to_classes() {
        for (status, class) in [
            (404, ErrorClass::Permanent),
            (409, ErrorClass::Permanent),
            (423, ErrorClass::Retryable),
            (477, ErrorClass::Retryable),
            (500, ErrorClass::Retryable),
            (502, ErrorClass::Retryable),
            (524, ErrorClass::Retryable),
            (405, ErrorClass::Permanent),
        ] {
            assert_eq!(error(status, "", &[]).class(), class, "HTTP {status}");
        }
    }

    #[test]
    fn html_bodies_and_header_correlation_ids() {
        let err = error(502, "<html>Bad gateway</html>", &[("x-hubspot-correlation-id", "hdr-1")]);
        assert_eq!(err.category(), None);
        assert_eq!(err.correlation_id(), Some("hdr-1"));
        assert!(err.to_string().contains("HTTP 502"));
    }

    #[test]
    fn echoed_credentials_are_blanked() {
        let token = Secret::new("CJSP5qf1KhICAQEYs-gDIIGOBii1hQIyGQAf3xBKmlwHjX7OIpuIFEavB2-qYAGQsF4");
        let body = format!(
            r#"{{"category":"INVALID_AUTHENTICATION","message":"token {} is unknown","context":{{"token":["{}"]}},"errors":[{{"message":"bad {}"}}]}}"#,
            token.expose(),
            token.expose(),
            token.expose()
        );
        let err = HubSpotError::from_response(
            "call",
            StatusCode::UNAUTHORIZED,
            &HeaderMap::new(),
            body.as_bytes(),
            &[&token],
        );
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(token.expose()), "{shown}");
        assert!(shown.contains("token *** is unknown"));
    }

    #[test]
    fn batch_item_errors_name_their_records() {
        let body = r#"{"status":"error","category":"OBJECT_NOT_FOUND","message":"Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid.","context":{"ids":["1","2"]}}"#;
        let parsed = ErrorBody::parse(body.as_bytes());
        assert_eq!(parsed.ids(), vec!["1", "2"]);
        assert_eq!(parsed.class(), ErrorClass::Permanent);
        let traced = r#"{"status":"error","category":"VALIDATION_ERROR","context":{"objectWriteTraceId":["7"]}}"#;
        assert_eq!(ErrorBody::parse(traced.as_bytes()).trace_ids(), vec!["7"]);
    }
}
