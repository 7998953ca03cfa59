//! hubsync on one machine, with no AWS account: the routes of every function on one port, the
//! embedded store, secrets from local config, and the HubSpot simulator (or a real HubSpot).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Query;
use axum::routing::get;
use base64::Engine;
use hubsync::adapters::{MemoryQueue, MemoryStore, Redrive, StaticSecrets};
use hubsync::deps::{Deps, QueuePair, Queues};
use hubsync::domain::{ApiKeyRecord, Secret, Tenant, TenantId, hash_api_key};
use hubsync::hubspot::HubSpotClient;
use hubsync::ports::{AppSecrets, Store, SystemClock};
use hubsync::settings::Settings;
use hubsync::webhooks::subscriptions;
use hubsync::work::QueueWorker;
use hubsync::work::sqs::{BULK_WORKER_TIMEOUT, WORKER_TIMEOUT};
use hubsync::{inbound, outbound};
use rand::RngCore;
use tokio::net::TcpListener;

mod options;
mod platform;

pub use options::{
    DEFAULT_LOCAL_ADDR, DEFAULT_SIM_ADDR, LOCAL_ADDR_VAR, LocalError, LocalOptions, REAL_HUBSPOT_VARS, RealHubSpot,
    SIM_ADDR_VAR,
};
pub use platform::{PlatformArrival, StandInPlatform};

/// The demo tenant's console API key, so the README's curl commands work as written.
pub const DEMO_API_KEY: &str = "hsk_local_demo";
pub const DEMO_TENANT: &str = "demo";
/// The simulated HubSpot app's client id.
const SIM_CLIENT_ID: &str = "sim-client-id";
/// The admin API's key on the local runner (in AWS it is `admin_api_key` in the app secret).
pub const LOCAL_ADMIN_API_KEY: &str = "hsk_local_admin_0123456789abcdef0123456789";

pub struct RunningLocal {
    pub base_url: String,
    pub deps: Deps,
    pub simulator: Option<hubspot_sim::RunningSimulator>,
    /// The stand-in for the platform's ingest endpoint (`/local/platform/...`).
    pub platform: StandInPlatform,
    queues: [LocalQueue; 3],
    server: tokio::task::JoinHandle<()>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

/// How many messages each in-process queue holds, visible or being worked on: what SQS reports
/// as `ApproximateNumberOfMessages` plus `ApproximateNumberOfMessagesNotVisible`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepths {
    pub push: usize,
    pub inbound: usize,
    pub bulk: usize,
    /// Messages in the three dead-letter queues together.
    pub parked: usize,
}

impl RunningLocal {
    /// The work queues' and dead-letter queues' depths now.
    pub fn queue_depths(&self) -> QueueDepths {
        let [push, inbound, bulk] = &self.queues;
        QueueDepths {
            push: push.work.len(),
            inbound: inbound.work.len(),
            bulk: bulk.work.len(),
            parked: self.queues.iter().map(|q| q.parked.len()).sum(),
        }
    }

    /// Starts `count` more consumers on each work queue, as Lambda runs several instances of a
    /// worker function at once (template.yaml's `WorkerConcurrency`, 5 by default); `start`
    /// starts one per queue.
    pub fn add_workers(&mut self, count: usize) {
        for _ in 0..count {
            let more = spawn_workers(&self.deps, &self.queues);
            self.workers.extend(more);
        }
    }

    /// Adds a tenant whose console API key is `api_key`, as the platform's onboarding would.
    pub async fn add_tenant(&self, tenant_id: &str, api_key: &str) {
        add_tenant(self.deps.store.as_ref(), tenant_id, api_key).await;
    }

    pub async fn shutdown(self) {
        self.server.abort();
        self.workers.iter().for_each(|worker| worker.abort());
        if let Some(simulator) = self.simulator {
            simulator.shutdown().await;
        }
    }
}

fn random_key() -> Secret {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    Secret::new(base64::engine::general_purpose::STANDARD.encode(key))
}

