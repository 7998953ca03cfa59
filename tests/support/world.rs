//! A complete hubsync deployment for one test: DynamoDB, SQS and Secrets Manager on moto, the
//! HubSpot simulator, and a clock the test moves. `World::deps` signs as the tests' administrator,
//! for setting up and inspecting; a function's code runs on [`World::function`]'s dependencies,
//! signed as that function's role in template.yaml.

use std::sync::{Arc, Mutex};

use hubspot_sim::{RunningSimulator, SimConfig};
use hubsync::deps::{AwsResources, Deps, QueueUrls};
use hubsync::domain::{ApiKeyRecord, ConnectionId, Secret, Tenant, TenantId};
use hubsync::hubspot::HubSpotClient;
use hubsync::ports::Clock;
use hubsync::settings::Settings;
use hubsync::work::Deadline;
use time::{Duration, OffsetDateTime};

use crate::Function;
use crate::logs::{SecretKind, SecretWatch};

pub const REDIRECT_URI: &str = "https://hubsync.example.com/oauth/callback";
pub const CONSOLE: &str = "https://console.example.com";
pub const CLIENT_ID: &str = "sim-client-id";
pub const CLIENT_SECRET: &str = "sim-client-secret";
pub const DELIVERY_SIGNING_SECRET: &str = "delivery-secret";
pub const TOKEN_ENCRYPTION_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
/// The platform team's key to the admin API, in the test deployment's app secret.
pub const ADMIN_API_KEY: &str = "hsk_admin_test_5f0c2a9e41b7d3e8c6a1f4b2d9e07c35";
/// The simulated developer account's API key, which manages the default app's webhooks.
pub const DEVELOPER_API_KEY: &str = "sim-developer-key-54321";

/// The wall clock, moved ahead when a test says so (to expire a token, say): time passes for
/// hubsync as it does for HubSpot's simulator and the pacer's waits, plus what the test adds.
pub struct ManualClock(Mutex<Duration>);

impl ManualClock {
    pub fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + *self.0.lock().unwrap()
    }
}

pub struct World {
    /// The deployment as the tests' administrator sees it: for setup and assertions.
    pub deps: Deps,
    /// The deployment's table, secret and queues.
    pub resources: AwsResources,
    /// The DynamoDB table behind `deps.store`.
    pub table: String,
    /// The URLs of the push, inbound and bulk work queues.
    pub work_queues: [String; 3],
    pub sim: RunningSimulator,
    pub clock: Arc<ManualClock>,
    /// Its secrets, which must not appear in the lines logged while it exists.
    pub secrets: SecretWatch,
}

pub fn settings(api_url: &str) -> Settings {
    Settings {
        hubspot_api_url: api_url.to_string(),
        hubspot_app_url: api_url.to_string(),
        hubspot_api_version: Default::default(),
        oauth_redirect_uri: REDIRECT_URI.to_string(),
        // Derived from the tenant's field catalogue, as in a deployment that names none.
        required_scopes: None,
        optional_scopes: None,
        allowed_return_origins: vec![CONSOLE.to_string()],
        allow_shared_portals: false,
        platform_name: "Acme".into(),
        webhook_url: None,
        accept_legacy_webhook_signatures: false,
        // The tests' platforms listen on this machine, over plain http.
        allowed_ingest_origins: vec![],
        allow_local_ingest: true,
        default_ingest_url: None,
        hubspot_app_id: None,
        keep_webhook_subscriptions: false,
    }
}

impl World {
    /// Calls to HubSpot's token endpoint, whatever its version: each is a code exchanged (or a
    /// token refreshed).
    pub fn token_calls(&self) -> u64 {
        ["/oauth/v1/token", "/oauth/v3/token", "/oauth/2026-03/token", "/oauth/2026-09/token"]
            .iter()
            .map(|p| self.sim.request_count("POST", p))
            .sum()
    }

    pub async fn new() -> World {
        World::with(SimConfig::default(), |_| {}).await
    }

