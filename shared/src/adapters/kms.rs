//! Data keys from AWS KMS: `GenerateDataKey` under the deployment's key (template.yaml's
//! `TokenKey`), `Decrypt` to unwrap, each bound to its connection by the encryption context
//! `{"connection_id": …}`, which KMS checks on every decrypt and CloudTrail records.

use async_trait::async_trait;
use aws_sdk_kms::Client;
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;

use crate::domain::ConnectionId;
use crate::ports::{DataKey, DataKeys, KeyError, PlainKey};

/// The encryption context key; template.yaml's `TokenKeyPolicy` allows the key only with it.
const CONTEXT_KEY: &str = "connection_id";

pub struct KmsDataKeys {
    client: Client,
    key_id: String,
}

impl KmsDataKeys {
    pub fn new(client: Client, key_id: impl Into<String>) -> Self {
        KmsDataKeys { client, key_id: key_id.into() }
    }
}

fn plain(bytes: Option<&Blob>) -> Result<PlainKey, KeyError> {
    let bytes = bytes.ok_or_else(|| KeyError::Unavailable("KMS returned no plaintext".into()))?;
    let key: [u8; 32] = bytes
        .as_ref()
        .try_into()
        .map_err(|_| KeyError::Unavailable("KMS returned a key that is not 256-bit".into()))?;
    Ok(PlainKey(key))
}

#[async_trait]
impl DataKeys for KmsDataKeys {
    async fn generate(&self, connection: &ConnectionId) -> Result<DataKey, KeyError> {
        let out = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .encryption_context(CONTEXT_KEY, connection.as_str())
            .send()
            .await
            .map_err(|err| KeyError::Unavailable(DisplayErrorContext(err).to_string()))?;
        let wrapped = out
            .ciphertext_blob()
            .ok_or_else(|| KeyError::Unavailable("KMS returned no wrapped key".into()))?
            .as_ref()
            .to_vec();
        Ok(DataKey { plaintext: plain(out.plaintext())?, wrapped })
    }

    async fn unwrap(&self, connection: &ConnectionId, wrapped: &[u8]) -> Result<PlainKey, KeyError> {
        let out = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(wrapped))
            .encryption_context(CONTEXT_KEY, connection.as_str())
            .send()
            .await
            .map_err(|err| match err.as_service_error().and_then(|e| e.code()) {
                // Another connection's context, another key, or a damaged blob.
                Some("InvalidCiphertextException" | "IncorrectKeyException") => KeyError::Unwrap,
                _ => KeyError::Unavailable(DisplayErrorContext(err).to_string()),
            })?;
        plain(out.plaintext())
    }
}
