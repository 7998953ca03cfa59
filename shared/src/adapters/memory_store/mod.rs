//! The embedded store: every item in one process's memory, optionally kept in a file too. Used by
//! unit tests, the simulations and the local runner; it passes the same contract suite as the
//! DynamoDB store, in memory and on a file alike.
//!
//! There is one implementation of the store's rules (conditions, claims, leases, revisions): the
//! maps in memory. A store opened on a file ([`MemoryStore::open`]) also writes each call's
//! changes through to it before the call returns (see `file.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use crate::domain::{
    ApiKeyRecord, Claim, Connection, ConnectionConfig, ConnectionId, ConnectionStatus, DedupKey, FieldCatalogue,
    InboundState, OAuthState, ObjectType, PortalId, PropertySchema, RecordKey, RecordSyncState, SyncCursor, SyncFlow,
    SyncRun, Tenant, TenantId, TokenRecord, VersionedConfig,
};
use crate::ports::{Claimed, OutboundSave, Store, StoreError};

#[cfg(feature = "file-store")]
mod file;
mod state;
mod table;

#[cfg(feature = "file-store")]
pub use file::StoreFileError;
use state::State;

/// How long each call takes, when a simulation says so.
type Latency = Arc<dyn Fn() -> std::time::Duration + Send + Sync>;

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    latency: Option<Latency>,
    /// Where every change is also written, for a store opened on a file.
    #[cfg(feature = "file-store")]
    file: Option<file::StoreFile>,
}

impl MemoryStore {
    /// A store in memory only: it starts empty and ends with the process.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store in memory only whose every call first waits `latency()`, as a network store
    /// would: in a simulation, other work runs meanwhile, so concurrent workers interleave at
    /// each call.
    pub fn with_latency(latency: impl Fn() -> std::time::Duration + Send + Sync + 'static) -> Self {
        MemoryStore { latency: Some(Arc::new(latency)), ..Self::default() }
    }

    /// A store kept in the redb file at `path` (created if missing), with everything the file
    /// holds. A call that changes anything returns only once its changes are committed to the
    /// file (one transaction per call, synced to disk); if the file refuses them, the call fails
    /// with [`StoreError::Unavailable`] and nothing of it changed, in memory or in the file.
    ///
    /// One process at a time owns the file (redb locks it): opening a file another store holds,
    /// in this process or another, is [`StoreFileError::InUse`].
    #[cfg(feature = "file-store")]
    pub fn open(path: impl AsRef<std::path::Path>) -> Result<Self, StoreFileError> {
        let (file, state) = file::StoreFile::open(path.as_ref())?;
        Ok(MemoryStore { state: Mutex::new(state), latency: None, file: Some(file) })
    }

    /// Closes the store's file, releasing its lock at once, even while others still hold this
    /// store (tasks winding down): what a runner does at shutdown, so the file can be opened
    /// again, in this process too. Later changes fail with [`StoreError::Unavailable`]; reads
    /// still answer from memory. Nothing to do for a store in memory only.
    #[cfg(feature = "file-store")]
    pub fn close_file(&self) {
        if let Some(file) = &self.file {
            file.close();
        }
    }

    async fn pause(&self) {
        if let Some(latency) = &self.latency {
            let wait = latency();
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
    }

    /// The state, to read.
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain maps behind, still consistent per entry.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs a change of the state under the lock, and, for a store on a file, commits what it
    /// changed before the lock is released: other calls see it only once it is in the file.
    fn write<T>(&self, change: impl FnOnce(&mut State) -> T) -> Result<T, StoreError> {
        let mut state = self.state();
        let outcome = change(&mut state);
        #[cfg(feature = "file-store")]
        if let Some(file) = &self.file {
            file.commit(&mut state)?;
        }
        Ok(outcome)
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn put_tenant(&self, tenant: &Tenant) -> Result<(), StoreError> {
        self.pause().await;
        self.write(|state| {
            state.tenants.insert(tenant.id.clone(), tenant.clone());
        })
    }

    async fn create_tenant(&self, tenant: &Tenant) -> Result<bool, StoreError> {
        self.pause().await;
        self.write(|state| {
            if state.tenants.contains_key(&tenant.id) {
                return false;
            }
            state.tenants.insert(tenant.id.clone(), tenant.clone());
            true
        })
    }

    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError> {
        self.pause().await;
        Ok(self.state().tenants.get(id).cloned())
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        self.pause().await;
        let mut tenants: Vec<Tenant> = self.state().tenants.values().cloned().collect();
        tenants.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        Ok(tenants)
    }

    async fn put_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        self.pause().await;
        let stored = Connection { revision: connection.revision + 1, ..connection.clone() };
        self.write(|state| {
            state.connections.insert(connection.id.clone(), stored);
        })
    }

    async fn update_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        self.pause().await;
        self.write(|state| {
            if state.connections.get(&connection.id).map_or(0, |c| c.revision) != connection.revision {
                return Err(StoreError::RevisionConflict);
            }
            let stored = Connection { revision: connection.revision + 1, ..connection.clone() };
            state.connections.insert(connection.id.clone(), stored);
            Ok(())
        })?
    }

