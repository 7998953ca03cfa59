//! The wall-clock soak: the chaos run's traffic and faults in real time, on the real parts —
//! DynamoDB, SQS and Secrets Manager on moto's server, the simulator and the platform over
//! HTTP, the workers invoked through their Lambda handlers with SQS event JSON, the receiver
//! with API Gateway event JSON. It checks the same convergence as `tests/chaos.rs`, field by
//! field; unlike it, it cannot replay a run (threads and sockets decide the order), which is
//! why it is not where the protocol is proved, but where the real adapters are exercised
//! under it.
//!
//! `cargo test` runs 30 seconds of it; a long run:
//! `HUBSYNC_SOAK_SECONDS=600 HUBSYNC_SOAK_TENANTS=5 cargo test --release -p hubsync-tests --test soak -- --nocapture`
//! (also `HUBSYNC_SOAK_CONTACTS`, `HUBSYNC_SOAK_FAULT_PERCENT`, `HUBSYNC_SOAK_SEED`).
//! Retry backoffs are hurried (divided by [`HURRY`]) so a 15-minute retry schedule takes seconds.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hubspot_sim::{ALL_SCOPES, Fault, FaultKind, SimConfig, Subscription};
use hubsync::console::configs;
use hubsync::deps::Deps;
use hubsync::domain::{ConnectionId, Secret, SyncFlow, VersionedConfig};
use hubsync::inbound::plan_pulls;
use hubsync::ports::{Clock, OutgoingMessage, Queue, QueueError, ReceivedMessage};
use hubsync::work::{Deadline, redrive};
use hubsync_tests::Function;
use hubsync_tests::bench::env;
use hubsync_tests::convergence::{Ledger, Platform, Report, config, parked_by_reason};
use hubsync_tests::lambda::{Event, invoke};
use hubsync_tests::oauth::{callback, consent, query, start};
use hubsync_tests::push::{acknowledge, sqs_event};
use hubsync_tests::simulation::Dice;
use hubsync_tests::world::{CLIENT_ID, DELIVERY_SIGNING_SECRET, World, queued_on};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

/// Retry backoffs pass this many times faster than in AWS.
const HURRY: u32 = 60;
/// How long a crashed worker's messages stay hidden (Lambda's timeout, hurried).
const CRASH_VISIBILITY: Duration = Duration::from_secs(1);
/// Lambda invocations in flight per queue.
const CONCURRENCY: usize = 2;

struct Scenario {
    seconds: u64,
    tenants: usize,
    contacts: usize,
    fault_rate: f64,
    seed: u64,
}

