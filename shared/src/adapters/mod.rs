//! Implementations of the ports: on AWS (DynamoDB, SQS, Secrets Manager, KMS) and embedded in-process
//! (for unit tests and the local runner; with the `file-store` feature, the embedded store can be
//! kept in a file). Both kinds pass the same contract suites.

pub mod dynamodb;
pub mod kms;
pub mod local_keys;
pub mod memory_queue;
pub mod memory_store;
pub mod secrets;
pub mod sqs;

pub use dynamodb::DynamoStore;
pub use kms::KmsDataKeys;
pub use local_keys::AppSecretDataKeys;
pub use memory_queue::{MemoryQueue, Redrive};
pub use memory_store::MemoryStore;
#[cfg(feature = "file-store")]
pub use memory_store::StoreFileError;
pub use secrets::{SecretsManagerSource, StaticSecrets};
pub use sqs::SqsQueue;

/// The AWS SDK configuration from the environment, loaded once per cold start. `AWS_ENDPOINT_URL`
/// points every client at a local emulator without any change to the code.
pub async fn load_aws_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}
