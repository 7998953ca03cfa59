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
    /// Base64 of 32 random bytes: the AES-256-GCM key that encrypts stored tokens.
    pub token_encryption_key: Secret,
}

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error(
        "secret `{name}` is not valid: {reason}. It must be a JSON object with the strings client_id, \
         client_secret, delivery_signing_secret and token_encryption_key"
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
        for field in ["client_id", "client_secret", "delivery_signing_secret", "token_encryption_key"] {
            match object.get(field) {
                Some(serde_json::Value::String(s)) if !s.is_empty() => {}
                Some(_) => return Err(invalid(format!("`{field}` must be a non-empty string"))),
                None => return Err(invalid(format!("`{field}` is missing"))),
            }
        }
        serde_json::from_value(value).map_err(|_| invalid("unexpected shape".to_string()))
    }
}

#[async_trait]
pub trait SecretSource: Send + Sync {
    /// The app secrets, fetched once per cold start and then served from memory.
    async fn app_secrets(&self) -> Result<Arc<AppSecrets>, SecretsError>;
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
