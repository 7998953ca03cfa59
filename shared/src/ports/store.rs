use std::collections::HashMap;

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use crate::domain::catalogue::CatalogueSource;
use crate::domain::{
    ApiKeyRecord, Connection, ConnectionConfig, ConnectionId, DedupKey, FieldCatalogue, InboundState, OAuthState,
    ObjectType, OutboundState, PortalId, PropertySchema, RecordKey, RecordSyncState, SyncCursor, SyncFlow, SyncRun,
    Tenant, TenantId, TokenRecord, VersionedConfig,
};

/// One record's outbound part to save with [`Store::save_outbound`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundSave {
    pub key: RecordKey,
    pub outbound: OutboundState,
    /// Drop the claim too: the work on the record is over.
    pub release: bool,
}

/// The answer for one record of [`Store::claim_records`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// The caller holds the record now; its state as read with the claim (boxed: a state is
    /// large, and most answers of a busy batch are grants).
    Granted(Box<RecordSyncState>),
    /// Another worker holds it.
    Held,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Someone saved the config since it was read: reload, re-apply, save again.
    #[error("config was changed by someone else: expected version {expected}, stored version is {actual}")]
    VersionConflict { expected: u64, actual: u64 },
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// A single-use OAuth state presented after its ten minutes.
    #[error("the OAuth state has expired")]
    Expired,
    /// A cursor may only move forward; an older position is a stale job.
    #[error("cursor would move backwards")]
    CursorBehind,
    /// Someone saved the item (a run) since it was read: read again, update, save again.
    #[error("it was changed by another worker since it was read")]
    RevisionConflict,
    #[error("stored data could not be read: {0}")]
    Corrupt(String),
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
}

/// Everything hubsync keeps. The guarantees (optimistic locking, single use, de-duplication,
/// forward-only cursors, exclusive leases) are enforced here, atomically, not by callers.
#[async_trait]
pub trait Store: Send + Sync {
    // Tenants and connections.
    async fn put_tenant(&self, tenant: &Tenant) -> Result<(), StoreError>;
    /// Adds the tenant unless one with its id exists (then `false`, and nothing changes): of
    /// concurrent creations of one id, exactly one succeeds.
    async fn create_tenant(&self, tenant: &Tenant) -> Result<bool, StoreError>;
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError>;
    /// Every tenant, by id.
    async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError>;
    /// Creates or replaces a connection (an install, an uninstall: the tenant's decision wins)
    /// and keeps the tenant and portal indexes in step; its revision moves on.
    async fn put_connection(&self, connection: &Connection) -> Result<(), StoreError>;
    /// Saves a connection read earlier if its stored revision is still `connection.revision`,
    /// moving it on; otherwise [`StoreError::RevisionConflict`] and nothing changes.
    async fn update_connection(&self, connection: &Connection) -> Result<(), StoreError>;
    async fn get_connection(&self, id: &ConnectionId) -> Result<Option<Connection>, StoreError>;
    async fn list_connections(&self, tenant: &TenantId) -> Result<Vec<Connection>, StoreError>;
    /// The connections that a webhook from this portal is routed to.
    async fn connections_for_portal(&self, portal: PortalId) -> Result<Vec<Connection>, StoreError>;
    /// Every active connection (what the scheduled pulls go through).
    async fn active_connections(&self) -> Result<Vec<Connection>, StoreError>;

    // Configs.
    async fn get_config(&self, id: &ConnectionId) -> Result<Option<VersionedConfig>, StoreError>;
    /// Saves if the stored version is still `expected_version` (0: no config yet) and returns the
    /// new version; otherwise [`StoreError::VersionConflict`] and nothing changes.
    async fn put_config(
        &self,
        id: &ConnectionId,
        config: &ConnectionConfig,
        expected_version: u64,
    ) -> Result<u64, StoreError>;

