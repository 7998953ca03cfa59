//! Data keys wrapped by a master key from the app secret (`token_encryption_key`): for the local
//! runner and in-process tests, where there is no KMS. The stored format is the one KMS keys give.

use std::sync::Arc;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use rand::RngCore;

use crate::domain::ConnectionId;
use crate::ports::{DataKey, DataKeys, KeyError, PlainKey, SecretSource, master_cipher};

const NONCE_LEN: usize = 12;

pub struct AppSecretDataKeys {
    secrets: Arc<dyn SecretSource>,
}

impl AppSecretDataKeys {
    pub fn new(secrets: Arc<dyn SecretSource>) -> Self {
        AppSecretDataKeys { secrets }
    }

    async fn master(&self) -> Result<Aes256Gcm, KeyError> {
        let secrets = self.secrets.app_secrets().await.map_err(|e| KeyError::Unavailable(e.to_string()))?;
        let key = secrets.token_encryption_key.as_ref().ok_or_else(|| {
            KeyError::Unavailable("the app secret has no `token_encryption_key` to wrap data keys with".into())
        })?;
        master_cipher(key.expose())
    }
}

#[async_trait]
impl DataKeys for AppSecretDataKeys {
    async fn generate(&self, connection: &ConnectionId) -> Result<DataKey, KeyError> {
        let master = self.master().await?;
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload { msg: &key, aad: connection.as_str().as_bytes() };
        let sealed = master.encrypt(Nonce::from_slice(&nonce), payload).expect("AES-GCM encryption");
        let mut wrapped = nonce.to_vec();
        wrapped.extend(sealed);
        Ok(DataKey { plaintext: PlainKey(key), wrapped })
    }

    async fn unwrap(&self, connection: &ConnectionId, wrapped: &[u8]) -> Result<PlainKey, KeyError> {
        let master = self.master().await?;
        if wrapped.len() <= NONCE_LEN {
            return Err(KeyError::Unwrap);
        }
        let (nonce, sealed) = wrapped.split_at(NONCE_LEN);
        let payload = Payload { msg: sealed, aad: connection.as_str().as_bytes() };
        let key = master.decrypt(Nonce::from_slice(nonce), payload).map_err(|_| KeyError::Unwrap)?;
        Ok(PlainKey(key.try_into().map_err(|_| KeyError::Unwrap)?))
    }
}
