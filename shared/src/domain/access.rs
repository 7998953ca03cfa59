//! Records that grant or prove access: OAuth states, console API keys, stored tokens,
//! and the webhook de-duplication keys that make a retried delivery count once.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use super::{ConnectionId, Secret, TenantId};

/// How long an OAuth `state` stays usable: enough for a person to click through HubSpot's consent.
pub const OAUTH_STATE_TTL: Duration = Duration::minutes(10);

/// 32 random bytes, URL-safe: unguessable tokens for states and API keys.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The single-use `state` of one OAuth install, bound to the tenant and where to send them back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthState {
    pub state: String,
    pub tenant_id: TenantId,
    pub return_to: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

impl OAuthState {
    pub fn issue(tenant_id: TenantId, return_to: String, now: OffsetDateTime) -> Self {
        OAuthState { state: random_token(), tenant_id, return_to, expires_at: now + OAUTH_STATE_TTL }
    }

    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        now >= self.expires_at
    }
}

/// A key remembered for a while so that the same delivery is processed once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DedupKey {
    pub key: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// A console API key as stored: only its SHA-256 is kept, so a leaked table leaks no keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// A short public id, shown in the console to tell keys apart.
    pub key_id: String,
    pub tenant_id: TenantId,
    pub key_hash: String,
    pub label: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// After this the key is refused; `None`: until revoked.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<OffsetDateTime>,
}

impl ApiKeyRecord {
    /// Makes a new key: the plaintext is returned once, to show the user; only the hash is stored.
    pub fn generate(tenant_id: TenantId, label: String, now: OffsetDateTime) -> (Secret, ApiKeyRecord) {
        let key_id = random_token()[..10].to_string();
        let plaintext = format!("hsk_{key_id}_{}", random_token());
        let record = ApiKeyRecord {
            key_hash: hash_api_key(&plaintext),
            key_id,
            tenant_id,
            label,
            created_at: now,
            expires_at: None,
        };
        (Secret::new(plaintext), record)
    }

    /// The start of the plaintext, enough to tell keys apart and nothing more.
    pub fn prefix(&self) -> String {
        format!("hsk_{}_", self.key_id)
    }

    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|expires_at| now >= expires_at)
    }
}

/// Keys are 256-bit random values, so a plain SHA-256 is enough: there is nothing to brute-force.
pub fn hash_api_key(plaintext: &str) -> String {
    let digest = Sha256::digest(plaintext.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A connection's OAuth tokens as stored: sealed (encrypted) by the token vault, opaque here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub connection_id: ConnectionId,
    /// The encrypted access and refresh tokens.
    pub sealed: String,
    #[serde(with = "time::serde::rfc3339")]
    pub access_expires_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
    }

    #[test]
    fn oauth_states_are_unique_and_expire_after_ten_minutes() {
        let a = OAuthState::issue(TenantId::new("t"), "https://console".into(), now());
        let b = OAuthState::issue(TenantId::new("t"), "https://console".into(), now());
        assert_ne!(a.state, b.state);
        assert!(!a.is_expired(now() + Duration::minutes(9)));
        assert!(a.is_expired(now() + Duration::minutes(10)));
    }

    #[test]
    fn api_keys_are_stored_only_as_hashes() {
        let (plaintext, record) = ApiKeyRecord::generate(TenantId::new("t"), "ci".into(), now());
        assert_eq!(record.key_hash, hash_api_key(plaintext.expose()));
        assert!(!serde_json::to_string(&record).unwrap().contains(plaintext.expose()));
        assert!(plaintext.expose().starts_with(&record.prefix()));
    }

    #[test]
    fn a_key_with_an_expiry_is_refused_from_then_on() {
        let (_, mut record) = ApiKeyRecord::generate(TenantId::new("t"), "ci".into(), now());
        assert!(!record.is_expired(now() + Duration::days(3650)), "no expiry: until revoked");
        record.expires_at = Some(now() + Duration::days(1));
        assert!(!record.is_expired(now()));
        assert!(record.is_expired(now() + Duration::days(1)));
    }
}
