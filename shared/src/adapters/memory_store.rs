//! The embedded store: everything in one process's memory. Used by unit tests and the local
//! runner; it passes the same contract suite as the DynamoDB store.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use crate::domain::{
    ApiKeyRecord, Connection, ConnectionConfig, ConnectionId, ConnectionStatus, DedupKey, OAuthState, ObjectType,
    PortalId, PropertySchema, RecordSyncState, SyncCursor, SyncFlow, SyncRun, Tenant, TenantId, TokenRecord,
    VersionedConfig,
};
use crate::ports::{Store, StoreError};

#[derive(Default)]
struct State {
    tenants: HashMap<TenantId, Tenant>,
    connections: BTreeMap<ConnectionId, Connection>,
    configs: HashMap<ConnectionId, VersionedConfig>,
    tokens: HashMap<ConnectionId, TokenRecord>,
    leases: HashMap<ConnectionId, (String, OffsetDateTime)>,
    schemas: HashMap<(ConnectionId, ObjectType), PropertySchema>,
    cursors: HashMap<(ConnectionId, ObjectType, SyncFlow), SyncCursor>,
    record_states: HashMap<(ConnectionId, ObjectType, String), RecordSyncState>,
    runs: BTreeMap<(ConnectionId, String), SyncRun>,
    oauth_states: HashMap<String, OAuthState>,
    dedup_keys: HashMap<String, OffsetDateTime>,
    api_keys: HashMap<String, ApiKeyRecord>,
    rate_slots: HashMap<String, OffsetDateTime>,
}

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain maps behind, still consistent per entry.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn put_tenant(&self, tenant: &Tenant) -> Result<(), StoreError> {
        self.state().tenants.insert(tenant.id.clone(), tenant.clone());
        Ok(())
    }

    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError> {
        Ok(self.state().tenants.get(id).cloned())
    }

    async fn put_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        self.state().connections.insert(connection.id.clone(), connection.clone());
        Ok(())
    }

    async fn get_connection(&self, id: &ConnectionId) -> Result<Option<Connection>, StoreError> {
        Ok(self.state().connections.get(id).cloned())
    }

    async fn list_connections(&self, tenant: &TenantId) -> Result<Vec<Connection>, StoreError> {
        Ok(self.state().connections.values().filter(|c| &c.tenant_id == tenant).cloned().collect())
    }

    async fn connections_for_portal(&self, portal: PortalId) -> Result<Vec<Connection>, StoreError> {
        Ok(self.state().connections.values().filter(|c| c.portal_id == portal).cloned().collect())
    }

    async fn active_connections(&self) -> Result<Vec<Connection>, StoreError> {
        let state = self.state();
        Ok(state.connections.values().filter(|c| c.status == ConnectionStatus::Active).cloned().collect())
    }

    async fn get_config(&self, id: &ConnectionId) -> Result<Option<VersionedConfig>, StoreError> {
        Ok(self.state().configs.get(id).cloned())
    }

    async fn put_config(
        &self,
        id: &ConnectionId,
        config: &ConnectionConfig,
        expected_version: u64,
    ) -> Result<u64, StoreError> {
        let mut state = self.state();
        let actual = state.configs.get(id).map_or(0, |c| c.version);
        if actual != expected_version {
            return Err(StoreError::VersionConflict { expected: expected_version, actual });
        }
        let version = actual + 1;
        state.configs.insert(id.clone(), VersionedConfig { version, config: config.clone() });
        Ok(version)
    }

    async fn put_tokens(&self, tokens: &TokenRecord) -> Result<(), StoreError> {
        self.state().tokens.insert(tokens.connection_id.clone(), tokens.clone());
        Ok(())
    }

    async fn get_tokens(&self, id: &ConnectionId) -> Result<Option<TokenRecord>, StoreError> {
        Ok(self.state().tokens.get(id).cloned())
    }

    async fn delete_tokens(&self, id: &ConnectionId) -> Result<(), StoreError> {
        self.state().tokens.remove(id);
        Ok(())
    }

    async fn acquire_refresh_lease(
        &self,
        id: &ConnectionId,
        holder: &str,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        let free = match state.leases.get(id) {
            None => true,
            Some((current, expires_at)) => current == holder || *expires_at <= now,
        };
        if free {
            state.leases.insert(id.clone(), (holder.to_string(), now + ttl));
        }
        Ok(free)
    }

    async fn release_refresh_lease(&self, id: &ConnectionId, holder: &str) -> Result<(), StoreError> {
        let mut state = self.state();
        if state.leases.get(id).is_some_and(|(current, _)| current == holder) {
            state.leases.remove(id);
        }
        Ok(())
    }

    async fn put_schema(&self, schema: &PropertySchema) -> Result<(), StoreError> {
        self.state().schemas.insert((schema.connection_id.clone(), schema.object_type), schema.clone());
        Ok(())
    }

    async fn get_schema(&self, id: &ConnectionId, object: ObjectType) -> Result<Option<PropertySchema>, StoreError> {
        Ok(self.state().schemas.get(&(id.clone(), object)).cloned())
    }

    async fn get_cursor(
        &self,
        id: &ConnectionId,
        object: ObjectType,
        flow: SyncFlow,
    ) -> Result<Option<SyncCursor>, StoreError> {
        Ok(self.state().cursors.get(&(id.clone(), object, flow)).cloned())
    }

    async fn advance_cursor(&self, cursor: &SyncCursor) -> Result<(), StoreError> {
        let mut state = self.state();
        let key = (cursor.connection_id.clone(), cursor.object_type, cursor.flow);
        if state.cursors.get(&key).is_some_and(|stored| stored.position > cursor.position) {
            return Err(StoreError::CursorBehind);
        }
        state.cursors.insert(key, cursor.clone());
        Ok(())
    }

    async fn get_record_states(
        &self,
        id: &ConnectionId,
        object: ObjectType,
        record_keys: &[String],
    ) -> Result<HashMap<String, RecordSyncState>, StoreError> {
        let state = self.state();
        Ok(record_keys
            .iter()
            .filter_map(|key| state.record_states.get(&(id.clone(), object, key.clone())))
            .map(|record| (record.record_key.clone(), record.clone()))
            .collect())
    }

    async fn put_record_states(&self, records: &[RecordSyncState]) -> Result<(), StoreError> {
        let mut state = self.state();
        for record in records {
            let key = (record.connection_id.clone(), record.object_type, record.record_key.clone());
            state.record_states.insert(key, record.clone());
        }
        Ok(())
    }

    async fn put_run(&self, run: &SyncRun) -> Result<(), StoreError> {
        self.state().runs.insert((run.connection_id.clone(), run.run_id.clone()), run.clone());
        Ok(())
    }

    async fn get_run(&self, id: &ConnectionId, run_id: &str) -> Result<Option<SyncRun>, StoreError> {
        Ok(self.state().runs.get(&(id.clone(), run_id.to_string())).cloned())
    }

    async fn list_runs(&self, id: &ConnectionId, limit: usize) -> Result<Vec<SyncRun>, StoreError> {
        let state = self.state();
        let runs = state.runs.range((id.clone(), String::new())..).take_while(|((conn, _), _)| conn == id);
        let mut runs: Vec<SyncRun> = runs.map(|(_, run)| run.clone()).collect();
        runs.reverse();
        runs.truncate(limit);
        Ok(runs)
    }

    async fn put_oauth_state(&self, state: &OAuthState) -> Result<(), StoreError> {
        let mut guard = self.state();
        if guard.oauth_states.contains_key(&state.state) {
            return Err(StoreError::AlreadyExists("OAuth state".into()));
        }
        guard.oauth_states.insert(state.state.clone(), state.clone());
        Ok(())
    }

    async fn take_oauth_state(&self, state: &str, now: OffsetDateTime) -> Result<OAuthState, StoreError> {
        let taken =
            self.state().oauth_states.remove(state).ok_or_else(|| StoreError::NotFound("OAuth state".into()))?;
        if taken.is_expired(now) {
            return Err(StoreError::Expired);
        }
        Ok(taken)
    }

    async fn claim_dedup_key(&self, key: &DedupKey, now: OffsetDateTime) -> Result<bool, StoreError> {
        let mut state = self.state();
        if state.dedup_keys.get(&key.key).is_some_and(|expires_at| *expires_at > now) {
            return Ok(false);
        }
        state.dedup_keys.insert(key.key.clone(), key.expires_at);
        Ok(true)
    }

    async fn release_dedup_key(&self, key: &str) -> Result<(), StoreError> {
        self.state().dedup_keys.remove(key);
        Ok(())
    }

    async fn reserve_rate_slot(
        &self,
        key: &str,
        now: OffsetDateTime,
        interval: Duration,
    ) -> Result<OffsetDateTime, StoreError> {
        let mut state = self.state();
        let next = state.rate_slots.get(key).copied().unwrap_or(now).max(now);
        state.rate_slots.insert(key.to_string(), next + interval);
        Ok(next)
    }

    async fn hold_rate_budget(&self, key: &str, until: OffsetDateTime) -> Result<(), StoreError> {
        let mut state = self.state();
        let next = state.rate_slots.entry(key.to_string()).or_insert(until);
        *next = (*next).max(until);
        Ok(())
    }

    async fn put_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        self.state().api_keys.insert(key.key_hash.clone(), key.clone());
        Ok(())
    }

    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        Ok(self.state().api_keys.get(key_hash).cloned())
    }
}
