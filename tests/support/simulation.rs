//! A whole hubsync deployment in one process, on one thread, on a simulated clock: the embedded
//! store and queues, the HubSpot simulator and the platform called in-process (no sockets), the
//! Lambda functions run as tasks, and every random choice drawn from one seed. In a tokio
//! runtime with paused time, time moves only when every task waits, straight to the next timer:
//! the same seed replays the same run, event for event, and hours of retries pass in seconds.
//!
//! What is simulated, and why it stays honest: the store and queues are the embedded adapters
//! (they pass the same contract suites as DynamoDB and SQS), HubSpot is the simulator (held to
//! HubSpot's documented behaviour), and the workers are the real ones, called through their
//! Lambda handlers with SQS event JSON. Only the network is replaced, by in-process calls with
//! seeded latency, timeouts and dropped connections.

use std::collections::BTreeMap;
use std::future::Future;
use std::ops::RangeInclusive;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use axum::Router;
use axum::body::{Body, to_bytes};
use hubspot_sim::{DroppedConnection, InProcessSimulator, SimConfig, WebhookRequest, WebhookSender};
use hubsync::adapters::{MemoryQueue, MemoryStore, Redrive, StaticSecrets};
use hubsync::deps::{Deps, QueuePair, Queues};
use hubsync::domain::{ApiKeyRecord, ConnectionId, Secret, Tenant, TenantId};
use hubsync::hubspot::{ClientOptions, HubSpotClient};
use hubsync::inbound::PlatformClient;
use hubsync::inbound::destination::IngestPolicy;
use hubsync::ports::{AppSecrets, Clock, IdSource, Queue, ReceivedMessage};
use hubsync::transport::{Transport, TransportError};
use hubsync::work::Deadline;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use time::OffsetDateTime;
use tower::ServiceExt;

use crate::lambda::{Event, invoke};
use crate::push::{acknowledge, sqs_event};
use crate::world::{CLIENT_ID, CLIENT_SECRET, DELIVERY_SIGNING_SECRET, TOKEN_ENCRYPTION_KEY, settings};

/// Where every simulation's clocks start: 2027-01-01T00:00:00Z.
pub const START_MS: i64 = 1_798_761_600_000;
pub const HUBSPOT_HOST: &str = "hubspot.test";
pub const PLATFORM_HOST: &str = "platform.test";
pub const HUBSYNC_HOST: &str = "hubsync.test";

/// Every random choice of a simulation, drawn from one seed in the order they are made.
#[derive(Clone)]
pub struct Dice(Arc<Mutex<StdRng>>);

impl Dice {
    pub fn new(seed: u64) -> Dice {
        Dice(Arc::new(Mutex::new(StdRng::seed_from_u64(seed))))
    }

    pub fn chance(&self, probability: f64) -> bool {
        probability > 0.0 && self.0.lock().unwrap().random_bool(probability.min(1.0))
    }

    pub fn between(&self, range: RangeInclusive<u64>) -> u64 {
        self.0.lock().unwrap().random_range(range)
    }

    pub fn millis(&self, range: RangeInclusive<u64>) -> Duration {
        Duration::from_millis(self.between(range))
    }

    pub fn index(&self, len: usize) -> usize {
        self.0.lock().unwrap().random_range(0..len)
    }

    pub fn next_u64(&self) -> u64 {
        self.0.lock().unwrap().random()
    }
}

/// hubsync's clock in a simulation: [`START_MS`] plus the runtime's (paused) time since start.
pub struct SimClock {
    start: OffsetDateTime,
    at: tokio::time::Instant,
}

impl SimClock {
    pub fn new() -> SimClock {
        let start = OffsetDateTime::from_unix_timestamp_nanos(i128::from(START_MS) * 1_000_000).unwrap();
        SimClock { start, at: tokio::time::Instant::now() }
    }

    pub fn now_ms(&self) -> i64 {
        START_MS + self.at.elapsed().as_millis() as i64
    }
}

impl Default for SimClock {
    fn default() -> Self {
        SimClock::new()
    }
}

impl Clock for SimClock {
    fn now(&self) -> OffsetDateTime {
        self.start + self.at.elapsed()
    }
}

