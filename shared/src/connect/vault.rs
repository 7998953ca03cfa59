//! Encrypts a connection's OAuth tokens before they are stored: envelope encryption.
//!
//! Each connection's tokens are encrypted (AES-256-GCM) with a data key from [`DataKeys`] (KMS in
//! AWS), and the data key is stored beside them wrapped by the master key, bound to the
//! connection. Reading tokens therefore needs both the table and the right to unwrap with the
//! master key: a function whose role may not use the key (the webhook receiver) cannot read
//! tokens even though it reads the table. The connection id is also authenticated with the
//! ciphertext, so tokens copied onto another connection's row do not decrypt.
//!
//! Data keys are cached for a few minutes, unwrapped and for sealing, so a busy worker does not
//! call KMS for every record.
//!
//! Stored format: `v2:<wrapped data key>.<nonce and ciphertext>` (base64). Tokens stored as `v1:`
//! (AES-256-GCM directly under the app secret's `token_encryption_key`, before KMS) still open
//! with that key; their next refresh stores them as `v2`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::domain::{ConnectionId, Secret};
use crate::ports::{DataKeys, KeyError, SecretSource, master_cipher};

const V1: &str = "v1:";
const V2: &str = "v2:";
const NONCE_LEN: usize = 12;
/// How long a data key is reused (sealing) or kept unwrapped (opening) by one instance.
const KEY_CACHE_TTL: Duration = Duration::from_secs(5 * 60);
/// At most this many unwrapped data keys are kept; past it the cache starts afresh.
const KEY_CACHE_MAX: usize = 10_000;

/// A connection's OAuth tokens in the clear: only ever in memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthTokens {
    pub access_token: Secret,
    pub refresh_token: Secret,
}

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("stored tokens could not be decrypted: wrong key, wrong connection or corrupted data")]
    Undecryptable,
    #[error(
        "these tokens were stored before KMS encryption and the app secret no longer has its \
         `token_encryption_key`: put it back, or install the HubSpot app again"
    )]
    LegacyKeyMissing,
    #[error(transparent)]
    Keys(#[from] KeyError),
}

/// A data key ready for use: its cipher, and the wrapped form stored with what it seals.
#[derive(Clone)]
struct CachedKey {
    cipher: Arc<Aes256Gcm>,
    wrapped: Arc<Vec<u8>>,
    at: Instant,
}

pub struct TokenVault {
    keys: Arc<dyn DataKeys>,
    secrets: Arc<dyn SecretSource>,
    /// The data key each connection's seals use, for [`KEY_CACHE_TTL`].
    sealing: Mutex<HashMap<ConnectionId, CachedKey>>,
    /// Unwrapped data keys, by connection and wrapped form.
    opened: Mutex<HashMap<(ConnectionId, Vec<u8>), CachedKey>>,
}

impl TokenVault {
    /// `secrets` is read only for tokens stored in the `v1` format.
    pub fn new(keys: Arc<dyn DataKeys>, secrets: Arc<dyn SecretSource>) -> Self {
        TokenVault { keys, secrets, sealing: Mutex::default(), opened: Mutex::default() }
    }

    pub async fn seal(&self, connection: &ConnectionId, tokens: &OAuthTokens) -> Result<String, VaultError> {
        let key = self.sealing_key(connection).await?;
        let plaintext = serde_json::to_vec(tokens).expect("tokens serialise");
        Ok(format!("{V2}{}.{}", STANDARD.encode(key.wrapped.as_slice()), encrypt(&key.cipher, connection, &plaintext)))
    }