    // Tokens and their refresh lease.
    async fn put_tokens(&self, tokens: &TokenRecord) -> Result<(), StoreError>;
    async fn get_tokens(&self, id: &ConnectionId) -> Result<Option<TokenRecord>, StoreError>;
    async fn delete_tokens(&self, id: &ConnectionId) -> Result<(), StoreError>;
    /// Grants the lease to `holder` if nobody else holds an unexpired one. `true` when granted
    /// (including when `holder` already held it: the lease is then extended).
    async fn acquire_refresh_lease(
        &self,
        id: &ConnectionId,
        holder: &str,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Result<bool, StoreError>;
    /// Releases the lease if `holder` holds it; someone else's lease is left alone.
    async fn release_refresh_lease(&self, id: &ConnectionId, holder: &str) -> Result<(), StoreError>;

    // Cached property schemas.
    async fn put_schema(&self, schema: &PropertySchema) -> Result<(), StoreError>;
    async fn get_schema(&self, id: &ConnectionId, object: ObjectType) -> Result<Option<PropertySchema>, StoreError>;

    // Sync progress.
    async fn get_cursor(
        &self,
        id: &ConnectionId,
        object: ObjectType,
        flow: SyncFlow,
    ) -> Result<Option<SyncCursor>, StoreError>;
    /// Moves the cursor to `cursor.position` if that is not behind the stored one; an equal
    /// position is accepted (a replayed page). Behind: [`StoreError::CursorBehind`].
    async fn advance_cursor(&self, cursor: &SyncCursor) -> Result<(), StoreError>;
    /// The states of these records of one connection and object, keyed by record key; records
    /// never synced are absent. Any number of keys: the store reads them in batches.
    async fn get_record_states(
        &self,
        id: &ConnectionId,
        object: ObjectType,
        record_keys: &[String],
    ) -> Result<HashMap<String, RecordSyncState>, StoreError>;
    /// Claims each record for `holder` until `until`, unless another holder's claim is still
    /// live at `now`; a claim `holder` already has is extended. Returns, in order, each
    /// record's state as read with its claim, or that someone else holds it. The rules of
    /// claims are in [`crate::domain::record`].
    async fn claim_records(
        &self,
        keys: &[RecordKey],
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Vec<Claimed>, StoreError>;
    /// Saves records' outbound parts, each if `holder` still holds its claim at `now` (and drops
    /// the claim when `release` says so). Answers, in order, whether each was saved: `false`
    /// when its claim was lost (expired, or taken by another worker), and then nothing of it
    /// changed.
    async fn save_outbound(
        &self,
        saves: &[OutboundSave],
        holder: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<bool>, StoreError>;
    /// Drops `holder`'s claims on these records; others' claims are left alone.
    async fn release_records(&self, keys: &[RecordKey], holder: &str) -> Result<(), StoreError>;
    /// Saves records' inbound parts, each if its stored revision is still the `revision` it was
    /// read with (0: never saved), moving the revision on. Answers, in order, whether each was
    /// saved: `false` when someone saved it meanwhile (read again, merge, save again).
    async fn save_inbound(&self, saves: &[(RecordKey, InboundState)]) -> Result<Vec<bool>, StoreError>;
    /// Marks a pull of this connection's object and flow as running as `run_id`, unless
    /// another run's mark is there and younger than `stale_after` (a crashed run's mark ages
    /// out). `true` when marked; `false`: another pull is running.
    async fn begin_pull(
        &self,
        id: &ConnectionId,
        object: ObjectType,
        flow: SyncFlow,
        run_id: &str,
        now: OffsetDateTime,
        stale_after: Duration,
    ) -> Result<bool, StoreError>;
    /// Clears the mark if it is still `run_id`'s.
    async fn end_pull(
        &self,
        id: &ConnectionId,
        object: ObjectType,
        flow: SyncFlow,
        run_id: &str,
    ) -> Result<(), StoreError>;
    async fn put_run(&self, run: &SyncRun) -> Result<(), StoreError>;
    /// Saves a run read earlier if its stored revision is still `run.revision`, and moves the
    /// revision on; otherwise [`StoreError::RevisionConflict`] (read again, update, save again).
    async fn update_run(&self, run: &SyncRun) -> Result<(), StoreError>;
    async fn get_run(&self, id: &ConnectionId, run_id: &str) -> Result<Option<SyncRun>, StoreError>;
    /// Newest first.
    async fn list_runs(&self, id: &ConnectionId, limit: usize) -> Result<Vec<SyncRun>, StoreError>;

    // Single-use and expiring keys.
    /// Stores a new state; a state that exists already is refused.
    async fn put_oauth_state(&self, state: &OAuthState) -> Result<(), StoreError>;
    /// Returns the state and deletes it in one step, so it works once. Unknown or used:
    /// [`StoreError::NotFound`]; past its expiry: [`StoreError::Expired`].
    async fn take_oauth_state(&self, state: &str, now: OffsetDateTime) -> Result<OAuthState, StoreError>;
    /// `true` the first time a key is seen; `false` while an unexpired copy exists.
    async fn claim_dedup_key(&self, key: &DedupKey, now: OffsetDateTime) -> Result<bool, StoreError>;
    /// Forgets a claimed key, so the next delivery of it is processed: for work that was
    /// claimed but could not be stored.
    async fn release_dedup_key(&self, key: &str) -> Result<(), StoreError>;

    // Shared rate budgets (one per HubSpot portal), paced across every concurrent worker.
    /// Reserves the next send slot of the budget `key`: slots are `interval` apart across all
    /// callers. Returns when the caller may send (`now` or later).
    async fn reserve_rate_slot(
        &self,
        key: &str,
        now: OffsetDateTime,
        interval: Duration,
    ) -> Result<OffsetDateTime, StoreError>;
    /// Pushes the budget's next free slot to at least `until` (HubSpot said the budget is spent).
    async fn hold_rate_budget(&self, key: &str, until: OffsetDateTime) -> Result<(), StoreError>;

    // Console API keys.
    async fn put_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError>;
    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>, StoreError>;
    /// A tenant's keys (as stored: hashes, never plaintexts), by key id.
    async fn list_api_keys(&self, tenant: &TenantId) -> Result<Vec<ApiKeyRecord>, StoreError>;
    /// Revokes the key at once: the next request with it is refused.
    async fn delete_api_key(&self, key_hash: &str) -> Result<(), StoreError>;

    // The platform's field catalogue: the deployment's (`None`) or one tenant's own.
    async fn get_catalogue(&self, tenant: Option<&TenantId>) -> Result<Option<FieldCatalogue>, StoreError>;
    /// Replaces the catalogue (the platform team's decision: the last one saved wins).
    async fn put_catalogue(&self, tenant: Option<&TenantId>, catalogue: &FieldCatalogue) -> Result<(), StoreError>;

    /// The catalogue `tenant` maps from: its own when declared, else the deployment's; `None`
    /// when neither is (any platform field may then be mapped).
    async fn catalogue_for(&self, tenant: &TenantId) -> Result<Option<(CatalogueSource, FieldCatalogue)>, StoreError> {
        if let Some(own) = self.get_catalogue(Some(tenant)).await? {
            return Ok(Some((CatalogueSource::Tenant, own)));
        }
        Ok(self.get_catalogue(None).await?.map(|shared| (CatalogueSource::Deployment, shared)))
    }
}
