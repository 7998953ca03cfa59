//! Encrypts a connection's OAuth tokens before they are stored (AES-256-GCM, key from the app
//! secret). The connection id is authenticated with the ciphertext, so tokens copied onto
//! another connection's row do not decrypt.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::domain::{ConnectionId, Secret};

const VERSION_PREFIX: &str = "v1:";
const NONCE_LEN: usize = 12;

/// A connection's OAuth tokens in the clear: only ever in memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthTokens {
    pub access_token: Secret,
    pub refresh_token: Secret,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VaultError {
    #[error("the token encryption key must be base64 of exactly 32 bytes (e.g. `openssl rand -base64 32`)")]
    BadKey,
    #[error("stored tokens could not be decrypted: wrong key, wrong connection or corrupted data")]
    Undecryptable,
}

pub struct TokenVault {
    cipher: Aes256Gcm,
}

impl TokenVault {
    pub fn new(key: &Secret) -> Result<Self, VaultError> {
        let bytes = STANDARD.decode(key.expose().trim()).map_err(|_| VaultError::BadKey)?;
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| VaultError::BadKey)?;
        Ok(TokenVault { cipher })
    }

    pub fn seal(&self, connection: &ConnectionId, tokens: &OAuthTokens) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let plaintext = serde_json::to_vec(tokens).expect("tokens serialise");
        let payload = Payload { msg: &plaintext, aad: connection.as_str().as_bytes() };
        let ciphertext = self.cipher.encrypt(Nonce::from_slice(&nonce), payload).expect("AES-GCM encryption");
        let mut sealed = nonce.to_vec();
        sealed.extend(ciphertext);
        format!("{VERSION_PREFIX}{}", STANDARD.encode(sealed))
    }

    pub fn open(&self, connection: &ConnectionId, sealed: &str) -> Result<OAuthTokens, VaultError> {
        let encoded = sealed.strip_prefix(VERSION_PREFIX).ok_or(VaultError::Undecryptable)?;
        let bytes = STANDARD.decode(encoded).map_err(|_| VaultError::Undecryptable)?;
        if bytes.len() <= NONCE_LEN {
            return Err(VaultError::Undecryptable);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let payload = Payload { msg: ciphertext, aad: connection.as_str().as_bytes() };
        let plaintext =
            self.cipher.decrypt(Nonce::from_slice(nonce), payload).map_err(|_| VaultError::Undecryptable)?;
        serde_json::from_slice(&plaintext).map_err(|_| VaultError::Undecryptable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Secret {
        Secret::new(STANDARD.encode([byte; 32]))
    }

    fn tokens() -> OAuthTokens {
        OAuthTokens { access_token: Secret::new("CJT-access-123"), refresh_token: Secret::new("na1-refresh-456") }
    }

    #[test]
    fn sealed_tokens_open_only_with_the_same_key_and_connection() {
        let vault = TokenVault::new(&key(7)).unwrap();
        let conn = ConnectionId::new("conn_a");
        let sealed = vault.seal(&conn, &tokens());
        assert!(!sealed.contains("access-123") && !sealed.contains("refresh-456"));
        assert_eq!(vault.open(&conn, &sealed).unwrap(), tokens());

        assert_eq!(vault.open(&ConnectionId::new("conn_b"), &sealed), Err(VaultError::Undecryptable));
        assert_eq!(TokenVault::new(&key(8)).unwrap().open(&conn, &sealed), Err(VaultError::Undecryptable));
        let mut tampered = sealed.clone();
        tampered.replace_range(10..11, if &sealed[10..11] == "A" { "B" } else { "A" });
        assert_eq!(vault.open(&conn, &tampered), Err(VaultError::Undecryptable));
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        let vault = TokenVault::new(&key(7)).unwrap();
        let conn = ConnectionId::new("conn_a");
        assert_ne!(vault.seal(&conn, &tokens()), vault.seal(&conn, &tokens()));
    }

    #[test]
    fn a_key_of_the_wrong_size_is_refused() {
        assert!(TokenVault::new(&Secret::new(STANDARD.encode([1u8; 16]))).is_err());
        assert!(TokenVault::new(&Secret::new("not base64!")).is_err());
    }
}
