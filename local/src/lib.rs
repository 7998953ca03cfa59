//! hubsync on one machine, with no AWS account: the routes of every function on one port, the
//! embedded store, secrets from local config, and the HubSpot simulator (or a real HubSpot).
//! State is kept in a directory across restarts (see `state_dir`), or in memory only.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Query;
use axum::routing::get;
use hubspot_sim::SimConfig;
use hubsync::adapters::{MemoryQueue, MemoryStore, Redrive, StaticSecrets};
use hubsync::deps::{Deps, QueuePair, Queues};
use hubsync::domain::{ApiKeyRecord, Secret, Tenant, TenantId, hash_api_key};
use hubsync::hubspot::HubSpotClient;
use hubsync::ports::{AppSecrets, Store, StoreError, SystemClock};
use hubsync::settings::Settings;
use hubsync::webhooks::subscriptions;
use hubsync::work::QueueWorker;
use hubsync::work::sqs::{BULK_WORKER_TIMEOUT, WORKER_TIMEOUT};
use hubsync::{inbound, outbound};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

mod options;
mod platform;
mod state_dir;

pub use options::{
    DEFAULT_LOCAL_ADDR, DEFAULT_SIM_ADDR, DEFAULT_STATE_DIR, IN_MEMORY, LOCAL_ADDR_VAR, LocalError, LocalOptions,
    REAL_HUBSPOT_VARS, RealHubSpot, SIM_ADDR_VAR, STATE_VAR, StateLocation,
};
pub use platform::{PlatformArrival, StandInPlatform};
use state_dir::{LocalSecrets, StateDir};
pub use state_dir::{SECRETS_FILE, SIMULATOR_FILE, STORE_FILE, StateDirError};

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
    /// Where the state is kept.
    pub state: StateLocation,
    /// The store behind `deps.store`, to release its file at shutdown.
    store: Arc<MemoryStore>,
    queues: [LocalQueue; 3],
    /// Stops the server gracefully: requests under way finish, idle connections close.
    stop_server: oneshot::Sender<()>,
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

    /// Adds a tenant whose console API key is `api_key`, as the platform's onboarding would
    /// (a tenant or key that exists already is kept as it is).
    pub async fn add_tenant(&self, tenant_id: &str, api_key: &str) {
        add_tenant(self.deps.store.as_ref(), tenant_id, api_key).await.expect("the local store");
    }

    /// Stops serving (requests under way finish), stops the workers (messages still queued are
    /// lost) and the simulator (which writes its state), and releases the state directory: a
    /// runner started next, in this process or another, opens it.
    pub async fn shutdown(self) {
        let _ = self.stop_server.send(());
        let _ = self.server.await;
        self.workers.iter().for_each(|worker| worker.abort());
        for worker in self.workers {
            let _ = worker.await;
        }
        if let Some(simulator) = self.simulator {
            simulator.shutdown().await;
        }
        // Tasks still winding down may hold the store: they no longer hold its file.
        self.store.close_file();
    }
}

pub async fn start(options: LocalOptions) -> Result<RunningLocal, LocalError> {
    // The state first: its lock keeps a second runner off it, whatever its ports.
    let state = match options.state {
        StateLocation::Directory(dir) => StateLocation::Directory(std::path::absolute(&dir)?),
        StateLocation::Memory => StateLocation::Memory,
    };
    let (store, secrets, simulator_file) = match &state {
        StateLocation::Memory => (MemoryStore::new(), LocalSecrets::generate(), None),
        StateLocation::Directory(dir) => {
            let kept = StateDir::open(dir)?;
            let simulator_file = match options.real_hubspot {
                Some(_) => None,
                None => Some(kept.simulator_file()?),
            };
            (kept.store, kept.secrets, simulator_file)
        }
    };
    let store = Arc::new(store);

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
            let started = match simulator_file {
                Some(file) => hubspot_sim::start_kept(SimConfig::default(), options.simulator_addr, file).await,
                None => hubspot_sim::start_on(SimConfig::default(), options.simulator_addr).await,
            };
            let sim = started
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
        hubspot_api_version: Default::default(),
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
    let delivery_signing_secret = secrets.delivery_signing_secret.clone();
    let secrets = AppSecrets {
        client_id,
        client_secret,
        delivery_signing_secret: secrets.delivery_signing_secret,
        token_encryption_key: Some(secrets.token_encryption_key),
        admin_api_key: Some(Secret::new(LOCAL_ADMIN_API_KEY)),
        developer_api_key: simulator.as_ref().map(|sim| Secret::new(sim.developer_api_key(SIM_CLIENT_ID))),
    };
    add_tenant(store.as_ref(), DEMO_TENANT, DEMO_API_KEY).await?;
    tracing::info!("hubsync-local state: {state} ({STATE_VAR})");
    let hubspot = HubSpotClient::new(&api_url, &app_url).map_err(std::io::Error::other)?;
    let queues = [LocalQueue::new(), LocalQueue::new(), LocalQueue::new()];
    let [push, inbound, bulk] = &queues;
    let deps = Deps::new(
        store.clone(),
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
    let (stop_server, server_stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let serving = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = server_stopped.await;
        });
        if let Err(err) = serving.await {
            tracing::error!(error = %err, "local server stopped");
        }
    });
    Ok(RunningLocal { base_url, deps, simulator, platform, state, store, queues, stop_server, server, workers })
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

/// Adds the tenant and its key unless they exist: on a kept state, every start after the first
/// finds them (and keeps them as they are).
async fn add_tenant(store: &dyn Store, tenant_id: &str, api_key: &str) -> Result<(), StoreError> {
    let now = time::OffsetDateTime::now_utc();
    let name = if tenant_id == DEMO_TENANT { "Demo".to_string() } else { tenant_id.to_string() };
    let tenant = Tenant { id: TenantId::new(tenant_id), name, created_at: now };
    store.create_tenant(&tenant).await?;
    let key_hash = hash_api_key(api_key);
    if store.find_api_key(&key_hash).await?.is_none() {
        let key = ApiKeyRecord {
            key_id: format!("local-{tenant_id}"),
            tenant_id: tenant.id,
            key_hash,
            label: format!("local runner key of {tenant_id}"),
            created_at: now,
            expires_at: None,
        };
        store.put_api_key(&key).await?;
    }
    Ok(())
}
