//! Delivering HubSpot changes to the platform's ingest endpoint: one signed POST per batch of
//! records, and the platform's answer per record.
//!
//! The request carries `X-Hubsync-Timestamp` (epoch ms) and `X-Hubsync-Signature: v1=<hex>`,
//! the HMAC-SHA256 of `<timestamp>.<body>` with the delivery signing secret. The platform
//! answers `{"results": [{"idempotency_key", "status": "applied" | "not_found" | "error",
//! "message"?}]}`.
//!
//! Each record carries `version_ms`, HubSpot's last-modified time of the version delivered.
//! hubsync never delivers a version older than one the platform applied, but two deliveries of
//! one record (a webhook and a pull, say) can be on the way at once and cross: the platform
//! applies a record only when its `version_ms` is newer than the version it holds.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

use crate::domain::{ConnectionId, ObjectType, PortalId, Secret};

/// The platform's answer is small; a larger one is refused rather than read.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(15);

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
}

#[derive(Clone)]
pub struct PlatformClient {
    http: reqwest::Client,
}

impl PlatformClient {
    pub fn new() -> Self {
        let http = reqwest::Client::builder().timeout(TIMEOUT).build().expect("an HTTP client with rustls");
        PlatformClient { http }
    }

    /// Posts a delivery; returns the platform's answer by idempotency key.
    pub async fn deliver(
        &self,
        ingest_url: &str,
        signing_secret: &Secret,
        now_ms: i64,
        delivery: &Delivery,
    ) -> Result<HashMap<String, RecordAnswer>, DeliveryError> {
        let body = serde_json::to_vec(delivery).expect("a delivery serialises");
        let timestamp = now_ms.to_string();
        let response = self
            .http
            .post(ingest_url)
            .header("content-type", "application/json")
            .header("x-hubsync-timestamp", &timestamp)
            .header("x-hubsync-signature", format!("v1={}", sign(signing_secret, &timestamp, &body)))
            .body(body)
            .send()
            .await
            .map_err(|e| DeliveryError::Retryable(e.without_url().to_string()))?;
        let status = response.status();
        let answer = read_limited(response).await?;
        if status.as_u16() == 429 || status.is_server_error() {
            return Err(DeliveryError::Retryable(format!("HTTP {status}")));
        }
        if !status.is_success() {
            let text = String::from_utf8_lossy(&answer[..answer.len().min(300)]).into_owned();
            return Err(DeliveryError::Refused(format!("HTTP {status}: {text}")));
        }
        let answer: Answer = serde_json::from_slice(&answer)
            .map_err(|e| DeliveryError::Retryable(format!("the answer is not `{{\"results\": [...]}}`: {e}")))?;
        Ok(answer.results.into_iter().map(|r| (r.idempotency_key.clone(), r)).collect())
    }
}

impl Default for PlatformClient {
    fn default() -> Self {
        PlatformClient::new()
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

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, DeliveryError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| DeliveryError::Retryable(e.without_url().to_string()))? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(DeliveryError::Retryable(format!("the answer is over {MAX_ANSWER_BYTES} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
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
