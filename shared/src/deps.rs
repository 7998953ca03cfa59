//! Everything a function needs, built once per cold start and shared by every invocation.

use std::sync::Arc;

use aws_config::SdkConfig;

use crate::adapters::{AppSecretDataKeys, DynamoStore, KmsDataKeys, SecretsManagerSource, SqsQueue, load_aws_config};
use crate::connect::tokens::TokenProvider;
use crate::hubspot::{ClientOptions, HubSpotClient};
use crate::inbound::PlatformClient;
use crate::inbound::destination::IngestPolicy;
use crate::ports::{Clock, DataKeys, IdSource, Queue, RandomIds, SecretSource, Store, SystemClock};
use crate::settings::Settings;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A work queue and its dead-letter queue.
#[derive(Clone)]
pub struct QueuePair {
    /// Work waiting to be done.
    pub work: Arc<dyn Queue>,
    /// Work that could not be done, each with its reason, until a redrive.
    pub parked: Arc<dyn Queue>,
}

/// The three work queues, each with its dead-letter queue.
pub struct Queues {
    pub push: QueuePair,
    pub inbound: QueuePair,
    pub bulk: QueuePair,
}

#[derive(Clone)]
pub struct Deps {
    pub store: Arc<dyn Store>,
    pub secrets: Arc<dyn SecretSource>,
    pub hubspot: HubSpotClient,
    /// Delivers HubSpot's changes to the platform's ingest endpoint.
    pub platform: PlatformClient,
    pub tokens: Arc<TokenProvider>,
    pub settings: Arc<Settings>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdSource>,
    /// Platform changes on their way to HubSpot.
    pub push: QueuePair,
    /// HubSpot changes (from webhooks) on their way to the platform.
    pub inbound: QueuePair,
    /// Scheduled pulls, a few pages a message, apart from live traffic.
    pub bulk: QueuePair,
}

impl Deps {
    pub fn new(
        store: Arc<dyn Store>,
        secrets: Arc<dyn SecretSource>,
        hubspot: HubSpotClient,
        settings: Settings,
        clock: Arc<dyn Clock>,
        queues: Queues,
    ) -> Self {
        let Queues { push, inbound, bulk } = queues;
        // Without KMS (locally, in-process tests) data keys are wrapped with the app secret's key.
        let keys = Arc::new(AppSecretDataKeys::new(secrets.clone()));
        let tokens = Arc::new(TokenProvider::new(store.clone(), secrets.clone(), keys, hubspot.clone(), clock.clone()));
        Deps {
            store,
            secrets,
            hubspot,
            platform: PlatformClient::new(IngestPolicy::from_settings(&settings)),
            tokens,
            settings: Arc::new(settings),
            clock,
            ids: Arc::new(RandomIds),
            push,
            inbound,
            bulk,
        }
    }

    /// The production wiring: DynamoDB, Secrets Manager and HubSpot, named by the environment
    /// that template.yaml sets (`HUBSYNC_TABLE`, `HUBSYNC_APP_SECRET_ID`, the queue URLs, `HUBSYNC_*`).
    pub async fn from_env() -> Result<Deps, BoxError> {
        let settings = Settings::from_env()?;
        let resources = AwsResources::from_env()?;
        let hubspot = HubSpotClient::with_options(ClientOptions {
            api_base_url: settings.hubspot_api_url.clone(),
            app_base_url: settings.hubspot_app_url.clone(),
            api_version: settings.hubspot_api_version.clone(),
            ..ClientOptions::default()
        })?;
        Ok(Deps::on_aws(&load_aws_config().await, &resources, hubspot, settings, Arc::new(SystemClock)))
    }

    /// Clients for `resources`, signed with the credentials of `aws`: a function's role in AWS,
    /// that function's principal in the tests.
    pub fn on_aws(
        aws: &SdkConfig,
        resources: &AwsResources,
        hubspot: HubSpotClient,
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> Deps {
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(aws), resources.table.clone());
        let secrets =
            SecretsManagerSource::new(aws_sdk_secretsmanager::Client::new(aws), resources.app_secret_id.clone());
        let sqs = aws_sdk_sqs::Client::new(aws);
        let pair = |urls: &QueueUrls| QueuePair {
            work: Arc::new(SqsQueue::new(sqs.clone(), urls.work.clone())),
            parked: Arc::new(SqsQueue::new(sqs.clone(), urls.parked.clone())),
        };
        let queues =
            Queues { push: pair(&resources.push), inbound: pair(&resources.inbound), bulk: pair(&resources.bulk) };
        let keys = Arc::new(KmsDataKeys::new(aws_sdk_kms::Client::new(aws), resources.token_key_id.clone()));
        Deps::new(Arc::new(store), Arc::new(secrets), hubspot, settings, clock, queues).with_data_keys(keys)
    }

    /// The same dependencies, with stored tokens' data keys from `keys`.
    pub fn with_data_keys(mut self, keys: Arc<dyn DataKeys>) -> Deps {
        self.tokens = Arc::new(TokenProvider::new(
            self.store.clone(),
            self.secrets.clone(),
            keys,
            self.hubspot.clone(),
            self.clock.clone(),
        ));
        self
    }
}

/// A work queue's URL and its dead-letter queue's.
#[derive(Debug, Clone)]
pub struct QueueUrls {
    pub work: String,
    pub parked: String,
}

/// Where a deployment keeps its state, secrets and work: the resources template.yaml creates.
#[derive(Debug, Clone)]
pub struct AwsResources {
    pub table: String,
    pub app_secret_id: String,
    /// The KMS key that wraps the data keys of stored tokens.
    pub token_key_id: String,
    pub push: QueueUrls,
    pub inbound: QueueUrls,
    pub bulk: QueueUrls,
}

impl AwsResources {
    /// Named by the environment template.yaml sets for every function.
    pub fn from_env() -> Result<AwsResources, BoxError> {
        let required = |name: &str| std::env::var(name).map_err(|_| format!("environment variable {name} is required"));
        let urls = |work: &str, parked: &str| -> Result<QueueUrls, BoxError> {
            Ok(QueueUrls { work: required(work)?, parked: required(parked)? })
        };
        Ok(AwsResources {
            table: required("HUBSYNC_TABLE")?,
            app_secret_id: required("HUBSYNC_APP_SECRET_ID")?,
            token_key_id: required("HUBSYNC_TOKEN_KEY_ID")?,
            push: urls("HUBSYNC_PUSH_QUEUE_URL", "HUBSYNC_PUSH_DLQ_URL")?,
            inbound: urls("HUBSYNC_INBOUND_QUEUE_URL", "HUBSYNC_INBOUND_DLQ_URL")?,
            bulk: urls("HUBSYNC_BULK_QUEUE_URL", "HUBSYNC_BULK_DLQ_URL")?,
        })
    }
}