/// Ids from the seed, so that connection ids (and with them every ordering by id) replay.
pub struct SeededIds(pub Dice);

impl IdSource for SeededIds {
    fn new_id(&self) -> String {
        format!("{:016x}{:016x}", self.0.next_u64(), self.0.next_u64())
    }
}

/// The network, replaced: a request goes to the router serving its host, after a seeded
/// latency each way, within the request's timeout. A response the simulator marks as a dropped
/// connection never arrives.
pub struct InProcessNetwork {
    hosts: Mutex<BTreeMap<String, Router>>,
    dice: Dice,
    latency: RangeInclusive<u64>,
}

impl InProcessNetwork {
    pub fn new(dice: Dice, latency_ms: RangeInclusive<u64>) -> Arc<InProcessNetwork> {
        Arc::new(InProcessNetwork { hosts: Mutex::default(), dice, latency: latency_ms })
    }

    pub fn serve(&self, host: &str, router: Router) {
        self.hosts.lock().unwrap().insert(host.to_string(), router);
    }

    async fn exchange(&self, request: reqwest::Request) -> Result<reqwest::Response, TransportError> {
        tokio::time::sleep(self.dice.millis(self.latency.clone())).await;
        let host = request.url().host_str().unwrap_or_default().to_string();
        let router = self.hosts.lock().unwrap().get(&host).cloned();
        let router = router.ok_or_else(|| TransportError::Connection(format!("no route to host {host}")))?;
        let request: axum::http::Request<reqwest::Body> =
            request.try_into().map_err(|e: reqwest::Error| TransportError::Invalid(e.to_string()))?;
        let (parts, body) = request.into_parts();
        let bytes = body.as_bytes().map(<[u8]>::to_vec).unwrap_or_default();
        let response = router.oneshot(axum::http::Request::from_parts(parts, Body::from(bytes))).await.unwrap();
        if response.extensions().get::<DroppedConnection>().is_some() {
            return Err(TransportError::Connection("the connection closed without an answer".into()));
        }
        let (parts, body) = response.into_parts();
        let bytes = to_bytes(body, 64 * 1024 * 1024).await.map_err(|e| TransportError::Connection(e.to_string()))?;
        tokio::time::sleep(self.dice.millis(self.latency.clone())).await;
        Ok(reqwest::Response::from(axum::http::Response::from_parts(parts, bytes.to_vec())))
    }
}

#[async_trait]
impl Transport for InProcessNetwork {
    async fn send(&self, request: reqwest::Request) -> Result<reqwest::Response, TransportError> {
        match request.timeout().copied() {
            Some(timeout) => {
                tokio::time::timeout(timeout, self.exchange(request)).await.map_err(|_| TransportError::Timeout)?
            }
            None => self.exchange(request).await,
        }
    }
}

/// HubSpot's webhook POSTs, handed to the receiver function in-process as API Gateway events.
/// Some are kept (with `keep_rate`) to be delivered again later: a duplicate, out of order.
pub struct WebhookGateway {
    deps: Mutex<Option<Deps>>,
    dice: Dice,
    keep_rate: Mutex<f64>,
    kept: Mutex<Vec<WebhookRequest>>,
    pub replayed: AtomicU64,
}

impl WebhookGateway {
    pub fn new(dice: Dice) -> Arc<WebhookGateway> {
        Arc::new(WebhookGateway {
            deps: Mutex::default(),
            dice,
            keep_rate: Mutex::new(0.0),
            kept: Mutex::default(),
            replayed: AtomicU64::new(0),
        })
    }

    pub fn set_keep_rate(&self, rate: f64) {
        *self.keep_rate.lock().unwrap() = rate;
    }

    async fn deliver(&self, request: &WebhookRequest) -> u16 {
        let deps = self.deps.lock().unwrap().clone().expect("the deployment is up");
        let path = request.url.split_once(HUBSYNC_HOST).map_or("/webhooks/hubspot", |(_, path)| path);
        let mut event = Event::new("POST", path).header("host", HUBSYNC_HOST);
        for (name, value) in &request.headers {
            event = event.header(name, value);
        }
        let body = String::from_utf8_lossy(&request.body).into_owned();
        invoke(&webhook_receiver::router(deps), event.raw_body("application/json", &body)).await.status.as_u16()
    }

