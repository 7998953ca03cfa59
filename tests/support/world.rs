//! A complete hubsync deployment for one test: DynamoDB and Secrets Manager on moto, the HubSpot
//! simulator, and a clock the test moves.

use std::sync::{Arc, Mutex};

use hubspot_sim::{RunningSimulator, SimConfig};
use hubsync::adapters::SecretsManagerSource;
use hubsync::deps::{Deps, QueuePair, Queues};
use hubsync::domain::{ApiKeyRecord, Secret, Tenant, TenantId};
use hubsync::hubspot::HubSpotClient;
use hubsync::ports::Clock;
use hubsync::settings::{DEFAULT_OPTIONAL_SCOPES, DEFAULT_REQUIRED_SCOPES, Settings};
use time::{Duration, OffsetDateTime};

use crate::logs::{SecretKind, SecretWatch};

pub const REDIRECT_URI: &str = "https://hubsync.example.com/oauth/callback";
pub const CONSOLE: &str = "https://console.example.com";
pub const CLIENT_ID: &str = "sim-client-id";
pub const CLIENT_SECRET: &str = "sim-client-secret";
pub const DELIVERY_SIGNING_SECRET: &str = "delivery-secret";
pub const TOKEN_ENCRYPTION_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// A clock that moves only when the test says so.
pub struct ManualClock(Mutex<OffsetDateTime>);

impl ManualClock {
    pub fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap()
    }
}

pub struct World {
    pub deps: Deps,
    pub sim: RunningSimulator,
    pub clock: Arc<ManualClock>,
    /// Its secrets, which must not appear in the lines logged while it exists.
    pub secrets: SecretWatch,
}

pub fn settings(api_url: &str) -> Settings {
    Settings {
        hubspot_api_url: api_url.to_string(),
        hubspot_app_url: api_url.to_string(),
        oauth_redirect_uri: REDIRECT_URI.to_string(),
        required_scopes: DEFAULT_REQUIRED_SCOPES.iter().map(|s| s.to_string()).collect(),
        optional_scopes: DEFAULT_OPTIONAL_SCOPES.iter().map(|s| s.to_string()).collect(),
        allowed_return_origins: vec![CONSOLE.to_string()],
        allow_shared_portals: false,
        platform_name: "Acme".into(),
        webhook_url: None,
        accept_legacy_webhook_signatures: false,
    }
}

impl World {
    pub async fn new() -> World {
        World::with(SimConfig::default(), |_| {}).await
    }

    pub async fn with(sim_config: SimConfig, adjust: impl FnOnce(&mut Settings)) -> World {
        let secrets = SecretWatch::start();
        secrets.register(SecretKind::ClientSecret, CLIENT_SECRET);
        secrets.register(SecretKind::DeliverySigningSecret, DELIVERY_SIGNING_SECRET);
        secrets.register(SecretKind::TokenEncryptionKey, TOKEN_ENCRYPTION_KEY);
        let sim = hubspot_sim::start(sim_config).await.expect("simulator starts");
        let aws = crate::aws_config().await;
        let store = crate::dynamo_store().await;
        let secret_name = crate::unique_name("hubsync/app");
        let secret = serde_json::json!({
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "delivery_signing_secret": DELIVERY_SIGNING_SECRET,
            "token_encryption_key": TOKEN_ENCRYPTION_KEY,
        });
        let secrets_client = aws_sdk_secretsmanager::Client::new(&aws);
        secrets_client.create_secret().name(&secret_name).secret_string(secret.to_string()).send().await.unwrap();
        let mut settings = settings(&sim.base_url());
        adjust(&mut settings);
        let clock = Arc::new(ManualClock(Mutex::new(OffsetDateTime::now_utc())));
        let hubspot = HubSpotClient::new(&sim.base_url(), &sim.base_url()).unwrap();
        let push = queue_pair().await;
        let inbound = queue_pair().await;
        let bulk = queue_pair().await;
        let deps = Deps::new(
            Arc::new(store),
            Arc::new(SecretsManagerSource::new(secrets_client, secret_name)),
            hubspot,
            settings,
            clock.clone(),
            Queues { push, inbound, bulk },
        );
        World { deps, sim, clock, secrets }
    }

    /// Another Lambda instance of the same deployment: same store and secrets, own memory.
    pub fn another_instance(&self) -> Deps {
        Deps::new(
            self.deps.store.clone(),
            self.deps.secrets.clone(),
            self.deps.hubspot.clone(),
            (*self.deps.settings).clone(),
            self.clock.clone(),
            Queues { push: self.deps.push.clone(), inbound: self.deps.inbound.clone(), bulk: self.deps.bulk.clone() },
        )
    }

    /// A tenant with a console API key; returns the key.
    pub async fn tenant(&self, id: &str) -> Secret {
        let now = OffsetDateTime::now_utc();
        let tenant = Tenant { id: TenantId::new(id), name: id.to_string(), created_at: now };
        self.deps.store.put_tenant(&tenant).await.unwrap();
        let (key, record) = ApiKeyRecord::generate(tenant.id, "tests".into(), now);
        self.deps.store.put_api_key(&record).await.unwrap();
        self.secrets.register(SecretKind::ConsoleApiKey, key.expose());
        key
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.secrets.register_issued_tokens(&self.sim);
        self.secrets.assert_no_leaks();
    }
}

/// A fresh SQS queue on moto with its dead-letter queue.
async fn queue_pair() -> QueuePair {
    let (work, parked) = crate::sqs_queue_with_dlq(8, std::time::Duration::from_secs(30)).await;
    QueuePair { work: Arc::new(work), parked: Arc::new(parked) }
}
