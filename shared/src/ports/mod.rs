//! What the domain needs from the outside world, as traits. Adapters implement them.

pub mod clock;
pub mod ids;
pub mod keys;
pub mod queue;
pub mod secrets;
pub mod store;

pub use clock::{Clock, SystemClock};
pub use ids::{IdSource, RandomIds};
pub use keys::{DataKey, DataKeys, KeyError, PlainKey, master_cipher};
pub use queue::{MAX_MESSAGE_BYTES, OutgoingMessage, Queue, QueueError, ReceivedMessage};
pub use secrets::{AppSecrets, SecretSource, SecretsError};
pub use store::{Claimed, OutboundSave, Store, StoreError};