    /// Delivers one kept request again, if any was kept (and the dice say so).
    pub async fn replay_one(&self, probability: f64) {
        let chosen = {
            let mut kept = self.kept.lock().unwrap();
            if kept.is_empty() || !self.dice.chance(probability) {
                return;
            }
            let index = self.dice.index(kept.len());
            kept.swap_remove(index)
        };
        self.replayed.fetch_add(1, Ordering::Relaxed);
        self.deliver(&chosen).await;
    }

    /// Delivers every kept request again.
    pub async fn replay_all(&self) {
        let all = std::mem::take(&mut *self.kept.lock().unwrap());
        for request in all {
            self.replayed.fetch_add(1, Ordering::Relaxed);
            self.deliver(&request).await;
        }
    }
}

impl WebhookSender for WebhookGateway {
    fn post(&self, request: WebhookRequest) -> Pin<Box<dyn Future<Output = Result<u16, String>> + Send + '_>> {
        Box::pin(async move {
            let rate = *self.keep_rate.lock().unwrap();
            if self.dice.chance(rate) {
                self.kept.lock().unwrap().push(request.clone());
            }
            Ok(self.deliver(&request).await)
        })
    }
}

/// A work queue and its dead-letter queue, as template.yaml sets them up.
pub struct SimQueue {
    pub work: Arc<MemoryQueue>,
    pub parked: Arc<MemoryQueue>,
}

impl SimQueue {
    fn new(visibility: Duration) -> SimQueue {
        let parked = Arc::new(MemoryQueue::new(visibility, None));
        let redrive = Redrive { dead_letter_queue: parked.clone(), max_receives: 8 };
        SimQueue { work: Arc::new(MemoryQueue::new(visibility, Some(redrive))), parked }
    }

    fn pair(&self) -> QueuePair {
        QueuePair { work: self.work.clone(), parked: self.parked.clone() }
    }
}

/// How a simulated deployment misbehaves: latencies of the store and the network.
pub struct Conditions {
    pub store_latency_ms: RangeInclusive<u64>,
    pub network_latency_ms: RangeInclusive<u64>,
}

impl Default for Conditions {
    fn default() -> Self {
        Conditions { store_latency_ms: 0..=4, network_latency_ms: 1..=40 }
    }
}

/// A deployment: hubsync's dependencies, the simulator, the network and the queues.
pub struct Deployment {
    pub deps: Deps,
    pub sim: InProcessSimulator,
    pub network: Arc<InProcessNetwork>,
    pub gateway: Arc<WebhookGateway>,
    pub clock: Arc<SimClock>,
    pub dice: Dice,
    /// push, inbound, bulk.
    pub queues: [SimQueue; 3],
}

impl Deployment {
    /// Builds a deployment; call it inside a runtime with paused time.
    pub fn start(seed: u64, conditions: Conditions) -> Deployment {
        let dice = Dice::new(seed);
        let clock = Arc::new(SimClock::new());
        let network = InProcessNetwork::new(dice.clone(), conditions.network_latency_ms);
        let store_dice = dice.clone();
        let store_latency = conditions.store_latency_ms;
        let store = MemoryStore::with_latency(move || store_dice.millis(store_latency.clone()));
        let secrets = AppSecrets {
            client_id: CLIENT_ID.into(),
            client_secret: Secret::new(CLIENT_SECRET),
            delivery_signing_secret: Secret::new(DELIVERY_SIGNING_SECRET),
            token_encryption_key: Some(Secret::new(TOKEN_ENCRYPTION_KEY)),
            admin_api_key: None,
            developer_api_key: None,
        };
        let base = format!("https://{HUBSPOT_HOST}");
        let options =
            ClientOptions { api_base_url: base.clone(), app_base_url: base.clone(), ..ClientOptions::default() };
        let hubspot = HubSpotClient::with_transport(options, network.clone()).unwrap();
        let mut settings = settings(&base);
        settings.webhook_url = Some(format!("https://{HUBSYNC_HOST}/webhooks/hubspot"));
        // As template.yaml has them: 6-minute visibility for the workers, 90 for bulk jobs.
        let queues = [
            SimQueue::new(Duration::from_secs(360)),
            SimQueue::new(Duration::from_secs(360)),
            SimQueue::new(Duration::from_secs(5400)),
        ];
        let mut deps = Deps::new(
            Arc::new(store),
            Arc::new(StaticSecrets::new(secrets)),
            hubspot,
            settings,
            clock.clone(),
            Queues { push: queues[0].pair(), inbound: queues[1].pair(), bulk: queues[2].pair() },
        );
        deps.platform = PlatformClient::with_transport(network.clone(), IngestPolicy::from_settings(&deps.settings));
        deps.ids = Arc::new(SeededIds(dice.clone()));
        let gateway = WebhookGateway::new(dice.clone());
        *gateway.deps.lock().unwrap() = Some(deps.clone());
        let config = SimConfig { start_ms: Some(START_MS), seed: Some(dice.next_u64()), ..SimConfig::default() };
        let sim = hubspot_sim::start_in_process(config, gateway.clone());
        sim.add_app(CLIENT_ID, CLIENT_SECRET);
        network.serve(HUBSPOT_HOST, sim.router());
        Deployment { deps, sim, network, gateway, clock, dice, queues }
    }