    async fn get_connection(&self, id: &ConnectionId) -> Result<Option<Connection>, StoreError> {
        self.pause().await;
        Ok(self.state().connections.get(id).cloned())
    }

    async fn list_connections(&self, tenant: &TenantId) -> Result<Vec<Connection>, StoreError> {
        self.pause().await;
        Ok(self.state().connections.values().filter(|c| &c.tenant_id == tenant).cloned().collect())
    }

    async fn connections_for_portal(&self, portal: PortalId) -> Result<Vec<Connection>, StoreError> {
        self.pause().await;
        Ok(self.state().connections.values().filter(|c| c.portal_id == portal).cloned().collect())
    }

    async fn active_connections(&self) -> Result<Vec<Connection>, StoreError> {
        self.pause().await;
        let state = self.state();
        Ok(state.connections.values().filter(|c| c.status == ConnectionStatus::Active).cloned().collect())
    }

    async fn get_config(&self, id: &ConnectionId) -> Result<Option<VersionedConfig>, StoreError> {
        self.pause().await;
        Ok(self.state().configs.get(id).cloned())
    }

    async fn put_config(
        &self,
        id: &ConnectionId,
        config: &ConnectionConfig,
        expected_version: u64,
    ) -> Result<u64, StoreError> {
        self.pause().await;
        self.write(|state| {
            let actual = state.configs.get(id).map_or(0, |c| c.version);
            if actual != expected_version {
                return Err(StoreError::VersionConflict { expected: expected_version, actual });
            }
            let version = actual + 1;
            state.configs.insert(id.clone(), VersionedConfig { version, config: config.clone() });
            Ok(version)
        })?
    }

    async fn put_tokens(&self, tokens: &TokenRecord) -> Result<(), StoreError> {
        self.pause().await;
        self.write(|state| {
            state.tokens.insert(tokens.connection_id.clone(), tokens.clone());
        })
    }

    async fn get_tokens(&self, id: &ConnectionId) -> Result<Option<TokenRecord>, StoreError> {
        self.pause().await;
        Ok(self.state().tokens.get(id).cloned())
    }

    async fn delete_tokens(&self, id: &ConnectionId) -> Result<(), StoreError> {
        self.pause().await;
        self.write(|state| {
            state.tokens.remove(id);
        })
    }

    async fn acquire_refresh_lease(
        &self,
        id: &ConnectionId,
        holder: &str,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.pause().await;
        self.write(|state| {
            let free = match state.leases.get(id) {
                None => true,
                Some((current, expires_at)) => current == holder || *expires_at <= now,
            };
            if free {
                state.leases.insert(id.clone(), (holder.to_string(), now + ttl));
            }
            free
        })
    }

    async fn release_refresh_lease(&self, id: &ConnectionId, holder: &str) -> Result<(), StoreError> {
        self.pause().await;
        self.write(|state| {
            if state.leases.get(id).is_some_and(|(current, _)| current == holder) {
                state.leases.remove(id);
            }
        })
    }

    async fn put_schema(&self, schema: &PropertySchema) -> Result<(), StoreError> {
        self.pause().await;
        self.write(|state| {
            state.schemas.insert((schema.connection_id.clone(), schema.object_type), schema.clone());
        })
    }

    async fn get_schema(&self, id: &ConnectionId, object: ObjectType) -> Result<Option<PropertySchema>, StoreError> {
        self.pause().await;
        Ok(self.state().schemas.get(&(id.clone(), object)).cloned())
    }

    async fn get_cursor(
        &self,
        id: &ConnectionId,
        object: ObjectType,
        flow: SyncFlow,
    ) -> Result<Option<SyncCursor>, StoreError> {
        self.pause().await;
        Ok(self.state().cursors.get(&(id.clone(), object, flow)).cloned())
    }

