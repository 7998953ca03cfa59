//! Everything a function needs, built once per cold start and shared by every invocation.

use std::sync::Arc;

use crate::adapters::{DynamoStore, SecretsManagerSource, SqsQueue, load_aws_config};
use crate::connect::tokens::TokenProvider;
use crate::hubspot::HubSpotClient;
use crate::inbound::PlatformClient;
use crate::ports::{Clock, IdSource, Queue, RandomIds, SecretSource, Store, SystemClock};
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
        let tokens = Arc::new(TokenProvider::new(store.clone(), secrets.clone(), hubspot.clone(), clock.clone()));
        Deps {
            store,
            secrets,
            hubspot,
            platform: PlatformClient::new(),
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
        let required = |name: &str| std::env::var(name).map_err(|_| format!("environment variable {name} is required"));
        let settings = Settings::from_env()?;
        let aws = load_aws_config().await;
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), required("HUBSYNC_TABLE")?);
        let secrets =
            SecretsManagerSource::new(aws_sdk_secretsmanager::Client::new(&aws), required("HUBSYNC_APP_SECRET_ID")?);
        let hubspot = HubSpotClient::new(&settings.hubspot_api_url, &settings.hubspot_app_url)?;
        let sqs = aws_sdk_sqs::Client::new(&aws);
        let queue = |name: &str| -> Result<Arc<dyn Queue>, BoxError> {
            Ok(Arc::new(SqsQueue::new(sqs.clone(), required(name)?)))
        };
        let push = QueuePair { work: queue("HUBSYNC_PUSH_QUEUE_URL")?, parked: queue("HUBSYNC_PUSH_DLQ_URL")? };
        let inbound =
            QueuePair { work: queue("HUBSYNC_INBOUND_QUEUE_URL")?, parked: queue("HUBSYNC_INBOUND_DLQ_URL")? };
        let bulk = QueuePair { work: queue("HUBSYNC_BULK_QUEUE_URL")?, parked: queue("HUBSYNC_BULK_DLQ_URL")? };
        Ok(Deps::new(
            Arc::new(store),
            Arc::new(secrets),
            hubspot,
            settings,
            Arc::new(SystemClock),
            Queues { push, inbound, bulk },
        ))
    }
}
