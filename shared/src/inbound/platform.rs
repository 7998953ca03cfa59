//! Delivering HubSpot changes to the platform's ingest endpoint: one signed POST per batch of
//! records, and the platform's answer per record.
//!
//! The request carries `X-Hubsync-Timestamp` (epoch ms) and `X-Hubsync-Signature: v1=<hex>`,
//! the HMAC-SHA256 of `<timestamp>.<body>` with the delivery signing secret. The platform
//! answers `{"results": [{"idempotency_key", "status": "applied" | "not_found" | "error",
//! "message"?}]}`.
//!
//! Each record carries `version_ms`, HubSpot's last-modified time of the version delivered, and
//! `field_versions_ms`, the version of each field's value: for a field mapped both ways, the
//! time the value was set in HubSpot. Newer wins, per field: the platform applies a field only
//! when its version is newer than the one it holds for that field, its own changes included
//! (their `changed_at`, as pushed). Two deliveries of one record (a webhook and a pull, say)
//! can be on the way at once and cross, and a platform change may be on its way to HubSpot
//! while a HubSpot change is on its way to the platform: per-field versions settle both the
//! same way on either side.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

use crate::domain::{ConnectionId, ObjectType, PortalId, Secret};
use crate::inbound::destination::{IngestPolicy, PublicResolver};
use crate::transport::{Network, ReadError, Transport, TransportError, read_limited};

/// The platform's answer is small; a larger one is refused rather than read.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub connection_id: ConnectionId,
    pub portal_id: PortalId,
    pub records: Vec<DeliveredRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveredRecord {
    /// Unique per record version: the platform applies each key once.
    pub idempotency_key: String,
    pub object: ObjectType,
    pub hubspot_id: String,
    /// The platform's key (the match key's value), when HubSpot still has the record.
    pub record_key: Option<String>,
    /// `created`, `changed`, `deleted`, `restored`, `merged`, or `trigger`.
    pub event: &'static str,
    /// For `trigger`: the trigger's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    /// HubSpot's last-modified time of the version delivered (epoch ms).
    pub version_ms: i64,
    /// Platform field → value, typed as the mapping says.
    pub fields: BTreeMap<String, Value>,
    /// Platform field → the version of its value (epoch ms): apply a field only if newer.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub field_versions_ms: BTreeMap<String, i64>,
    /// For `merged`: the HubSpot ids merged into `hubspot_id`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub merged_ids: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordStatus {
    Applied,
    /// The platform has no such record (it only updates existing users).
    NotFound,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RecordAnswer {
    pub idempotency_key: String,
    pub status: RecordStatus,
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Deserialize)]
struct Answer {
    results: Vec<RecordAnswer>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Down, slow, or 5xx/429: try again later.
    #[error("the platform did not take the delivery: {0}")]
    Retryable(String),
    /// The platform refused the request itself (4xx): retrying will not help.
    #[error("the platform refused the delivery: {0}")]
    Refused(String),
    /// Not sent: the ingest URL is not one the deployment delivers to (see `destination`).
    #[error("the delivery was not sent: {0}")]
    NotAllowed(String),
}

#[derive(Clone)]
pub struct PlatformClient {
    /// Builds requests; `transport` sends them.
    http: reqwest::Client,
    transport: Arc<dyn Transport>,
    policy: IngestPolicy,
}

impl PlatformClient {
    /// Delivers only where `policy` allows (see [`crate::inbound::destination`]).
    pub fn new(policy: IngestPolicy) -> Self {
        let mut builder =
            reqwest::Client::builder().timeout(DELIVERY_TIMEOUT).redirect(reqwest::redirect::Policy::none());
        if !policy.allow_local {
            builder = builder.dns_resolver(Arc::new(PublicResolver));
        }
        let http = builder.build().expect("an HTTP client with rustls");
        PlatformClient { http: http.clone(), transport: Network::shared(http), policy }
    }