    pub async fn open(&self, connection: &ConnectionId, sealed: &str) -> Result<OAuthTokens, VaultError> {
        let plaintext = if let Some(rest) = sealed.strip_prefix(V2) {
            let (wrapped, body) = rest.split_once('.').ok_or(VaultError::Undecryptable)?;
            let wrapped = STANDARD.decode(wrapped).map_err(|_| VaultError::Undecryptable)?;
            let cipher = self.opening_key(connection, wrapped).await?;
            decrypt(&cipher, connection, body)?
        } else if let Some(body) = sealed.strip_prefix(V1) {
            let secrets = self.secrets.app_secrets().await.map_err(|e| KeyError::Unavailable(e.to_string()))?;
            let key = secrets.token_encryption_key.as_ref().ok_or(VaultError::LegacyKeyMissing)?;
            decrypt(&master_cipher(key.expose())?, connection, body)?
        } else {
            return Err(VaultError::Undecryptable);
        };
        serde_json::from_slice(&plaintext).map_err(|_| VaultError::Undecryptable)
    }

    async fn sealing_key(&self, connection: &ConnectionId) -> Result<CachedKey, VaultError> {
        if let Some(key) = lock(&self.sealing).get(connection).filter(|k| k.at.elapsed() < KEY_CACHE_TTL) {
            return Ok(key.clone());
        }
        let fresh = self.keys.generate(connection).await?;
        let key = CachedKey {
            cipher: Arc::new(Aes256Gcm::new_from_slice(&fresh.plaintext.0).expect("a 256-bit key")),
            wrapped: Arc::new(fresh.wrapped),
            at: Instant::now(),
        };
        let mut sealing = lock(&self.sealing);
        if sealing.len() >= KEY_CACHE_MAX {
            sealing.clear();
        }
        sealing.insert(connection.clone(), key.clone());
        Ok(key)
    }

