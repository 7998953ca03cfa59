//! The local runner's state directory, so a restart finds what the run before it left: hubsync's
//! store (`hubsync.redb`: tenants, connections, configs, tokens, record states, runs...), the
//! simulator's state (`hubspot-sim.json`: portals, contacts, tokens) and the local secrets
//! (`secrets.json`), which must stay the same for the stored tokens to be decrypted and the
//! platform stand-in to accept deliveries. A directory it creates is its owner's only (0700), and
//! so are its files (0600); the secrets' values are never logged.
//!
//! Messages on the in-process queues are not kept: those queued but not yet processed when the
//! runner stops are lost.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use hubspot_sim::StateFileError;
use hubsync::adapters::{MemoryStore, StoreFileError};
use hubsync::domain::Secret;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::options::{LocalError, STATE_VAR};

pub const STORE_FILE: &str = "hubsync.redb";
pub const SIMULATOR_FILE: &str = "hubspot-sim.json";
pub const SECRETS_FILE: &str = "secrets.json";

#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(StoreFileError),
    #[error(transparent)]
    Simulator(#[from] StateFileError),
    #[error("{} cannot be read as the local secrets: {source}", path.display())]
    Secrets {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: `token_encryption_key` is not base64 of 32 bytes", path.display())]
    BadTokenKey { path: PathBuf },
}

/// The runner's own secrets (the simulator's client secret is fixed, a real app's comes from the
/// environment).
#[derive(Clone, Serialize, Deserialize)]
pub struct LocalSecrets {
    /// Signs deliveries to the platform stand-in.
    pub delivery_signing_secret: Secret,
    /// Wraps the data keys that tokens are stored encrypted with.
    pub token_encryption_key: Secret,
}

impl LocalSecrets {
    pub fn generate() -> LocalSecrets {
        LocalSecrets { delivery_signing_secret: random_key(), token_encryption_key: random_key() }
    }
}

fn random_key() -> Secret {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    Secret::new(base64::engine::general_purpose::STANDARD.encode(key))
}

/// What the state directory holds, opened.
pub struct StateDir {
    pub dir: PathBuf,
    pub store: MemoryStore,
    pub secrets: LocalSecrets,
}

impl StateDir {
    /// Opens the directory (creating it if needed), its store and its secrets (generated on the
    /// first start). The store's file is locked: a second runner on the directory is refused.
    pub fn open(dir: &Path) -> Result<StateDir, LocalError> {
        let state_error = |source| LocalError::State { dir: dir.to_path_buf(), var: STATE_VAR, source };
        create_private_dir(dir).map_err(|source| state_error(StateDirError::Io { path: dir.to_path_buf(), source }))?;
        let store_file = dir.join(STORE_FILE);
        let store = MemoryStore::open(&store_file).map_err(|err| match err {
            StoreFileError::InUse { path } => {
                LocalError::StateInUse { file: path.clone(), var: STATE_VAR, source: StoreFileError::InUse { path } }
            }
            other => state_error(StateDirError::Store(other)),
        })?;
        // It holds tokens (encrypted) and key hashes.
        restrict_to_owner(&store_file)
            .map_err(|source| state_error(StateDirError::Io { path: store_file.clone(), source }))?;
        let secrets = load_or_create_secrets(&dir.join(SECRETS_FILE)).map_err(state_error)?;
        Ok(StateDir { dir: dir.to_path_buf(), store, secrets })
    }

    /// The simulator's state file in this directory, with what it holds.
    pub fn simulator_file(&self) -> Result<hubspot_sim::StateFile, LocalError> {
        hubspot_sim::StateFile::open(self.dir.join(SIMULATOR_FILE)).map_err(|err| LocalError::State {
            dir: self.dir.clone(),
            var: STATE_VAR,
            source: err.into(),
        })
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn load_or_create_secrets(path: &Path) -> Result<LocalSecrets, StateDirError> {
    let io_error = |source| StateDirError::Io { path: path.to_path_buf(), source };
    let secrets = match std::fs::read(path) {
        Ok(bytes) => {
            if restrict_to_owner(path).map_err(io_error)? {
                tracing::warn!(path = %path.display(), "the local secrets file was readable by others: made its owner's only");
            }
            serde_json::from_slice(&bytes)
                .map_err(|source| StateDirError::Secrets { path: path.to_path_buf(), source })?
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let secrets = LocalSecrets::generate();
            let json = serde_json::to_vec_pretty(&secrets).expect("secrets serialize");
            write_private(path, &json).map_err(io_error)?;
            secrets
        }
        Err(err) => return Err(io_error(err)),
    };
    if hubsync::ports::master_cipher(secrets.token_encryption_key.expose()).is_err() {
        return Err(StateDirError::BadTokenKey { path: path.to_path_buf() });
    }
    Ok(secrets)
}

/// Makes a file readable by its owner only, if others could read it; `true` when it changed.
fn restrict_to_owner(path: &Path) -> std::io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            return Ok(true);
        }
    }
    Ok(false)
}

/// Writes a new file readable by its owner only: to a temporary file, renamed into place, so a
/// stop halfway leaves no partial secrets behind.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension("json.tmp");
    let _ = std::fs::remove_file(&temporary);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temporary)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory of its own under the system's temporary directory, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new() -> Scratch {
            Scratch(std::env::temp_dir().join(format!("hubsync-local-state-{:016x}", rand::random::<u64>())))
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn the_secrets_are_made_once_and_read_back_the_same() {
        let scratch = Scratch::new();
        let first = StateDir::open(&scratch.0).unwrap();
        let secrets = first.secrets.clone();
        drop(first);
        let again = StateDir::open(&scratch.0).unwrap();
        assert!(again.secrets.token_encryption_key == secrets.token_encryption_key);
        assert!(again.secrets.delivery_signing_secret == secrets.delivery_signing_secret);
        assert!(hubsync::ports::master_cipher(secrets.token_encryption_key.expose()).is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn the_directory_and_the_secrets_are_the_owners_only() {
        use std::os::unix::fs::PermissionsExt;
        let scratch = Scratch::new();
        let dir = scratch.0.join("nested").join("state");
        drop(StateDir::open(&dir).unwrap());
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(STORE_FILE)), 0o600);
        let secrets = dir.join(SECRETS_FILE);
        assert_eq!(mode(&secrets), 0o600);

        // Made readable by others by hand: the next start takes that back.
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(StateDir::open(&dir).unwrap());
        assert_eq!(mode(&secrets), 0o600);
    }

    #[test]
    fn a_broken_secrets_file_is_refused_with_its_path_and_the_variable() {
        let scratch = Scratch::new();
        std::fs::create_dir_all(&scratch.0).unwrap();
        let secrets = scratch.0.join(SECRETS_FILE);
        std::fs::write(&secrets, r#"{"delivery_signing_secret":"s","token_encryption_key":"too short"}"#).unwrap();
        let Err(err) = StateDir::open(&scratch.0) else { panic!("opened with a bad key") };
        let message = err.to_string();
        assert!(message.contains(&secrets.display().to_string()) && message.contains(STATE_VAR), "{message}");
        assert!(!message.contains("too short"), "{message}");
    }
}
