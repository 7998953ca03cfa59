//! Everything the embedded store holds: one table per kind of item, as the DynamoDB table keeps
//! them under different keys.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::table::Table;
use crate::domain::{
    ApiKeyRecord, Claim, Connection, ConnectionId, FieldCatalogue, InboundState, OAuthState, ObjectType, OutboundState,
    PropertySchema, RecordKey, RecordSyncState, SyncCursor, SyncFlow, SyncRun, Tenant, TenantId, TokenRecord,
    VersionedConfig,
};

/// One record's stored state: its two parts and its claim, as the DynamoDB item keeps them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct StoredRecord {
    pub outbound: OutboundState,
    pub inbound: InboundState,
    pub claim: Option<Claim>,
}

impl StoredRecord {
    pub fn view(&self, key: RecordKey) -> RecordSyncState {
        RecordSyncState { key, outbound: self.outbound.clone(), inbound: self.inbound.clone() }
    }
}

#[derive(Default)]
pub(super) struct State {
    pub tenants: Table<TenantId, Tenant>,
    pub connections: Table<ConnectionId, Connection>,
    pub configs: Table<ConnectionId, VersionedConfig>,
    pub tokens: Table<ConnectionId, TokenRecord>,
    /// Connection → the refresh lease's holder and expiry.
    pub leases: Table<ConnectionId, (String, OffsetDateTime)>,
    pub schemas: Table<(ConnectionId, ObjectType), PropertySchema>,
    pub cursors: Table<(ConnectionId, ObjectType, SyncFlow), SyncCursor>,
    pub records: Table<RecordKey, StoredRecord>,
    /// (connection, object, flow) → the running pull's run id and start.
    pub pulls: Table<(ConnectionId, ObjectType, SyncFlow), (String, OffsetDateTime)>,
    pub runs: Table<(ConnectionId, String), SyncRun>,
    pub oauth_states: Table<String, OAuthState>,
    /// De-duplication key → when it expires.
    pub dedup_keys: Table<String, OffsetDateTime>,
    /// By the key's hash.
    pub api_keys: Table<String, ApiKeyRecord>,
    /// The deployment's (`None`) and tenants' own.
    pub catalogues: Table<Option<TenantId>, FieldCatalogue>,
    /// Rate budget → its next free slot.
    pub rate_slots: Table<String, OffsetDateTime>,
}

#[cfg(feature = "file-store")]
impl State {
    /// Every table with the name it has in the file (names are part of the file format).
    pub fn tables(&mut self) -> [(&'static str, &mut dyn super::table::Journaled); 15] {
        [
            ("tenants", &mut self.tenants),
            ("connections", &mut self.connections),
            ("configs", &mut self.configs),
            ("tokens", &mut self.tokens),
            ("refresh_leases", &mut self.leases),
            ("schemas", &mut self.schemas),
            ("cursors", &mut self.cursors),
            ("records", &mut self.records),
            ("pulls", &mut self.pulls),
            ("runs", &mut self.runs),
            ("oauth_states", &mut self.oauth_states),
            ("dedup_keys", &mut self.dedup_keys),
            ("api_keys", &mut self.api_keys),
            ("catalogues", &mut self.catalogues),
            ("rate_slots", &mut self.rate_slots),
        ]
    }
}
