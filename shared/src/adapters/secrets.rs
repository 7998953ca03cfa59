//! App secrets from AWS Secrets Manager (held for [`SECRET_TTL`], so a rotation reaches warm
//! instances), or given directly for the local runner and tests.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata};

use crate::ports::{AppSecrets, SecretSource, SecretsError};

/// How long an instance uses the secret it read before reading it again.
pub const SECRET_TTL: Duration = Duration::from_secs(5 * 60);

pub struct SecretsManagerSource {
    client: Client,
    secret_id: String,
    /// The secret read last, and when.
    cached: Mutex<Option<(Arc<AppSecrets>, Instant)>>,
}

impl SecretsManagerSource {
    pub fn new(client: Client, secret_id: impl Into<String>) -> Self {
        SecretsManagerSource { client, secret_id: secret_id.into(), cached: Mutex::new(None) }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Option<(Arc<AppSecrets>, Instant)>> {
        self.cached.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn fetch(&self) -> Result<Arc<AppSecrets>, SecretsError> {
        let out = self.client.get_secret_value().secret_id(&self.secret_id).send().await.map_err(|err| {
            if err.as_service_error().and_then(|e| e.code()) == Some("ResourceNotFoundException") {
                SecretsError::NotFound(self.secret_id.clone())
            } else {
                SecretsError::Unavailable(DisplayErrorContext(err).to_string())
            }
        })?;
        let json = out.secret_string().ok_or_else(|| SecretsError::Invalid {
            name: self.secret_id.clone(),
            reason: "it has no string value".into(),
        })?;
        Ok(Arc::new(AppSecrets::from_json(&self.secret_id, json)?))
    }
}

#[async_trait]
impl SecretSource for SecretsManagerSource {
    async fn app_secrets(&self) -> Result<Arc<AppSecrets>, SecretsError> {
        let held = self.held().clone();
        if let Some((secrets, at)) = &held
            && at.elapsed() < SECRET_TTL
        {
            return Ok(secrets.clone());
        }
        match self.fetch().await {
            Ok(fresh) => {
                *self.held() = Some((fresh.clone(), Instant::now()));
                Ok(fresh)
            }
            // Secrets Manager failing for a moment should not stop work the held secret can do.
            Err(SecretsError::Unavailable(reason)) if held.is_some() => {
                tracing::warn!(%reason, "could not re-read the app secret; using the one held");
                Ok(held.expect("checked").0)
            }
            Err(err) => Err(err),
        }
    }

    fn invalidate(&self) {
        *self.held() = None;
    }
}

/// Secrets given at start-up.
pub struct StaticSecrets(Arc<AppSecrets>);

impl StaticSecrets {
    pub fn new(secrets: AppSecrets) -> Self {
        StaticSecrets(Arc::new(secrets))
    }
}

#[async_trait]
impl SecretSource for StaticSecrets {
    async fn app_secrets(&self) -> Result<Arc<AppSecrets>, SecretsError> {
        Ok(self.0.clone())
    }
}