    /// A client whose deliveries go through `transport` (a simulation's in-process router, say).
    pub fn with_transport(transport: Arc<dyn Transport>, policy: IngestPolicy) -> Self {
        PlatformClient { http: reqwest::Client::new(), transport, policy }
    }

    /// Posts a delivery; returns the platform's answer by idempotency key.
    pub async fn deliver(
        &self,
        ingest_url: &str,
        signing_secret: &Secret,
        now_ms: i64,
        delivery: &Delivery,
    ) -> Result<HashMap<String, RecordAnswer>, DeliveryError> {
        let ingest_url = self.policy.check(ingest_url).map_err(DeliveryError::NotAllowed)?;
        let body = serde_json::to_vec(delivery).expect("a delivery serialises");
        let timestamp = now_ms.to_string();
        let request = self
            .http
            .post(ingest_url)
            .timeout(DELIVERY_TIMEOUT)
            .header("content-type", "application/json")
            .header("x-hubsync-timestamp", &timestamp)
            .header("x-hubsync-signature", format!("v1={}", sign(signing_secret, &timestamp, &body)))
            .body(body)
            .build()
            .map_err(|e| DeliveryError::Refused(format!("the ingest URL cannot be called: {}", e.without_url())))?;
        let response = self.transport.send(request).await.map_err(|e| match e {
            TransportError::Forbidden(reason) => DeliveryError::NotAllowed(reason),
            other => DeliveryError::Retryable(other.to_string()),
        })?;
        let status = response.status();
        let answer = read_limited(response, MAX_ANSWER_BYTES).await.map_err(|err| match err {
            ReadError::TooLarge => DeliveryError::Retryable(format!("the answer is over {MAX_ANSWER_BYTES} bytes")),
            ReadError::Transport(err) => DeliveryError::Retryable(err.to_string()),
        })?;
        if status.as_u16() == 429 || status.is_server_error() {
            return Err(DeliveryError::Retryable(format!("HTTP {status}")));
        }
        if status.is_redirection() {
            return Err(DeliveryError::Refused(format!(
                "HTTP {status}: the ingest endpoint redirects, and hubsync follows no redirects: give its final URL"
            )));
        }
        // The status only: the platform's error page is its own business, not the run's.
        if !status.is_success() {
            return Err(DeliveryError::Refused(format!("HTTP {status}")));
        }
        let answer: Answer = serde_json::from_slice(&answer)
            .map_err(|e| DeliveryError::Retryable(format!("the answer is not `{{\"results\": [...]}}`: {e}")))?;
        Ok(answer.results.into_iter().map(|r| (r.idempotency_key.clone(), r)).collect())
    }
}

/// `hex(HMAC-SHA256(secret, "<timestamp>.<body>"))`: what the platform recomputes to trust a delivery.
pub fn sign(secret: &Secret, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// The platform's check of a delivery: `signature` is the `X-Hubsync-Signature` header
/// (`v1=<hex>`), `timestamp` the `X-Hubsync-Timestamp` header. Compared in constant time.
pub fn verify(secret: &Secret, timestamp: &str, body: &[u8], signature: &str) -> bool {
    let expected = format!("v1={}", sign(secret, timestamp, body));
    subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), signature.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_signed_timestamp_and_body_with_the_right_secret_verify() {
        let secret = Secret::new("delivery-secret");
        let signature = format!("v1={}", sign(&secret, "1700000000000", b"{\"records\":[]}"));
        assert!(verify(&secret, "1700000000000", b"{\"records\":[]}", &signature));
        assert!(!verify(&secret, "1700000000001", b"{\"records\":[]}", &signature), "another timestamp");
        assert!(!verify(&secret, "1700000000000", b"{\"records\":[1]}", &signature), "another body");
        assert!(!verify(&Secret::new("other"), "1700000000000", b"{\"records\":[]}", &signature), "another secret");
        assert!(!verify(&secret, "1700000000000", b"{\"records\":[]}", &signature[3..]), "without the scheme");
    }
}