impl Scenario {
    fn from_env() -> Scenario {
        let seed = std::env::var("HUBSYNC_SOAK_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
        Scenario {
            seconds: env("HUBSYNC_SOAK_SECONDS", 30) as u64,
            tenants: env("HUBSYNC_SOAK_TENANTS", 3).max(2),
            contacts: env("HUBSYNC_SOAK_CONTACTS", 12).max(2),
            fault_rate: env("HUBSYNC_SOAK_FAULT_PERCENT", 5) as f64 / 100.0,
            seed,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_input_converges_under_faults_in_real_time_on_the_real_adapters() {
    let scenario = Scenario::from_env();
    println!(
        "soak: {} s, {} tenants, {} contacts each, faults at {:.0}%, seed {}",
        scenario.seconds,
        scenario.tenants,
        scenario.contacts,
        scenario.fault_rate * 100.0,
        scenario.seed
    );
    let soak = Soak::start(&scenario).await;
    soak.run(&scenario).await;
    let report = soak.finish(&scenario).await;
    println!("{report}");
    assert!(report.converged(), "the soak did not converge:\n{report}");
}

struct Soak {
    world: World,
    tenants: Vec<Mutex<(Secret, Ledger)>>,
    platform: Arc<Platform>,
    gateway: Arc<Gateway>,
    loops: Arc<Loops>,
    inputs: Mutex<BTreeMap<&'static str, u64>>,
}

impl Soak {
    async fn start(scenario: &Scenario) -> Soak {
        let gateway = Gateway::start(scenario.seed).await;
        let webhook_url = gateway.url.clone();
        let world = World::with(SimConfig::default(), |settings| settings.webhook_url = Some(webhook_url)).await;
        gateway.deps.set(world.function(Function::WebhookReceiver).await).ok();
        let platform = Platform::new(DELIVERY_SIGNING_SECRET, Dice::new(scenario.seed ^ 0x5eed));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ingest = format!("http://{}/ingest", listener.local_addr().unwrap());
        let app = platform.router();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let subscriptions: Vec<Subscription> = ["firstname", "jobtitle", "lifecyclestage"]
            .map(|p| Subscription::property("contact.propertyChange", p))
            .into_iter()
            .chain([Subscription::new("contact.creation"), Subscription::new("contact.deletion")])
            .collect();
        world.sim.subscribe_webhooks(CLIENT_ID, &gateway.url, &subscriptions);
        let mut tenants = Vec::new();
        for index in 0..scenario.tenants {
            let portal = 2000 + index as u64;
            world.sim.add_portal(portal, ALL_SCOPES);
            let key = world.tenant(&format!("tenant{index}")).await;
            let connection = install_on(&world, &key, portal).await;
            let stored = world.deps.store.get_connection(&connection).await.unwrap().unwrap();
            let update: VersionedConfig =
                serde_json::from_value(json!({ "version": 0, "config": config(&ingest) })).unwrap();
            let console = world.function(Function::ConsoleApi).await;
            configs::save(&console, &stored, &update).await.expect("the soak config is valid");
            tenants.push(Mutex::new((key, Ledger { connection: connection.to_string(), portal, ..Ledger::default() })));
        }
        let workers = [
            world.function(Function::PushWorker).await,
            world.function(Function::InboundWorker).await,
            world.function(Function::BulkWorker).await,
        ];
        let loops = Loops::start(workers, scenario.seed);
        Soak { world, tenants, platform, gateway, loops, inputs: Mutex::default() }
    }

    fn count(&self, input: &'static str) {
        *self.inputs.lock().unwrap().entry(input).or_insert(0) += 1;
    }

    /// The mixed traffic, with the faults of each phase: the platform down from 30% to 45% of
    /// the run, one portal's access revoked at 50% and installed again at 65%.
    async fn run(&self, scenario: &Scenario) {
        let sim = &self.world.sim;
        for kind in [FaultKind::TooManyRequests, FaultKind::ServerError(502), FaultKind::DropConnection] {
            sim.inject_fault(Fault {
                kind,
                rate: scenario.fault_rate,
                path_prefix: Some("/crm".into()),
                remaining: None,
            });
        }
        let slow = Fault {
            kind: FaultKind::Latency(Duration::from_millis(5_500)),
            rate: scenario.fault_rate / 5.0,
            path_prefix: Some("/crm".into()),
            remaining: Some(3),
        };
        sim.inject_fault(slow);
        self.loops.crash_rate.store(0.1_f64.to_bits(), Ordering::Relaxed);
        self.gateway.replay_rate.store(0.15_f64.to_bits(), Ordering::Relaxed);
        self.platform.set_refusal_rate(0.02);

        let dice = Dice::new(scenario.seed);
        let started = Instant::now();
        let length = Duration::from_secs(scenario.seconds);
        let (mut revoke_done, mut reinstall_done) = (false, false);
        let mut next_pull = Duration::from_secs(5);
        let mut sequence = 0u64;
        while started.elapsed() < length {
            let progress = started.elapsed().as_secs_f64() / length.as_secs_f64();
            self.platform.set_down((0.30..0.45).contains(&progress));
            if progress >= 0.50 && !revoke_done {
                revoke_done = true;
                sim.revoke_portal_grants(self.tenants[1].lock().unwrap().1.portal);
                self.count("revocations");
            }
            if progress >= 0.65 && !reinstall_done {
                reinstall_done = true;
                let (key, portal) = {
                    let tenant = self.tenants[1].lock().unwrap();
                    (tenant.0.clone(), tenant.1.portal)
                };
                install_on(&self.world, &key, portal).await;
                self.count("reinstalls");
            }
            if started.elapsed() >= next_pull {
                next_pull += Duration::from_secs(8);
                plan_pulls(&self.world.function(Function::Enrichment).await, SyncFlow::Enrichment)
                    .await
                    .expect("planning works");
                self.count("pull plans");
            }
            sequence += 1;
            let tenant = &self.tenants[dice.index(self.tenants.len())];
            let contact = format!("c{}", dice.index(scenario.contacts));
            match dice.between(0..=99) {
                0..=49 => self.push(tenant, &contact, &dice, sequence).await,
                50..=64 => self.edit(tenant, &contact, "firstname", &format!("u{sequence}f")),
                65..=84 => self.edit(tenant, &contact, "jobtitle", &format!("h{sequence}")),
                85..=91 => self.create_in_hubspot(tenant, sequence),
                _ => self.edit(tenant, &contact, "lifecyclestage", "customer"),
            }
            self.gateway.replay_some().await;
            tokio::time::sleep(dice.millis(10..=60)).await;
        }
        self.platform.set_down(false);
    }

    /// The platform changes a contact's first or last name (or both) and sends the change.
    async fn push(&self, tenant: &Mutex<(Secret, Ledger)>, contact: &str, dice: &Dice, sequence: u64) {
        let now = self.world.clock.now();
        let at = (now.unix_timestamp_nanos() / 1_000_000) as i64;
        let mut fields = serde_json::Map::new();
        let (connection, email) = {
            let mut tenant = tenant.lock().unwrap();
            let ledger = &mut tenant.1;
            let email = format!("{contact}@portal{}.example.com", ledger.portal);
            for field in ["first_name", "last_name"] {
                if fields.is_empty() || dice.chance(0.5) {
                    let value = format!("p{sequence}{}", &field[..1]);
                    self.platform.change(&ledger.connection, &email, field, &value, at);
                    ledger.push(&email, field, &value, at);
                    fields.insert(field.to_string(), json!(value));
                }
            }
            (ledger.connection.clone(), email)
        };
        let message = json!({
            "version": 1, "connection_id": connection, "object": "contact", "record_key": email,
            "fields": fields, "changed_at": now.format(&Rfc3339).unwrap()
        });
        self.world.deps.push.work.send(vec![OutgoingMessage::new(message.to_string())]).await.unwrap();
        self.count("platform changes");
    }

    /// A person edits a contact in HubSpot, if it exists there yet.
    fn edit(&self, tenant: &Mutex<(Secret, Ledger)>, contact: &str, property: &str, value: &str) {
        let mut tenant = tenant.lock().unwrap();
        let ledger = &mut tenant.1;
        let email = format!("{contact}@portal{}.example.com", ledger.portal);
        let Some(id) =
            hubspot_contact(&self.world, ledger.portal, &email).map(|c| c["id"].as_str().unwrap().to_string())
        else {
            return;
        };
        if property == "lifecyclestage" && !ledger.converted.insert(email.clone()) {
            return;
        }
        let at = self.world.sim.now_ms();
        self.world.sim.edit_as_user(ledger.portal, "contacts", &id, json!({ property: value }));
        ledger.edit(&email, property, value, at);
        self.count(match property {
            "firstname" => "HubSpot edits of a both-ways field",
            "lifecyclestage" => "conversions",
            _ => "HubSpot edits of an inbound field",
        });
    }

    /// A person adds a contact in HubSpot: the platform hears of it as a new record.
    fn create_in_hubspot(&self, tenant: &Mutex<(Secret, Ledger)>, sequence: u64) {
        let mut tenant = tenant.lock().unwrap();
        let ledger = &mut tenant.1;
        let email = format!("u{sequence}@portal{}.example.com", ledger.portal);
        let title = format!("h{sequence}");
        let at = self.world.sim.now_ms();
        self.world.sim.seed(ledger.portal, "contacts", json!({ "email": email, "jobtitle": title }));
        ledger.edit(&email, "jobtitle", &title, at);
        self.count("contacts created in HubSpot");
    }

    /// Faults off, parked work redriven, a catch-up pull; then the comparison.
    async fn finish(&self, scenario: &Scenario) -> Report {
        self.world.sim.clear_faults();
        self.loops.crash_rate.store(0.0_f64.to_bits(), Ordering::Relaxed);
        self.gateway.replay_rate.store(0.0_f64.to_bits(), Ordering::Relaxed);
        self.platform.set_refusal_rate(0.0);
        self.gateway.replay_all().await;
        self.settle().await;
        let deps = &self.world.deps;
        let parked_on_the_way = self.take_parked().await;
        for pair in [&deps.push, &deps.inbound, &deps.bulk] {
            redrive(&*pair.parked, &*pair.work, None).await.unwrap();
        }
        self.settle().await;
        plan_pulls(&self.world.function(Function::CatchUp).await, SyncFlow::CatchUp).await.unwrap();
        self.settle().await;
        let still_parked = self.take_parked().await;
        self.loops.stop.store(true, Ordering::Relaxed);

        let mut report = Report { parked_on_the_way, still_parked, ..Report::default() };
        let inputs: Vec<String> = self.inputs.lock().unwrap().iter().map(|(name, n)| format!("{n} {name}")).collect();
        report.header = vec![
            ("seed".into(), scenario.seed.to_string()),
            ("inputs".into(), inputs.join(", ")),
            (
                "injected".into(),
                format!(
                    "{} worker crashes, {} webhook requests replayed",
                    self.loops.crashes.load(Ordering::Relaxed),
                    self.gateway.replayed.load(Ordering::Relaxed)
                ),
            ),
        ];
        for tenant in &self.tenants {
            let connection = ConnectionId::new(&tenant.lock().unwrap().1.connection);
            report.count_connection(deps.store.as_ref(), &connection).await;
        }
        report.platform = self.platform.counts();
        report.echoes = self.platform.echoes();
        for tenant in &self.tenants {
            let tenant = tenant.lock().unwrap();
            let contacts = self.world.sim.records(tenant.1.portal, "contacts");
            report.check(&tenant.1, &contacts, &self.platform);
        }
        report
    }

    /// Waits until the work queues are empty and the workers and HubSpot's webhook sender have
    /// been idle a while. A crashed worker's claims on its records expire after two minutes:
    /// those records wait for it.
    async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let webhooks_idle = self.world.sim.wait_webhooks_idle(Duration::from_millis(100)).await;
            if webhooks_idle
                && self.loops.idle_for() > Duration::from_secs(3)
                && queued_on(&self.world.work_queues).await == 0
            {
                return;
            }
            assert!(Instant::now() < deadline, "the deployment did not settle in 5 minutes");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Every dead-lettered message, counted by reason, left in place for the redrive.
    async fn take_parked(&self) -> BTreeMap<String, u64> {
        let deps = &self.world.deps;
        let queues: [(&str, &dyn Queue); 3] = [
            ("push", deps.push.parked.as_ref()),
            ("inbound", deps.inbound.parked.as_ref()),
            ("bulk", deps.bulk.parked.as_ref()),
        ];
        parked_by_reason(&queues, Duration::from_millis(200)).await
    }
}

// ---- The network between HubSpot and the receiver: passes webhooks on, some twice and late. ----

/// A webhook request as it arrived: headers and body.
type KeptRequest = (Vec<(String, String)>, String);

struct Gateway {
    url: String,
    deps: OnceLock<Deps>,
    /// Chance (as f64 bits) that a request is also kept to be delivered again later.
    replay_rate: AtomicU64,
    kept: Mutex<Vec<KeptRequest>>,
    replayed: AtomicU64,
    dice: Dice,
}

impl Gateway {
    async fn start(seed: u64) -> Arc<Gateway> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gateway = Arc::new(Gateway {
            url: format!("http://{}/webhooks/hubspot", listener.local_addr().unwrap()),
            deps: OnceLock::new(),
            replay_rate: AtomicU64::new(0.0_f64.to_bits()),
            kept: Mutex::default(),
            replayed: AtomicU64::new(0),
            dice: Dice::new(seed ^ 0x9e37),
        });
        let app = Router::new().route("/webhooks/hubspot", post(pass_on)).with_state(gateway.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        gateway
    }

    /// The receiver's Lambda handler, called with API Gateway's event for this request.
    async fn deliver(&self, headers: &[(String, String)], body: &str) -> StatusCode {
        let deps = self.deps.get().expect("the deployment is up").clone();
        let mut event = Event::new("POST", "/webhooks/hubspot");
        for (name, value) in headers {
            event = event.header(name, value);
        }
        invoke(&webhook_receiver::router(deps), event.raw_body("application/json", body)).await.status
    }

    /// Delivers a few kept requests again: each a duplicate, and older than what came since.
    async fn replay_some(&self) {
        let chosen = {
            let mut kept = self.kept.lock().unwrap();
            if kept.is_empty() || !self.dice.chance(0.2) {
                return;
            }
            let index = self.dice.index(kept.len());
            kept.swap_remove(index)
        };
        self.replayed.fetch_add(1, Ordering::Relaxed);
        self.deliver(&chosen.0, &chosen.1).await;
    }

    async fn replay_all(&self) {
        let all = std::mem::take(&mut *self.kept.lock().unwrap());
        for (headers, body) in all {
            self.replayed.fetch_add(1, Ordering::Relaxed);
            self.deliver(&headers, &body).await;
        }
    }
}

async fn pass_on(State(gateway): State<Arc<Gateway>>, headers: HeaderMap, body: String) -> StatusCode {
    let headers: Vec<(String, String)> =
        headers.iter().filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string()))).collect();
    if gateway.dice.chance(f64::from_bits(gateway.replay_rate.load(Ordering::Relaxed))) {
        gateway.kept.lock().unwrap().push((headers.clone(), body.clone()));
    }
    gateway.deliver(&headers, &body).await
}

// ---- Lambda: invocations per queue, some of which crash. ----

struct Loops {
    crash_rate: AtomicU64,
    crashes: AtomicU64,
    stop: AtomicBool,
    /// When a loop last had work (ms since `epoch`).
    last_busy_ms: AtomicU64,
    epoch: Instant,
}

impl Loops {
    /// `workers`: the push, inbound and bulk workers' dependencies, each signed as its role.
    fn start(workers: [Deps; 3], seed: u64) -> Arc<Loops> {
        let [push_deps, inbound_deps, bulk_deps] = workers;
        let loops = Arc::new(Loops {
            crash_rate: AtomicU64::new(0.0_f64.to_bits()),
            crashes: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            last_busy_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        });
        let push = Arc::new(hubsync::outbound::push_worker(push_deps.clone()));
        let inbound = Arc::new(hubsync::inbound::inbound_worker(inbound_deps.clone()));
        let bulk = Arc::new(hubsync::inbound::bulk_worker(bulk_deps.clone()));
        for instance in 0..CONCURRENCY as u64 {
            let dice = Dice::new(seed.wrapping_add(instance * 3));
            let (worker, clock) = (push.clone(), push_deps.clock.clone());
            loops.spawn(push_deps.push.work.clone(), dice.clone(), move |queue, event| {
                let (worker, deadline) = (worker.clone(), deadline(clock.as_ref(), 60));
                async move { push_worker::handle(&worker, &queue, event, deadline).await }
            });
            let (worker, clock) = (inbound.clone(), inbound_deps.clock.clone());
            loops.spawn(inbound_deps.inbound.work.clone(), dice.clone(), move |queue, event| {
                let (worker, deadline) = (worker.clone(), deadline(clock.as_ref(), 60));
                async move { inbound_worker::handle(&worker, &queue, event, deadline).await }
            });
            let (worker, clock) = (bulk.clone(), bulk_deps.clock.clone());
            loops.spawn(bulk_deps.bulk.work.clone(), dice, move |queue, event| {
                let (worker, deadline) = (worker.clone(), deadline(clock.as_ref(), 900));
                async move { bulk_worker::handle(&*worker, &queue, event, deadline).await }
            });
        }
        loops
    }

