//! The pure model of hubsync. Nothing here performs I/O or knows about AWS or HTTP.

pub mod access;
pub mod catalogue;
pub mod config;
pub mod connection;
pub mod inbound;
pub mod mapping;
pub mod news;
pub mod object_type;
pub mod outbound;
pub mod pull;
pub mod record;
pub mod relations;
pub mod schema;
pub mod scopes;
pub mod secret;
pub mod subscriptions;
pub mod sync;
pub mod trigger;

pub use access::{ApiKeyRecord, DedupKey, OAuthState, TokenRecord, hash_api_key};
pub use catalogue::{CatalogueField, FieldCatalogue, Identity};
pub use config::{
    ConnectionConfig, Direction, FieldMapping, FieldType, InboundEvents, MatchKey, ObjectConfig, SyncOptions,
    VersionedConfig, WriteMode,
};
pub use connection::{Connection, ConnectionId, ConnectionStatus, PortalId, Tenant, TenantId};
pub use inbound::{
    EventKind, INBOUND_MESSAGE_VERSION, InboundEvent, InboundMessage, WebhookEvent, parse_webhook_batch,
};
pub use object_type::ObjectType;
pub use outbound::{
    PUSH_MESSAGE_VERSION, PendingWrite, PoisonMessage, PushMessage, SkipReason, WritePlan, fold, fold_links, plan_write,
};
pub use record::{Claim, InboundState, OutboundState, RecordKey, RecordSyncState, Stamped};
pub use relations::{AssociationLabel, LabelCategory, RelationChanges, RelationMapping};
pub use schema::{PropertyDef, PropertySchema};
pub use secret::Secret;
pub use sync::{CursorPosition, PullProgress, RunCounts, RunKind, RunStatus, SyncCursor, SyncFlow, SyncRun};
pub use trigger::{Firing, Trigger, TriggerField, TriggerRecord, TriggerSource};