    async fn opening_key(&self, connection: &ConnectionId, wrapped: Vec<u8>) -> Result<Arc<Aes256Gcm>, VaultError> {
        let id = (connection.clone(), wrapped);
        if let Some(key) = lock(&self.opened).get(&id).filter(|k| k.at.elapsed() < KEY_CACHE_TTL) {
            return Ok(key.cipher.clone());
        }
        let plain = self.keys.unwrap(connection, &id.1).await?;
        let cipher = Arc::new(Aes256Gcm::new_from_slice(&plain.0).expect("a 256-bit key"));
        let mut opened = lock(&self.opened);
        if opened.len() >= KEY_CACHE_MAX {
            opened.clear();
        }
        let wrapped = Arc::new(id.1.clone());
        opened.insert(id, CachedKey { cipher: cipher.clone(), wrapped, at: Instant::now() });
        Ok(cipher)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Base64 of a fresh nonce and the ciphertext, the connection authenticated with it.
fn encrypt(cipher: &Aes256Gcm, connection: &ConnectionId, plaintext: &[u8]) -> String {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let payload = Payload { msg: plaintext, aad: connection.as_str().as_bytes() };
    let ciphertext = cipher.encrypt(Nonce::from_slice(&nonce), payload).expect("AES-GCM encryption");
    let mut sealed = nonce.to_vec();
    sealed.extend(ciphertext);
    STANDARD.encode(sealed)
}

fn decrypt(cipher: &Aes256Gcm, connection: &ConnectionId, encoded: &str) -> Result<Vec<u8>, VaultError> {
    let bytes = STANDARD.decode(encoded).map_err(|_| VaultError::Undecryptable)?;
    if bytes.len() <= NONCE_LEN {
        return Err(VaultError::Undecryptable);
    }
    let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
    let payload = Payload { msg: ciphertext, aad: connection.as_str().as_bytes() };
    cipher.decrypt(Nonce::from_slice(nonce), payload).map_err(|_| VaultError::Undecryptable)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;

    use super::*;
    use crate::adapters::{AppSecretDataKeys, StaticSecrets};
    use crate::ports::{AppSecrets, DataKey, PlainKey};

    fn secrets(byte: u8) -> Arc<dyn SecretSource> {
        Arc::new(StaticSecrets::new(AppSecrets {
            client_id: "app".into(),
            client_secret: Secret::new("cs"),
            delivery_signing_secret: Secret::new("ds"),
            token_encryption_key: Some(Secret::new(STANDARD.encode([byte; 32]))),
            admin_api_key: None,
            developer_api_key: None,
        }))
    }

    fn vault(byte: u8) -> TokenVault {
        let secrets = secrets(byte);
        TokenVault::new(Arc::new(AppSecretDataKeys::new(secrets.clone())), secrets)
    }

    fn tokens() -> OAuthTokens {
        OAuthTokens { access_token: Secret::new("CJT-access-123"), refresh_token: Secret::new("na1-refresh-456") }
    }

    #[tokio::test]
    async fn sealed_tokens_open_only_with_the_same_master_key_and_connection() {
        let vault = vault(7);
        let conn = ConnectionId::new("conn_a");
        let sealed = vault.seal(&conn, &tokens()).await.unwrap();
        assert!(sealed.starts_with("v2:"), "{sealed}");
        assert!(!sealed.contains("access-123") && !sealed.contains("refresh-456"));
        assert_eq!(vault.open(&conn, &sealed).await.unwrap(), tokens());

        assert!(matches!(
            vault.open(&ConnectionId::new("conn_b"), &sealed).await,
            Err(VaultError::Keys(KeyError::Unwrap))
        ));
        assert!(matches!(super::tests::vault(8).open(&conn, &sealed).await, Err(VaultError::Keys(KeyError::Unwrap))));
        let mut tampered = sealed.clone();
        let at = sealed.len() - 5;
        tampered.replace_range(at..at + 1, if &sealed[at..at + 1] == "A" { "B" } else { "A" });
        assert!(matches!(vault.open(&conn, &tampered).await, Err(VaultError::Undecryptable)));
    }

    #[tokio::test]
    async fn tokens_stored_before_kms_still_open_with_the_old_key() {
        let conn = ConnectionId::new("conn_a");
        let old = master_cipher(&STANDARD.encode([7u8; 32])).unwrap();
        let sealed = format!("v1:{}", encrypt(&old, &conn, &serde_json::to_vec(&tokens()).unwrap()));
        assert_eq!(vault(7).open(&conn, &sealed).await.unwrap(), tokens());

        let without: Arc<dyn SecretSource> = Arc::new(StaticSecrets::new(AppSecrets {
            client_id: "app".into(),
            client_secret: Secret::new("cs"),
            delivery_signing_secret: Secret::new("ds"),
            token_encryption_key: None,
            admin_api_key: None,
            developer_api_key: None,
        }));
        let vault = TokenVault::new(Arc::new(AppSecretDataKeys::new(secrets(7))), without);
        assert!(matches!(vault.open(&conn, &sealed).await, Err(VaultError::LegacyKeyMissing)));
    }

    /// Counts the key service's calls.
    struct Counting {
        inner: AppSecretDataKeys,
        calls: AtomicUsize,
    }

    #[async_trait]
    impl DataKeys for Counting {
        async fn generate(&self, connection: &ConnectionId) -> Result<DataKey, KeyError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.inner.generate(connection).await
        }
        async fn unwrap(&self, connection: &ConnectionId, wrapped: &[u8]) -> Result<PlainKey, KeyError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.inner.unwrap(connection, wrapped).await
        }
    }

    #[tokio::test]
    async fn a_busy_instance_calls_the_key_service_once_per_connection_not_per_token() {
        let keys = Arc::new(Counting { inner: AppSecretDataKeys::new(secrets(7)), calls: AtomicUsize::new(0) });
        let vault = TokenVault::new(keys.clone(), secrets(7));
        let conn = ConnectionId::new("conn_a");
        let mut sealed = Vec::new();
        for _ in 0..20 {
            sealed.push(vault.seal(&conn, &tokens()).await.unwrap());
        }
        assert_ne!(sealed[0], sealed[1], "each seal has a fresh nonce");
        let other = TokenVault::new(keys.clone(), secrets(7));
        for seal in &sealed {
            assert_eq!(other.open(&conn, seal).await.unwrap(), tokens());
        }
        assert_eq!(keys.calls.load(Ordering::SeqCst), 2, "one data key made, and unwrapped once");
    }
}
