//! App secrets from AWS Secrets Manager (cached per cold start), or given directly for the
//! local runner and tests.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata};
use tokio::sync::OnceCell;

use crate::ports::{AppSecrets, SecretSource, SecretsError};

pub struct SecretsManagerSource {
    client: Client,
    secret_id: String,
    cached: OnceCell<Arc<AppSecrets>>,
}

impl SecretsManagerSource {
    pub fn new(client: Client, secret_id: impl Into<String>) -> Self {
        SecretsManagerSource { client, secret_id: secret_id.into(), cached: OnceCell::new() }
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
        // A failed fetch is not cached: the next call tries again.
        self.cached.get_or_try_init(|| self.fetch()).await.cloned()
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