    pub async fn with(sim_config: SimConfig, adjust: impl FnOnce(&mut Settings)) -> World {
        let secrets = SecretWatch::start();
        secrets.register(SecretKind::ClientSecret, CLIENT_SECRET);
        secrets.register(SecretKind::DeliverySigningSecret, DELIVERY_SIGNING_SECRET);
        secrets.register(SecretKind::TokenEncryptionKey, TOKEN_ENCRYPTION_KEY);
        secrets.register(SecretKind::AdminApiKey, ADMIN_API_KEY);
        secrets.register(SecretKind::DeveloperApiKey, DEVELOPER_API_KEY);
        let sim = hubspot_sim::start(sim_config).await.expect("simulator starts");
        let aws = crate::aws_config().await;
        let store = crate::dynamo_store().await;
        let table = store.table().to_string();
        let secret_name = crate::unique_name("hubsync/app");
        let secret = serde_json::json!({
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "delivery_signing_secret": DELIVERY_SIGNING_SECRET,
            "token_encryption_key": TOKEN_ENCRYPTION_KEY,
            "admin_api_key": ADMIN_API_KEY,
            "developer_api_key": DEVELOPER_API_KEY,
        });
        aws_sdk_secretsmanager::Client::new(&aws)
            .create_secret()
            .name(&secret_name)
            .secret_string(secret.to_string())
            .send()
            .await
            .unwrap();
        let mut settings = settings(&sim.base_url());
        adjust(&mut settings);
        let clock = Arc::new(ManualClock(Mutex::new(Duration::ZERO)));
        let hubspot = HubSpotClient::new(&sim.base_url(), &sim.base_url()).unwrap();
        let token_key = aws_sdk_kms::Client::new(&aws)
            .create_key()
            .description("hubsync tests: wraps the data keys of stored tokens")
            .send()
            .await
            .unwrap()
            .key_metadata
            .expect("key metadata")
            .arn
            .expect("a key ARN");
        let resources = AwsResources {
            table: table.clone(),
            app_secret_id: secret_name,
            token_key_id: token_key,
            push: queue_pair("push").await,
            inbound: queue_pair("inbound").await,
            bulk: queue_pair("bulk").await,
        };
        let deps = Deps::on_aws(&aws, &resources, hubspot, settings, clock.clone());
        let work_queues = [resources.push.work.clone(), resources.inbound.work.clone(), resources.bulk.work.clone()];
        World { deps, resources, table, work_queues, sim, clock, secrets }
    }

    /// `function`'s dependencies, as a new Lambda instance of it has them: the deployment's
    /// store, secrets and queues, signed as the function's role in template.yaml, own memory.
    pub async fn function(&self, function: Function) -> Deps {
        let aws = crate::aws_config_as(function).await;
        Deps::on_aws(
            &aws,
            &self.resources,
            self.deps.hubspot.clone(),
            (*self.deps.settings).clone(),
            self.clock.clone(),
        )
    }

    /// The deadline of a Lambda invocation starting now, generous (the bulk worker's 15 minutes):
    /// the local AWS emulator is slower than AWS.
    pub fn deadline(&self) -> Deadline {
        Deadline::after(self.clock.now(), std::time::Duration::from_secs(15 * 60))
    }

    /// Breaks a stored connection's config: its item stays, with a body that does not read,
    /// as after a bad manual edit. Reading it is then a store error.
    pub async fn break_config(&self, connection: &ConnectionId) {
        let client = aws_sdk_dynamodb::Client::new(&crate::aws_config().await);
        let item = |value: &str| aws_sdk_dynamodb::types::AttributeValue::S(value.to_string());
        client
            .update_item()
            .table_name(&self.table)
            .key("pk", item(&format!("CONN#{connection}")))
            .key("sk", item("CONFIG"))
            .update_expression("SET body = :broken")
            .expression_attribute_values(":broken", item("{ this is not a config"))
            .send()
            .await
            .unwrap();
    }

    /// Puts a new client secret into the deployment's app secret (Secrets Manager), as an
    /// operator rotating the HubSpot app's secret does.
    pub async fn rotate_client_secret(&self, client_secret: &str) {
        self.secrets.register(SecretKind::ClientSecret, client_secret);
        let secret = serde_json::json!({
            "client_id": CLIENT_ID,
            "client_secret": client_secret,
            "delivery_signing_secret": DELIVERY_SIGNING_SECRET,
            "admin_api_key": ADMIN_API_KEY,
        });
        aws_sdk_secretsmanager::Client::new(&crate::aws_config().await)
            .put_secret_value()
            .secret_id(&self.resources.app_secret_id)
            .secret_string(secret.to_string())
            .send()
            .await
            .unwrap();
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

/// A fresh SQS queue on moto with its dead-letter queue, for template.yaml's queues of `role`.
async fn queue_pair(role: &str) -> QueueUrls {
    let (work, parked) = crate::sqs_queue_with_dlq(role, 8, std::time::Duration::from_secs(30)).await;
    QueueUrls { work: work.url().to_string(), parked: parked.url().to_string() }
}

/// Messages on these SQS queues, visible, in flight or delayed (SQS's approximate counts).
pub async fn queued_on(urls: &[String]) -> u64 {
    let client = aws_sdk_sqs::Client::new(&crate::aws_config().await);
    let mut total = 0;
    for url in urls {
        let attributes = client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .unwrap();
        for name in [
            aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages,
            aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed,
        ] {
            total +=
                attributes.attributes().and_then(|a| a.get(&name)).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    total
}