    /// A tenant with a console API key; returns the key.
    pub async fn tenant(&self, id: &str) -> Secret {
        let now = self.clock.now();
        let tenant = Tenant { id: TenantId::new(id), name: id.to_string(), created_at: now };
        self.deps.store.put_tenant(&tenant).await.unwrap();
        let (key, record) = ApiKeyRecord::generate(tenant.id, "simulation".into(), now);
        self.deps.store.put_api_key(&record).await.unwrap();
        key
    }

    /// Installs (or reinstalls) the app for a tenant on a portal, as the console and a
    /// browser do; returns the connection.
    pub async fn install(&self, key: &Secret, portal: u64) -> ConnectionId {
        let handler = oauth_callback::router(self.deps.clone());
        let start =
            Event::get(&format!("/oauth/install?return_to={}/hubspot", crate::world::CONSOLE)).bearer(key.expose());
        let authorize = invoke(&handler, start).await.location().to_string();
        let authorize = format!("{authorize}&portal={portal}");
        // The consent page, in-process: it approves at once and sends the browser back.
        let path = authorize.split_once(HUBSPOT_HOST).map(|(_, path)| path.to_string()).unwrap();
        let consent =
            self.sim.router().oneshot(axum::http::Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
        let back = consent.headers()["location"].to_str().unwrap().to_string();
        let query = back.split_once('?').map(|(_, q)| q.to_string()).unwrap_or_default();
        let done = invoke(&handler, Event::get(&format!("/oauth/callback?{query}"))).await;
        let outcome = crate::oauth::query(done.location());
        assert_eq!(outcome.get("hubsync_status").map(String::as_str), Some("connected"), "{outcome:?}");
        ConnectionId::new(&outcome["connection_id"])
    }

    /// Messages in the work queues, visible or not, and in the dead-letter queues.
    pub fn queued(&self) -> (usize, usize) {
        let work = self.queues.iter().map(|q| q.work.len()).sum();
        let parked = self.queues.iter().map(|q| q.parked.len()).sum();
        (work, parked)
    }
}

/// A function's Lambda handler: a batch's SQS event in, before its deadline; the response out.
pub type Handler = Arc<
    dyn Fn(Arc<dyn Queue>, SqsEvent, Deadline) -> Pin<Box<dyn Future<Output = SqsBatchResponse> + Send>> + Send + Sync,
>;

/// One Lambda function consuming a queue: its handler, timeout and batch size.
pub struct Function {
    pub queue: Arc<MemoryQueue>,
    pub timeout: Duration,
    pub batch_size: usize,
    pub handler: Handler,
}

/// The worker functions, as Lambda runs them: a few instances each, receiving batches,
/// invoking the handler with SQS event JSON before the invocation's deadline, deleting what
/// did not fail. Some invocations crash: they stop at a seeded moment, mid-step, and their
/// messages come back after the queue's visibility timeout.
pub struct Lambdas {
    pub crashes: AtomicU64,
    pub invocations: AtomicU64,
    in_flight: AtomicUsize,
    crash_rate: Mutex<f64>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Lambdas {
    /// The push, inbound and bulk workers of `deployment`, `instances` of each.
    pub fn start(deployment: &Deployment, instances: usize) -> Arc<Lambdas> {
        let lambdas = Arc::new(Lambdas {
            crashes: AtomicU64::new(0),
            invocations: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            crash_rate: Mutex::new(0.0),
            tasks: Mutex::default(),
        });
        let deps = &deployment.deps;
        let push = Arc::new(hubsync::outbound::push_worker(deps.clone()));
        let inbound = Arc::new(hubsync::inbound::inbound_worker(deps.clone()));
        let bulk = Arc::new(hubsync::inbound::bulk_worker(deps.clone()));
        let functions = [
            Function {
                queue: deployment.queues[0].work.clone(),
                timeout: Duration::from_secs(60),
                batch_size: 100,
                handler: Arc::new(move |queue, event, deadline| {
                    let worker = push.clone();
                    Box::pin(async move { push_worker::handle(&worker, queue.as_ref(), event, deadline).await })
                }),
            },
            Function {
                queue: deployment.queues[1].work.clone(),
                timeout: Duration::from_secs(60),
                batch_size: 100,
                handler: Arc::new(move |queue, event, deadline| {
                    let worker = inbound.clone();
                    Box::pin(async move { inbound_worker::handle(&worker, queue.as_ref(), event, deadline).await })
                }),
            },
            Function {
                queue: deployment.queues[2].work.clone(),
                timeout: Duration::from_secs(900),
                batch_size: 1,
                handler: Arc::new(move |queue, event, deadline| {
                    let worker = bulk.clone();
                    Box::pin(async move { bulk_worker::handle(&*worker, queue.as_ref(), event, deadline).await })
                }),
            },
        ];
        for function in functions {
            let function = Arc::new(function);
            for _ in 0..instances {
                let task = tokio::spawn(lambdas.clone().run(
                    function.clone(),
                    deployment.clock.clone(),
                    deployment.dice.clone(),
                ));
                lambdas.tasks.lock().unwrap().push(task);
            }
        }
        lambdas
    }

    pub fn set_crash_rate(&self, rate: f64) {
        *self.crash_rate.lock().unwrap() = rate;
    }

    /// No invocation is running.
    pub fn idle(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) == 0
    }