    async fn advance_cursor(&self, cursor: &SyncCursor) -> Result<(), StoreError> {
        self.pause().await;
        self.write(|state| {
            let key = (cursor.connection_id.clone(), cursor.object_type, cursor.flow);
            if state.cursors.get(&key).is_some_and(|stored| stored.position > cursor.position) {
                return Err(StoreError::CursorBehind);
            }
            state.cursors.insert(key, cursor.clone());
            Ok(())
        })?
    }

    async fn get_record_states(
        &self,
        id: &ConnectionId,
        object: ObjectType,
        record_keys: &[String],
    ) -> Result<HashMap<String, RecordSyncState>, StoreError> {
        self.pause().await;
        let state = self.state();
        Ok(record_keys
            .iter()
            .map(|key| RecordKey::new(id.clone(), object, key.clone()))
            .filter_map(|key| {
                let stored = state.records.get(&key)?;
                Some((key.record_key.clone(), stored.view(key)))
            })
            .collect())
    }

    async fn claim_records(
        &self,
        keys: &[RecordKey],
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.pause().await;
        self.write(|state| {
            keys.iter()
                .map(|key| {
                    let stored = state.records.get_or_default(key.clone());
                    let free = stored.claim.as_ref().is_none_or(|c| c.holder == holder || c.until <= now);
                    if !free {
                        return Claimed::Held;
                    }
                    stored.claim = Some(Claim { holder: holder.to_string(), until });
                    Claimed::Granted(Box::new(stored.view(key.clone())))
                })
                .collect()
        })
    }

