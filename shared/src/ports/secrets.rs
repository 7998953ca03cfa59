use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use crate::domain::Secret;

/// The app's secrets: one JSON secret in Secrets Manager, or local config for the local runner.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AppSecrets {
    /// The HubSpot app's client id (not secret, but it travels with the secret).
    pub client_id: String,
    /// The HubSpot app's client secret; it also signs HubSpot's webhooks.
    pub client_secret: Secret,
    /// Signs hubsync's deliveries to the platform's ingest URL.
    pub delivery_signing_secret: Secret,
    /// Base64 of 32 random bytes. In AWS, only for tokens stored before they were encrypted
    /// under KMS (they open with it until their next refresh re-encrypts them); locally, the
    /// master key that wraps data keys.
    #[serde(default, deserialize_with = "non_empty")]
    pub token_encryption_key: Option<Secret>,
    /// The platform team's key to the admin API (tenants, their keys, every connection's
    /// health). Without it the admin API refuses every request.
    #[serde(default, deserialize_with = "non_empty")]
    pub admin_api_key: Option<Secret>,
    /// The HubSpot developer account's API key, which manages the app's webhook settings and
    /// subscriptions. With it, hubsync keeps the subscriptions in line with the configs.
    #[serde(default, deserialize_with = "non_empty")]
    pub developer_api_key: Option<Secret>,
}

/// An admin key shorter than this is refused: it guards every tenant.
pub const MIN_ADMIN_KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error(
        "secret `{name}` is not valid: {reason}. It must be a JSON object with the strings client_id, \
         client_secret and delivery_signing_secret (and optionally token_encryption_key, admin_api_key and developer_api_key)"
    )]
    Invalid { name: String, reason: String },
    #[error("secret `{0}` was not found")]
    NotFound(String),
    #[error("the secret store is unavailable: {0}")]
    Unavailable(String),
}

impl AppSecrets {
    /// Parses the secret's JSON. Errors name the field that is wrong, never a value.
    pub fn from_json(name: &str, json: &str) -> Result<AppSecrets, SecretsError> {
        let invalid = |reason: String| SecretsError::Invalid { name: name.to_string(), reason };
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|_| invalid("it is not valid JSON".to_string()))?;
        let object = value.as_object().ok_or_else(|| invalid("it is not a JSON object".to_string()))?;
        for field in ["client_id", "client_secret", "delivery_signing_secret"] {
            match object.get(field) {
                Some(serde_json::Value::String(s)) if !s.is_empty() => {}
                Some(_) => return Err(invalid(format!("`{field}` must be a non-empty string"))),
                None => return Err(invalid(format!("`{field}` is missing"))),
            }
        }
        for field in ["token_encryption_key", "admin_api_key", "developer_api_key"] {
            if object.get(field).is_some_and(|v| !v.is_string()) {
                return Err(invalid(format!("`{field}` must be a string")));
            }
        }
        if let Some(key) = object.get("admin_api_key").and_then(|v| v.as_str())
            && !key.trim().is_empty()
            && key.trim().len() < MIN_ADMIN_KEY_LEN
        {
            return Err(invalid(format!(
                "`admin_api_key` must be at least {MIN_ADMIN_KEY_LEN} characters: make one with `openssl rand -hex 32`"
            )));
        }
        serde_json::from_value(value).map_err(|_| invalid("unexpected shape".to_string()))
    }
}

/// An optional secret string, absent when empty.
fn non_empty<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Secret>, D::Error> {
    let value = Option::<String>::deserialize(deserializer)?;
    Ok(value.filter(|v| !v.trim().is_empty()).map(Secret::new))
}

#[async_trait]
pub trait SecretSource: Send + Sync {
    /// The app secrets, served from memory for a few minutes at a time, so a rotated secret
    /// reaches warm instances without a restart.
    async fn app_secrets(&self) -> Result<Arc<AppSecrets>, SecretsError>;
    /// Forgets what is held, so the next read fetches the secret again: HubSpot refused the
    /// app's client credentials, which a rotation explains.
    fn invalidate(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_field_is_named() {
        let err = AppSecrets::from_json("hubsync/app", r#"{"client_id":"x","client_secret":"s3cr3t"}"#).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("delivery_signing_secret"), "{message}");
        assert!(!message.contains("s3cr3t"));
    }

    #[test]
    fn a_short_admin_key_is_refused_without_being_echoed() {
        let base = r#""client_id":"x","client_secret":"s","delivery_signing_secret":"d""#;
        let err =
            AppSecrets::from_json("hubsync/app", &format!(r#"{{{base},"admin_api_key":"hunter2"}}"#)).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("at least 32 characters"), "{message}");
        assert!(!message.contains("hunter2"));
        let long = "a".repeat(MIN_ADMIN_KEY_LEN);
        let secrets = AppSecrets::from_json("hubsync/app", &format!(r#"{{{base},"admin_api_key":"{long}"}}"#)).unwrap();
        assert_eq!(secrets.admin_api_key.map(|k| k.expose().len()), Some(MIN_ADMIN_KEY_LEN));
        let none = AppSecrets::from_json("hubsync/app", &format!(r#"{{{base},"admin_api_key":""}}"#)).unwrap();
        assert!(none.admin_api_key.is_none(), "empty: no admin API");
    }

    #[test]
    fn malformed_json_does_not_echo_the_secret() {
        let err = AppSecrets::from_json("hubsync/app", "s3cr3t-not-json").unwrap_err();
        assert!(!err.to_string().contains("s3cr3t"));
        let err = AppSecrets::from_json(
            "hubsync/app",
            r#"{"client_id":"x","client_secret":["s3cr3t"],"delivery_signing_secret":"d","token_encryption_key":"k"}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("`client_secret` must be a non-empty string"));
        assert!(!err.to_string().contains("s3cr3t"));
    }
}
