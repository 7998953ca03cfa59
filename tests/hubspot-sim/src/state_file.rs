//! The simulator's state kept in a JSON file, for a simulator that outlives its process (the
//! local runner's): apps, portals with their property definitions, records, associations and
//! lists, the authorization codes and tokens issued and the installs they came with, and the
//! webhook subscriptions. Not kept: webhook events not yet delivered and the delivery log, request
//! counts, injected faults and rate-limit windows; a restarted simulator starts those afresh.
//!
//! The file is written whole, to a temporary file renamed over it (a reader never sees half of
//! one), a moment after changes and once more at shutdown. Its tokens are secrets of the simulated
//! portals: only its owner may read it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::state::{AccessToken, App, AuthCode, IssuedTokens, Portal, RefreshToken, Sim, State};
use crate::webhooks::Webhooks;

/// How long changes settle before the file is written: a burst of them is one write.
const SAVE_DELAY: Duration = Duration::from_millis(200);

/// A simulator state file, with what it held when opened.
pub struct StateFile {
    path: PathBuf,
    saved: Option<Saved>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    #[error("cannot read the simulator's state file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the simulator's state file {} cannot be read as one: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl StateFile {
    /// The state file at `path` and what it holds; a file that does not exist yet holds nothing
    /// (the simulator starts as a new one and creates it).
    pub fn open(path: impl Into<PathBuf>) -> Result<StateFile, StateFileError> {
        let path = path.into();
        let saved = match std::fs::read(&path) {
            Ok(bytes) => Some(
                serde_json::from_slice(&bytes)
                    .map_err(|source| StateFileError::Unreadable { path: path.clone(), source })?,
            ),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(StateFileError::Read { path, source }),
        };
        Ok(StateFile { path, saved })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Puts what the file held into a new simulator's state.
    pub(crate) fn restore_into(&mut self, state: &mut State) {
        if let Some(saved) = self.saved.take() {
            state.restore(saved);
        }
    }
}

/// What the file holds, as written: borrowed from the locked state.
#[derive(Serialize)]
struct SavedView<'a> {
    apps: &'a BTreeMap<String, App>,
    portals: &'a BTreeMap<u64, Portal>,
    last_portal: u64,
    codes: &'a HashMap<String, AuthCode>,
    access_tokens: &'a HashMap<String, AccessToken>,
    refresh_tokens: &'a HashMap<String, RefreshToken>,
    issued_tokens: &'a IssuedTokens,
    installs: &'a BTreeSet<(String, u64)>,
    webhooks: &'a Webhooks,
    next_app_id: u64,
}

/// What the file holds, as read.
#[derive(Deserialize)]
struct Saved {
    apps: BTreeMap<String, App>,
    portals: BTreeMap<u64, Portal>,
    last_portal: u64,
    codes: HashMap<String, AuthCode>,
    access_tokens: HashMap<String, AccessToken>,
    refresh_tokens: HashMap<String, RefreshToken>,
    issued_tokens: IssuedTokens,
    installs: BTreeSet<(String, u64)>,
    webhooks: Webhooks,
    next_app_id: u64,
}

impl State {
    fn saved_view(&self) -> SavedView<'_> {
        SavedView {
            apps: &self.apps,
            portals: &self.portals,
            last_portal: self.last_portal,
            codes: &self.codes,
            access_tokens: &self.access_tokens,
            refresh_tokens: &self.refresh_tokens,
            issued_tokens: &self.issued_tokens,
            installs: &self.installs,
            webhooks: &self.webhooks,
            next_app_id: self.next_app_id,
        }
    }

    fn restore(&mut self, saved: Saved) {
        self.apps = saved.apps;
        self.portals = saved.portals;
        for portal in self.portals.values_mut() {
            // The running simulator's configuration, not the saved one's.
            portal.hub.set_search_delay(self.search_index_delay);
        }
        self.last_portal = saved.last_portal;
        self.codes = saved.codes;
        self.access_tokens = saved.access_tokens;
        self.refresh_tokens = saved.refresh_tokens;
        self.issued_tokens = saved.issued_tokens;
        self.installs = saved.installs;
        self.webhooks = saved.webhooks;
        self.next_app_id = saved.next_app_id;
    }
}

/// Writes the state to `path` a moment after it changes, and once more when `stop` fires (or
/// its sender is dropped), then ends.
pub(crate) async fn keep(sim: Sim, path: PathBuf, mut stop: oneshot::Receiver<()>) {
    let mut written: Option<Vec<u8>> = None;
    loop {
        let stopping = tokio::select! {
            _ = sim.state_changed.notified() => {
                tokio::select! {
                    _ = tokio::time::sleep(SAVE_DELAY) => false,
                    _ = &mut stop => true,
                }
            }
            _ = &mut stop => true,
        };
        save(&sim, &path, &mut written).await;
        if stopping {
            return;
        }
    }
}

/// Writes the state unless the file has it already (most changes, request counts for one, are
/// not kept).
async fn save(sim: &Sim, path: &Path, written: &mut Option<Vec<u8>>) {
    let bytes = match serde_json::to_vec(&sim.lock().saved_view()) {
        Ok(bytes) => bytes,
        Err(err) => {
            tracing::warn!(path = %path.display(), error = %err, "hubspot-sim: state not saved");
            return;
        }
    };
    if written.as_ref() == Some(&bytes) {
        return;
    }
    let (target, contents) = (path.to_path_buf(), bytes.clone());
    match tokio::task::spawn_blocking(move || write_atomically(&target, &contents)).await {
        Ok(Ok(())) => *written = Some(bytes),
        Ok(Err(err)) => tracing::warn!(path = %path.display(), error = %err, "hubspot-sim: state not saved"),
        Err(err) => tracing::warn!(path = %path.display(), error = %err, "hubspot-sim: state not saved"),
    }
}

/// Writes `contents` to a temporary file beside `path`, readable by its owner only, synced, then
/// renamed over `path`.
fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    // A leftover of an interrupted write may have other permissions: the mode applies to new files.
    let _ = std::fs::remove_file(&temporary);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temporary)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)
}