    pub fn stop(&self) {
        self.tasks.lock().unwrap().iter().for_each(|task| task.abort());
    }

    async fn run(self: Arc<Self>, function: Arc<Function>, clock: Arc<SimClock>, dice: Dice) {
        let queue: Arc<dyn Queue> = function.queue.clone();
        loop {
            let batch = receive_batch(&function.queue, function.batch_size).await;
            if batch.is_empty() {
                continue;
            }
            self.in_flight.fetch_add(1, Ordering::SeqCst);
            self.invocations.fetch_add(1, Ordering::Relaxed);
            let deadline = Deadline::after(clock.now(), function.timeout);
            let invocation = (function.handler)(queue.clone(), sqs_event(&batch), deadline);
            let crash_rate = *self.crash_rate.lock().unwrap();
            let limit = if dice.chance(crash_rate) { dice.millis(0..=600) } else { function.timeout };
            match tokio::time::timeout(limit, invocation).await {
                Ok(response) => {
                    acknowledge(function.queue.as_ref(), &batch, &response).await;
                }
                // Stopped mid-way (a crash, or Lambda's timeout): nothing is acknowledged.
                Err(_) => {
                    self.crashes.fetch_add(1, Ordering::Relaxed);
                }
            }
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// What Lambda's poller hands one invocation: up to `max` visible messages, gathered within a
/// short batching window (template.yaml's `MaximumBatchingWindowInSeconds`).
async fn receive_batch(queue: &MemoryQueue, max: usize) -> Vec<ReceivedMessage> {
    let mut batch = queue.receive(max.min(10), Duration::from_secs(20)).await.unwrap_or_default();
    while !batch.is_empty() && batch.len() < max {
        let more = queue
            .receive((max - batch.len()).min(10), Duration::from_millis(if batch.len() < 10 { 500 } else { 0 }))
            .await
            .unwrap_or_default();
        if more.is_empty() {
            break;
        }
        batch.extend(more);
    }
    batch
}
