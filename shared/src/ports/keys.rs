//! Data keys for envelope encryption: each connection's tokens are encrypted with a data key,
//! and only the data key, wrapped by a master key that never leaves the key service, is stored
//! beside them. In AWS the master key is a KMS key; locally it comes from the app secret.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::KeyInit;
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::domain::ConnectionId;

/// A fresh 256-bit data key: used in memory, stored only wrapped.
pub struct DataKey {
    pub plaintext: PlainKey,
    /// The key encrypted by the master key, bound to the connection it was made for.
    pub wrapped: Vec<u8>,
}

/// A data key in the clear. It never formats its bytes.
#[derive(Clone)]
pub struct PlainKey(pub [u8; 32]);

impl std::fmt::Debug for PlainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlainKey(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The wrapped key does not unwrap: another master key, another connection, or corrupted.
    #[error("the data key could not be unwrapped: wrong master key, wrong connection or corrupted data")]
    Unwrap,
    /// The key service refused or failed; the message says which (access denied, throttled...).
    #[error("the key service is unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait DataKeys: Send + Sync {
    /// A new data key for `connection`'s tokens; its wrapping names the connection (KMS's
    /// encryption context), so it unwraps for that connection only.
    async fn generate(&self, connection: &ConnectionId) -> Result<DataKey, KeyError>;
    /// The plaintext of a data key `generate` made for `connection`.
    async fn unwrap(&self, connection: &ConnectionId, wrapped: &[u8]) -> Result<PlainKey, KeyError>;
}

/// The AES-256-GCM cipher of a configured key: base64 of exactly 32 bytes.
pub fn master_cipher(key: &str) -> Result<Aes256Gcm, KeyError> {
    let bad_key = || {
        KeyError::Unavailable(
            "`token_encryption_key` must be base64 of exactly 32 bytes (`openssl rand -base64 32`)".into(),
        )
    };
    let bytes = STANDARD.decode(key.trim()).map_err(|_| bad_key())?;
    Aes256Gcm::new_from_slice(&bytes).map_err(|_| bad_key())
}