pub async fn start(options: LocalOptions) -> Result<RunningLocal, LocalError> {
    let listener = TcpListener::bind(options.addr)
        .await
        .map_err(|e| options::listen_error(e, "hubsync", options.addr, LOCAL_ADDR_VAR))?;
    let base_url = format!("http://{}", listener.local_addr()?);

    let (simulator, api_url, app_url, client_id, client_secret, redirect_uri) = match options.real_hubspot {
        Some(real) => (
            None,
            "https://api.hubapi.com".to_string(),
            "https://app.hubspot.com".to_string(),
            real.client_id,
            real.client_secret,
            real.redirect_uri,
        ),
        None => {
            let sim = hubspot_sim::start_on(hubspot_sim::SimConfig::default(), options.simulator_addr)
                .await
                .map_err(|e| options::listen_error(e, "the HubSpot simulator", options.simulator_addr, SIM_ADDR_VAR))?;
            let url = sim.base_url();
            (
                Some(sim),
                url.clone(),
                url,
                SIM_CLIENT_ID.to_string(),
                Secret::new("sim-client-secret"),
                format!("{base_url}/oauth/callback"),
            )
        }
    };

    let settings = Settings {
        hubspot_api_url: api_url.clone(),
        hubspot_app_url: app_url.clone(),
        oauth_redirect_uri: redirect_uri,
        // Derived from the tenant's field catalogue, as in a deployment that names none.
        required_scopes: None,
        optional_scopes: None,
        allowed_return_origins: vec![base_url.clone()],
        allow_shared_portals: false,
        platform_name: "Platform".into(),
        webhook_url: Some(format!("{base_url}/webhooks/hubspot")),
        accept_legacy_webhook_signatures: false,
        // On a laptop the platform stand-in is this runner itself, over plain http.
        allowed_ingest_origins: vec![],
        allow_local_ingest: true,
        default_ingest_url: Some(format!("{base_url}/local/platform/ingest")),
        hubspot_app_id: simulator.as_ref().map(|sim| sim.app_id(SIM_CLIENT_ID)),
        // The simulated app's subscriptions follow the configs, so webhooks come as mapped.
        keep_webhook_subscriptions: simulator.is_some(),
    };
    let delivery_signing_secret = random_key();
    let secrets = AppSecrets {
        client_id,
        client_secret,
        delivery_signing_secret: delivery_signing_secret.clone(),
        token_encryption_key: Some(random_key()),
        admin_api_key: Some(Secret::new(LOCAL_ADMIN_API_KEY)),
        developer_api_key: simulator.as_ref().map(|sim| Secret::new(sim.developer_api_key(SIM_CLIENT_ID))),
    };
    let store = Arc::new(MemoryStore::new());
    add_tenant(store.as_ref(), DEMO_TENANT, DEMO_API_KEY).await;
    let hubspot = HubSpotClient::new(&api_url, &app_url).map_err(std::io::Error::other)?;
    let queues = [LocalQueue::new(), LocalQueue::new(), LocalQueue::new()];
    let [push, inbound, bulk] = &queues;
    let deps = Deps::new(
        store,
        Arc::new(StaticSecrets::new(secrets)),
        hubspot,
        settings,
        Arc::new(SystemClock),
        Queues { push: push.pair(), inbound: inbound.pair(), bulk: bulk.pair() },
    );
    let workers = spawn_workers(&deps, &queues);

    if simulator.is_some() {
        // The simulated app's webhook target and the subscriptions the saved configs need (after
        // a restart on kept state); each config save keeps them in line from then on.
        let needed = subscriptions::needed_by_all(&deps).await.map_err(std::io::Error::other)?;
        subscriptions::put_in_place(&deps, &needed).await.map_err(std::io::Error::other)?;
    }
    let platform = StandInPlatform::new(delivery_signing_secret);
    let app = app(deps.clone()).merge(platform.routes());
    let server = tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(error = %err, "local server stopped");
        }
    });
    Ok(RunningLocal { base_url, deps, simulator, platform, queues, server, workers })
}

/// As template.yaml sets them for the work queues.
const VISIBILITY: Duration = Duration::from_secs(360);
const MAX_RECEIVES: u32 = 8;

/// An in-process work queue with its dead-letter queue, kept as memory queues so the loop that
/// consumes them and `queue_depths` can reach them.
struct LocalQueue {
    work: Arc<MemoryQueue>,
    parked: Arc<MemoryQueue>,
}

impl LocalQueue {
    fn new() -> Self {
        let parked = Arc::new(MemoryQueue::new(VISIBILITY, None));
        let work = Arc::new(MemoryQueue::new(
            VISIBILITY,
            Some(Redrive { dead_letter_queue: parked.clone(), max_receives: MAX_RECEIVES }),
        ));
        LocalQueue { work, parked }
    }

    fn pair(&self) -> QueuePair {
        QueuePair { work: self.work.clone(), parked: self.parked.clone() }
    }
}

/// One consumer per work queue: the push worker, the inbound worker and the pull worker.
fn spawn_workers(deps: &Deps, [push, inbound, bulk]: &[LocalQueue; 3]) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        tokio::spawn(run_worker(
            deps.clone(),
            Box::new(outbound::push_worker(deps.clone())),
            push.work.clone(),
            WORKER_TIMEOUT,
        )),
        tokio::spawn(run_worker(
            deps.clone(),
            Box::new(inbound::inbound_worker(deps.clone())),
            inbound.work.clone(),
            WORKER_TIMEOUT,
        )),
        tokio::spawn(run_worker(
            deps.clone(),
            Box::new(inbound::bulk_worker(deps.clone())),
            bulk.work.clone(),
            BULK_WORKER_TIMEOUT,
        )),
    ]
}

/// What Lambda's SQS trigger does in AWS: receive, process before the invocation's deadline,
/// delete, back off or requeue, forever.
async fn run_worker(deps: Deps, worker: Box<dyn QueueWorker>, queue: Arc<MemoryQueue>, timeout: Duration) {
    loop {
        let polled =
            hubsync::work::poll(worker.as_ref(), queue.as_ref(), deps.clock.as_ref(), Duration::from_secs(1), timeout);
        if let Err(err) = polled.await {
            tracing::error!(error = %err, "work queue");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Every function's routes on one router, as API Gateway routes them in AWS, plus a page that
/// stands in for the console's return address.
pub fn app(deps: Deps) -> Router {
    Router::new()
        .route(
            "/local/return",
            get(|Query(outcome): Query<serde_json::Map<String, serde_json::Value>>| async move { axum::Json(outcome) }),
        )
        .merge(oauth_callback::router(deps.clone()))
        .merge(webhook_receiver::router(deps.clone()))
        .merge(console_api::router(deps))
}

async fn add_tenant(store: &dyn Store, tenant_id: &str, api_key: &str) {
    let now = time::OffsetDateTime::now_utc();
    let name = if tenant_id == DEMO_TENANT { "Demo".to_string() } else { tenant_id.to_string() };
    let tenant = Tenant { id: TenantId::new(tenant_id), name, created_at: now };
    store.put_tenant(&tenant).await.expect("embedded store");
    let key = ApiKeyRecord {
        key_id: format!("local-{tenant_id}"),
        tenant_id: tenant.id,
        key_hash: hash_api_key(api_key),
        label: format!("local runner key of {tenant_id}"),
        created_at: now,
        expires_at: None,
    };
    store.put_api_key(&key).await.expect("embedded store");
}