    fn idle_for(&self) -> Duration {
        let busy = Duration::from_millis(self.last_busy_ms.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(busy)
    }

    fn mark_busy(&self) {
        self.last_busy_ms.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// What Lambda's SQS trigger does, over and over: receive a batch, invoke the handler with
    /// its event JSON, delete what did not fail. A crash ends the invocation at a random point
    /// (mid-way, or after the handler but before the deletes); its messages come back later.
    fn spawn<F, Fut>(self: &Arc<Self>, queue: Arc<dyn Queue>, dice: Dice, handler: F)
    where
        F: Fn(Hurried, SqsEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = SqsBatchResponse> + Send,
    {
        let loops = self.clone();
        tokio::spawn(async move {
            while !loops.stop.load(Ordering::Relaxed) {
                let Ok(batch) = queue.receive(10, Duration::from_millis(300)).await else { continue };
                if batch.is_empty() {
                    continue;
                }
                loops.mark_busy();
                let crash = dice.chance(f64::from_bits(loops.crash_rate.load(Ordering::Relaxed)));
                let invocation = handler(Hurried(queue.clone()), sqs_event(&batch));
                let response = if crash {
                    let _ = tokio::time::timeout(dice.millis(0..=400), invocation).await;
                    None
                } else {
                    Some(invocation.await)
                };
                match response {
                    Some(response) => {
                        acknowledge(&*queue, &batch, &response).await;
                    }
                    None => {
                        loops.crashes.fetch_add(1, Ordering::Relaxed);
                        for message in &batch {
                            let _ = queue.change_visibility(&message.receipt_handle, CRASH_VISIBILITY).await;
                        }
                    }
                }
                loops.mark_busy();
            }
        });
    }
}

/// An invocation's deadline: the function's timeout from now.
fn deadline(clock: &dyn Clock, seconds: u64) -> Deadline {
    Deadline::after(clock.now(), Duration::from_secs(seconds))
}

/// The real queue, with retry backoffs shortened by [`HURRY`].
#[derive(Clone)]
struct Hurried(Arc<dyn Queue>);

#[async_trait]
impl Queue for Hurried {
    async fn send(&self, messages: Vec<OutgoingMessage>) -> Result<(), QueueError> {
        self.0.send(messages).await
    }
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<ReceivedMessage>, QueueError> {
        self.0.receive(max, wait).await
    }
    async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError> {
        self.0.delete(receipt_handle).await
    }
    async fn change_visibility(&self, receipt_handle: &str, timeout: Duration) -> Result<(), QueueError> {
        self.0.change_visibility(receipt_handle, (timeout / HURRY).max(Duration::from_secs(1))).await
    }
}

// ---- Setup ----

/// Install (or reinstall) the app for a tenant on one portal; returns the connection.
async fn install_on(world: &World, key: &Secret, portal: u64) -> ConnectionId {
    let authorize = format!("{}&portal={portal}", start(world, key.expose()).await);
    let back = callback(world, &consent(&authorize).await).await;
    let outcome = query(back.location());
    assert_eq!(outcome.get("hubsync_status").map(String::as_str), Some("connected"), "{outcome:?}");
    ConnectionId::new(&outcome["connection_id"])
}

fn hubspot_contact(world: &World, portal: u64, email: &str) -> Option<Value> {
    world.sim.records(portal, "contacts").into_iter().find(|r| r["properties"]["email"] == email)
}