    async fn save_outbound(
        &self,
        saves: &[OutboundSave],
        holder: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<bool>, StoreError> {
        self.pause().await;
        self.write(|state| {
            saves
                .iter()
                .map(|save| {
                    let Some(stored) = state.records.get_mut(&save.key) else { return false };
                    if !stored.claim.as_ref().is_some_and(|c| c.holder == holder && c.until > now) {
                        return false;
                    }
                    stored.outbound = save.outbound.clone();
                    if save.release {
                        stored.claim = None;
                    }
                    true
                })
                .collect()
        })
    }

    async fn release_records(&self, keys: &[RecordKey], holder: &str) -> Result<(), StoreError> {
        self.pause().await;
        self.write(|state| {
            for key in keys {
                if let Some(stored) = state.records.get_mut(key)
                    && stored.claim.as_ref().is_some_and(|c| c.holder == holder)
                {
                    stored.claim = None;
                }
            }
        })
    }

    async fn save_inbound(&self, saves: &[(RecordKey, InboundState)]) -> Result<Vec<bool>, StoreError> {
        self.pause().await;
        self.write(|state| {
            saves
                .iter()
                .map(|(key, inbound)| {
                    let stored = state.records.get_or_default(key.clone());
                    if stored.inbound.revision != inbound.revision {
                        return false;
                    }
                    stored.inbound = InboundState { revision: inbound.revision + 1, ..inbound.clone() };
                    true
                })
                .collect()
        })
    }

    async fn begin_pull(
        &self,
        id: &ConnectionId,
        object: ObjectType,
        flow: SyncFlow,
        run_id: &str,
        now: OffsetDateTime,
        stale_after: Duration,
    ) -> Result<bool, StoreError> {
        self.pause().await;
        self.write(|state| {
            let key = (id.clone(), object, flow);
            let running = state.pulls.get(&key);
            if running.is_some_and(|(running, started)| running != run_id && now - *started < stale_after) {
                return false;
            }
            state.pulls.insert(key, (run_id.to_string(), now));
            true
        })
    }

    async fn end_pull(
        &self,
        id: &ConnectionId,
        object: ObjectType,
        flow: SyncFlow,
        run_id: &str,
    ) -> Result<(), StoreError> {
        self.pause().await;
        self.write(|state| {
            let key = (id.clone(), object, flow);
            if state.pulls.get(&key).is_some_and(|(running, _)| running == run_id) {
                state.pulls.remove(&key);
            }
        })
    }

    async fn put_run(&self, run: &SyncRun) -> Result<(), StoreError> {
        self.pause().await;
        self.write(|state| {
            state.runs.insert((run.connection_id.clone(), run.run_id.clone()), run.clone());
        })
    }

    async fn update_run(&self, run: &SyncRun) -> Result<(), StoreError> {
        self.pause().await;
        self.write(|state| {
            let key = (run.connection_id.clone(), run.run_id.clone());
            let stored = state.runs.get(&key).map_or(0, |r| r.revision);
            if stored != run.revision {
                return Err(StoreError::RevisionConflict);
            }
            state.runs.insert(key, SyncRun { revision: run.revision + 1, ..run.clone() });
            Ok(())
        })?
    }

    async fn get_run(&self, id: &ConnectionId, run_id: &str) -> Result<Option<SyncRun>, StoreError> {
        self.pause().await;
        Ok(self.state().runs.get(&(id.clone(), run_id.to_string())).cloned())
    }

    async fn list_runs(&self, id: &ConnectionId, limit: usize) -> Result<Vec<SyncRun>, StoreError> {
        self.pause().await;
        let state = self.state();
        let runs = state.runs.range((id.clone(), String::new())..).take_while(|((conn, _), _)| conn == id);
        let mut runs: Vec<SyncRun> = runs.map(|(_, run)| run.clone()).collect();
        runs.reverse();
        runs.truncate(limit);
        Ok(runs)
    }

    async fn put_oauth_state(&self, state: &OAuthState) -> Result<(), StoreError> {
        self.pause().await;
        self.write(|stored| {
            if stored.oauth_states.contains_key(&state.state) {
                return Err(StoreError::AlreadyExists("OAuth state".into()));
            }
            stored.oauth_states.insert(state.state.clone(), state.clone());
            Ok(())
        })?
    }

    async fn take_oauth_state(&self, state: &str, now: OffsetDateTime) -> Result<OAuthState, StoreError> {
        self.pause().await;
        // An expired state is taken too: it cannot be tried again.
        let taken = self.write(|stored| stored.oauth_states.remove(&state.to_string()))?;
        let taken = taken.ok_or_else(|| StoreError::NotFound("OAuth state".into()))?;
        if taken.is_expired(now) {
            return Err(StoreError::Expired);
        }
        Ok(taken)
    }

    async fn claim_dedup_key(&self, key: &DedupKey, now: OffsetDateTime) -> Result<bool, StoreError> {
        self.pause().await;
        self.write(|state| {
            if state.dedup_keys.get(&key.key).is_some_and(|expires_at| *expires_at > now) {
                return false;
            }
            state.dedup_keys.insert(key.key.clone(), key.expires_at);
            true
        })
    }

    async fn release_dedup_key(&self, key: &str) -> Result<(), StoreError> {
        self.pause().await;
        self.write(|state| {
            state.dedup_keys.remove(&key.to_string());
        })
    }

    async fn reserve_rate_slot(
        &self,
        key: &str,
        now: OffsetDateTime,
        interval: Duration,
    ) -> Result<OffsetDateTime, StoreError> {
        self.pause().await;
        self.write(|state| {
            let next = state.rate_slots.get(key).copied().unwrap_or(now).max(now);
            state.rate_slots.insert(key.to_string(), next + interval);
            next
        })
    }

    async fn hold_rate_budget(&self, key: &str, until: OffsetDateTime) -> Result<(), StoreError> {
        self.pause().await;
        self.write(|state| {
            let held = state.rate_slots.get(key).map_or(until, |next| (*next).max(until));
            state.rate_slots.insert(key.to_string(), held);
        })
    }

    async fn put_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        self.pause().await;
        self.write(|state| {
            state.api_keys.insert(key.key_hash.clone(), key.clone());
        })
    }

    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.pause().await;
        Ok(self.state().api_keys.get(key_hash).cloned())
    }

    async fn list_api_keys(&self, tenant: &TenantId) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.pause().await;
        let mut keys: Vec<ApiKeyRecord> =
            self.state().api_keys.values().filter(|key| &key.tenant_id == tenant).cloned().collect();
        keys.sort_by(|a, b| a.key_id.cmp(&b.key_id));
        Ok(keys)
    }

    async fn delete_api_key(&self, key_hash: &str) -> Result<(), StoreError> {
        self.pause().await;
        self.write(|state| {
            state.api_keys.remove(&key_hash.to_string());
        })
    }

    async fn get_catalogue(&self, tenant: Option<&TenantId>) -> Result<Option<FieldCatalogue>, StoreError> {
        self.pause().await;
        Ok(self.state().catalogues.get(&tenant.cloned()).cloned())
    }

    async fn put_catalogue(&self, tenant: Option<&TenantId>, catalogue: &FieldCatalogue) -> Result<(), StoreError> {
        self.pause().await;
        self.write(|state| {
            state.catalogues.insert(tenant.cloned(), catalogue.clone());
        })
    }
}
