//! Convergence under fire. Several tenants, each with its own portal, push platform changes
//! while people edit the same contacts in HubSpot (webhooks), scheduled pulls run and a trigger
//! fires on conversions, with faults injected throughout: HubSpot answering 429 and 5xx, slow
//! (over 5 s) or hanging up; webhooks delivered twice and out of order; workers crashing
//! between their HubSpot write and the queue delete; the platform's ingest down for a while; a
//! portal revoking the app's access mid-run and installing it again. Then the faults stop, parked
//! work is redriven, a catch-up runs, and HubSpot, the platform and the dead-letter queues are
//! compared with what the inputs demand.
//!
//! The short run is part of `cargo test`. The long one:
//! `HUBSYNC_CHAOS_SECONDS=600 HUBSYNC_CHAOS_TENANTS=5 cargo test --release -p hubsync-tests --test chaos -- --nocapture`
//! (also `HUBSYNC_CHAOS_CONTACTS`, `HUBSYNC_CHAOS_FAULT_PERCENT`, `HUBSYNC_CHAOS_SEED`).
//!
//! Everything runs on moto (DynamoDB, SQS, Secrets Manager) and the simulator; workers run
//! through their Lambda handlers with SQS event JSON, the receiver with API Gateway event JSON.
//! Retry backoffs are hurried (divided by [`HURRY`]) so a 15-minute retry schedule takes seconds.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
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
use hubsync::domain::{ConnectionId, ConnectionStatus, Secret, SyncFlow, VersionedConfig};
use hubsync::inbound::{InboundWorker, PullWorker, plan_pulls, verify};
use hubsync::ports::{Clock, OutgoingMessage, Queue, QueueError, ReceivedMessage};
use hubsync::push::PushWorker;
use hubsync::work::{ParkedMessage, redrive};
use hubsync_tests::bench::env;
use hubsync_tests::lambda::{Event, invoke};
use hubsync_tests::oauth::{callback, consent, query, start};
use hubsync_tests::push::{acknowledge, sqs_event};
use hubsync_tests::world::{CLIENT_ID, World};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Retry backoffs and crash timeouts pass this many times faster than in AWS.
const HURRY: u32 = 60;
/// How long a crashed worker's messages stay hidden (Lambda's timeout, hurried).
const CRASH_VISIBILITY: Duration = Duration::from_secs(1);
/// Lambda invocations in flight per queue.
const CONCURRENCY: usize = 2;
const DELIVERY_SECRET: &str = "delivery-secret";

struct Scenario {
    seconds: u64,
    tenants: usize,
    contacts: usize,
    fault_rate: f64,
    seed: u64,
}

impl Scenario {
    fn from_env() -> Scenario {
        let seed = std::env::var("HUBSYNC_CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
        Scenario {
            seconds: env("HUBSYNC_CHAOS_SECONDS", 40) as u64,
            tenants: env("HUBSYNC_CHAOS_TENANTS", 3).max(2),
            contacts: env("HUBSYNC_CHAOS_CONTACTS", 12).max(2),
            fault_rate: env("HUBSYNC_CHAOS_FAULT_PERCENT", 5) as f64 / 100.0,
            seed,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_input_converges_under_faults_with_nothing_lost_doubled_or_echoed() {
    let scenario = Scenario::from_env();
    println!(
        "chaos: {} s, {} tenants, {} contacts each, faults at {:.0}%, seed {}",
        scenario.seconds,
        scenario.tenants,
        scenario.contacts,
        scenario.fault_rate * 100.0,
        scenario.seed
    );
    let chaos = Chaos::start(&scenario).await;
    chaos.run(&scenario).await;
    let report = chaos.finish().await;
    println!("{report}");
    assert_eq!(report.lost, Vec::<String>::new(), "lost changes");
    assert_eq!(report.applied_twice, Vec::<String>::new(), "changes applied twice");
    assert_eq!(report.echoes, Vec::<String>::new(), "hubsync's own writes delivered back to the platform");
    assert_eq!(report.still_parked, BTreeMap::new(), "work still parked once the faults are over");
    assert!(report.applied_pushes > 0 && report.applied_edits > 0, "the scenario did something: {report}");
}

/// One tenant's portal and connection, and what the inputs demand of it.
struct Tenant {
    key: Secret,
    portal: u64,
    connection: ConnectionId,
    /// email → platform field → the value the platform pushed last.
    pushed: BTreeMap<String, BTreeMap<&'static str, String>>,
    /// email → platform field → the value a person set in HubSpot last.
    edited: BTreeMap<String, BTreeMap<&'static str, String>>,
    /// Emails of contacts a person converted (the `conversion` trigger fires once each).
    converted: BTreeSet<String>,
}

struct Chaos {
    world: World,
    tenants: Vec<Mutex<Tenant>>,
    platform: Arc<Mutex<Platform>>,
    gateway: Arc<Gateway>,
    loops: Arc<Loops>,
    parked_on_the_way: Mutex<BTreeMap<String, u64>>,
    inputs: Mutex<Inputs>,
}

#[derive(Default, Debug)]
struct Inputs {
    pushes: u64,
    edits: u64,
    creations: u64,
    conversions: u64,
    pulls: u64,
    revocations: u64,
}

impl Chaos {
    async fn start(scenario: &Scenario) -> Chaos {
        let gateway = Gateway::start(scenario.seed).await;
        let webhook_url = gateway.url.clone();
        let world = World::with(SimConfig::default(), |settings| settings.webhook_url = Some(webhook_url)).await;
        gateway.deps.set(world.deps.clone()).ok();
        let (platform, ingest_url) = Platform::start().await;
        world.sim.subscribe_webhooks(
            CLIENT_ID,
            &gateway.url,
            &[
                Subscription::new("contact.creation"),
                Subscription::new("contact.deletion"),
                Subscription::property("contact.propertyChange", "firstname"),
                Subscription::property("contact.propertyChange", "jobtitle"),
                Subscription::property("contact.propertyChange", "lifecyclestage"),
            ],
        );
        let mut tenants = Vec::new();
        for index in 0..scenario.tenants {
            let portal = 2000 + index as u64;
            world.sim.add_portal(portal, ALL_SCOPES);
            let key = world.tenant(&format!("tenant{index}")).await;
            let connection = install_on(&world, &key, portal).await;
            let stored = world.deps.store.get_connection(&connection).await.unwrap().unwrap();
            let update: VersionedConfig =
                serde_json::from_value(json!({ "version": 0, "config": config(&ingest_url) })).unwrap();
            configs::save(&world.deps, &stored, &update).await.expect("the chaos config is valid");
            tenants.push(Mutex::new(Tenant {
                key,
                portal,
                connection,
                pushed: BTreeMap::new(),
                edited: BTreeMap::new(),
                converted: BTreeSet::new(),
            }));
        }
        let loops = Loops::start(&world.deps, scenario.seed);
        Chaos {
            world,
            tenants,
            platform,
            gateway,
            loops,
            parked_on_the_way: Mutex::default(),
            inputs: Mutex::default(),
        }
    }

    /// The mixed traffic, with the faults of each phase: platform ingest down from 30% to 45%
    /// of the run, one portal's access revoked at 50% and installed again at 65%.
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
        sim.inject_fault(Fault {
            kind: FaultKind::Latency(Duration::from_millis(5_500)),
            rate: scenario.fault_rate / 5.0,
            path_prefix: Some("/crm".into()),
            remaining: Some(3),
        });
        self.loops.crash_rate.store(0.1_f64.to_bits(), Ordering::Relaxed);
        self.gateway.replay_rate.store(0.15_f64.to_bits(), Ordering::Relaxed);

        let mut rng = StdRng::seed_from_u64(scenario.seed);
        let started = Instant::now();
        let length = Duration::from_secs(scenario.seconds);
        let revoked = &self.tenants[1];
        let (mut platform_down, mut revoke_done, mut reinstall_done) = (false, false, false);
        let mut next_pull = Duration::from_secs(5);
        let mut sequence = 0u64;
        while started.elapsed() < length {
            let progress = started.elapsed().as_secs_f64() / length.as_secs_f64();
            self.follow_real_time();
            let down = (0.30..0.45).contains(&progress);
            if down != platform_down {
                platform_down = down;
                self.platform.lock().unwrap().down = down;
            }
            if progress >= 0.50 && !revoke_done {
                revoke_done = true;
                sim.revoke_portal_grants(revoked.lock().unwrap().portal);
                self.inputs.lock().unwrap().revocations += 1;
            }
            if progress >= 0.65 && !reinstall_done {
                reinstall_done = true;
                let (key, portal) = {
                    let tenant = revoked.lock().unwrap();
                    (tenant.key.clone(), tenant.portal)
                };
                install_on(&self.world, &key, portal).await;
            }
            if started.elapsed() >= next_pull {
                next_pull += Duration::from_secs(8);
                plan_pulls(&self.world.deps, SyncFlow::Enrichment).await.expect("planning works");
                self.inputs.lock().unwrap().pulls += 1;
            }
            sequence += 1;
            let tenant = &self.tenants[rng.random_range(0..self.tenants.len())];
            let contact = format!("c{}", rng.random_range(0..scenario.contacts));
            match rng.random_range(0..100) {
                0..55 => self.push(tenant, &contact, &mut rng, sequence).await,
                55..85 => self.edit(tenant, &contact, "jobtitle", &format!("h{sequence}")),
                85..92 => self.create_in_hubspot(tenant, sequence),
                _ => self.edit(tenant, &contact, "lifecyclestage", "customer"),
            }
            self.gateway.replay_some().await;
            tokio::time::sleep(Duration::from_millis(rng.random_range(10..60))).await;
        }
    }

    /// The platform changes a contact's first or last name (or both) and sends the change.
    async fn push(&self, tenant: &Mutex<Tenant>, contact: &str, rng: &mut StdRng, sequence: u64) {
        let mut fields = serde_json::Map::new();
        let (connection, email) = {
            let mut tenant = tenant.lock().unwrap();
            let email = format!("{contact}@portal{}.example.com", tenant.portal);
            let pushed = tenant.pushed.entry(email.clone()).or_default();
            for field in ["first_name", "last_name"] {
                if fields.is_empty() || rng.random_bool(0.5) {
                    let value = format!("p{sequence}{}", &field[..1]);
                    pushed.insert(field, value.clone());
                    fields.insert(field.to_string(), json!(value));
                }
            }
            (tenant.connection.clone(), email)
        };
        self.platform.lock().unwrap().set_own(&connection, &email, &fields);
        let changed_at = OffsetDateTime::now_utc().format(&Rfc3339).unwrap();
        let message = json!({
            "version": 1, "connection_id": connection, "object": "contact", "record_key": email,
            "fields": fields, "changed_at": changed_at
        });
        self.world.deps.push.work.send(vec![OutgoingMessage::new(message.to_string())]).await.unwrap();
        self.inputs.lock().unwrap().pushes += 1;
    }

    /// A person edits a contact in HubSpot, if it exists there yet.
    fn edit(&self, tenant: &Mutex<Tenant>, contact: &str, property: &str, value: &str) {
        let mut tenant = tenant.lock().unwrap();
        let email = format!("{contact}@portal{}.example.com", tenant.portal);
        let Some(id) =
            hubspot_contact(&self.world, tenant.portal, &email).map(|c| c["id"].as_str().unwrap().to_string())
        else {
            return;
        };
        if property == "lifecyclestage" {
            if !tenant.converted.insert(email.clone()) {
                return;
            }
            self.inputs.lock().unwrap().conversions += 1;
        } else {
            self.inputs.lock().unwrap().edits += 1;
        }
        self.world.sim.edit_as_user(tenant.portal, "contacts", &id, json!({ property: value }));
        let field = if property == "jobtitle" { "job_title" } else { "stage" };
        tenant.edited.entry(email).or_default().insert(field, value.to_string());
    }

    /// A person adds a contact in HubSpot: the platform hears of it as a new record.
    fn create_in_hubspot(&self, tenant: &Mutex<Tenant>, sequence: u64) {
        let mut tenant = tenant.lock().unwrap();
        let email = format!("u{sequence}@portal{}.example.com", tenant.portal);
        let title = format!("h{sequence}");
        self.world.sim.seed(tenant.portal, "contacts", json!({ "email": email, "jobtitle": title }));
        tenant.edited.entry(email).or_default().insert("job_title", title);
        self.inputs.lock().unwrap().creations += 1;
    }

    /// The deployment's clock keeps up with real time (webhook timestamps are real).
    fn follow_real_time(&self) {
        let behind = OffsetDateTime::now_utc() - self.world.clock.now();
        if behind.is_positive() {
            self.world.clock.advance(behind);
        }
    }

    /// Faults off, parked work redriven, a catch-up pull; then the comparison.
    async fn finish(&self) -> Report {
        self.world.sim.clear_faults();
        self.loops.crash_rate.store(0.0_f64.to_bits(), Ordering::Relaxed);
        self.gateway.replay_rate.store(0.0_f64.to_bits(), Ordering::Relaxed);
        self.gateway.replay_all().await;
        self.platform.lock().unwrap().down = false;
        self.settle().await;

        let deps = &self.world.deps;
        let parked = self.take_parked().await;
        *self.parked_on_the_way.lock().unwrap() = parked;
        for pair in [&deps.push, &deps.inbound, &deps.bulk] {
            redrive(&*pair.parked, &*pair.work, None).await.unwrap();
        }
        self.settle().await;
        self.follow_real_time();
        plan_pulls(deps, SyncFlow::CatchUp).await.unwrap();
        self.settle().await;
        let still_parked = self.take_parked().await;
        self.loops.stop.store(true, Ordering::Relaxed);
        self.report(still_parked).await
    }

    /// Waits until the queues, the workers and HubSpot's webhook sender have been idle a while.
    async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            self.follow_real_time();
            let webhooks_idle = self.world.sim.wait_webhooks_idle(Duration::from_millis(100)).await;
            if webhooks_idle && self.loops.idle_for() > Duration::from_secs(4) {
                return;
            }
            assert!(Instant::now() < deadline, "the deployment did not settle in 4 minutes");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Takes every dead-lettered message out of the three dead-letter queues, counted by reason.
    async fn take_parked(&self) -> BTreeMap<String, u64> {
        let deps = &self.world.deps;
        let mut reasons = BTreeMap::new();
        let mut taken = Vec::new();
        for (name, pair) in [("push", &deps.push), ("inbound", &deps.inbound), ("bulk", &deps.bulk)] {
            loop {
                let batch = pair.parked.receive(10, Duration::from_millis(200)).await.unwrap();
                if batch.is_empty() {
                    break;
                }
                for message in batch {
                    let parked = ParkedMessage::read(&message.body);
                    *reasons.entry(format!("{name}: {}", parked.parked.reason)).or_insert(0) += 1;
                    taken.push((pair.parked.clone(), message));
                }
            }
        }
        // Visible again, for the redrive.
        for (queue, message) in taken {
            queue.change_visibility(&message.receipt_handle, Duration::ZERO).await.unwrap();
        }
        reasons
    }

    async fn report(&self, still_parked: BTreeMap<String, u64>) -> Report {
        let mut report = Report {
            inputs: format!("{:?}", self.inputs.lock().unwrap()),
            parked_on_the_way: self.parked_on_the_way.lock().unwrap().clone(),
            still_parked,
            crashes: self.loops.crashes.load(Ordering::Relaxed),
            replayed_webhooks: self.gateway.replayed.load(Ordering::Relaxed),
            ..Report::default()
        };
        for tenant in &self.tenants {
            let connection = tenant.lock().unwrap().connection.clone();
            let status = self.world.deps.store.get_connection(&connection).await.unwrap().unwrap().status;
            if status != ConnectionStatus::Active {
                report.lost.push(format!("{connection}: connection ends {status:?}"));
            }
            for run in self.world.deps.store.list_runs(&connection, 1000).await.unwrap() {
                for (reason, count) in run.counts.skipped {
                    *report.skipped.entry(format!("{:?}: {reason}", run.kind)).or_insert(0) += count;
                }
            }
        }
        let platform = self.platform.lock().unwrap();
        report.platform = platform.counts.clone();
        report.echoes = platform.echoes.clone();
        report.applied_twice = platform.applied_twice.clone();
        for tenant in &self.tenants {
            let tenant = tenant.lock().unwrap();
            let connection = tenant.connection.as_str();
            let contacts = self.world.sim.records(tenant.portal, "contacts");
            let mut by_email: HashMap<String, Vec<&Value>> = HashMap::new();
            for contact in &contacts {
                if let Some(email) = contact["properties"]["email"].as_str() {
                    by_email.entry(email.to_string()).or_default().push(contact);
                }
            }
            for (email, records) in &by_email {
                if records.len() > 1 {
                    report.applied_twice.push(format!("{connection}: {} HubSpot contacts for {email}", records.len()));
                }
            }
            for (email, fields) in &tenant.pushed {
                let in_hubspot = by_email.get(email).and_then(|r| r.first()).map(|c| &c["properties"]);
                for (field, value) in fields {
                    let property = if *field == "first_name" { "firstname" } else { "lastname" };
                    match in_hubspot.and_then(|p| p[property].as_str()) {
                        Some(found) if found == value => report.applied_pushes += 1,
                        found => report
                            .lost
                            .push(format!("{connection} {email}: HubSpot {property} is {found:?}, pushed {value}")),
                    }
                }
                // The one field both sides hold: the platform must not have been handed an older value.
                let held = platform.value(connection, email, "first_name");
                if let (Some(pushed), Some(held)) = (fields.get("first_name"), held.as_deref()) {
                    if held != pushed {
                        report.lost.push(format!(
                            "{connection} {email}: the platform holds first_name {held}, it pushed {pushed}"
                        ));
                    }
                }
            }
            for (email, fields) in &tenant.edited {
                for (field, value) in fields {
                    match platform.value(connection, email, field) {
                        Some(found) if &found == value => report.applied_edits += 1,
                        found => report.lost.push(format!(
                            "{connection} {email}: the platform's {field} is {found:?}, HubSpot says {value}"
                        )),
                    }
                }
            }
            for email in &tenant.converted {
                let Some(id) = by_email.get(email).and_then(|r| r.first()).and_then(|c| c["id"].as_str()) else {
                    continue;
                };
                match platform.conversions.get(&(connection.to_string(), id.to_string())).copied().unwrap_or(0) {
                    0 => report.lost.push(format!("{connection} {email}: no conversion event")),
                    1 => report.conversions += 1,
                    n => report.applied_twice.push(format!("{connection} {email}: {n} conversion events")),
                }
            }
        }
        report
    }
}

#[derive(Default)]
struct Report {
    inputs: String,
    crashes: u64,
    replayed_webhooks: u64,
    applied_pushes: u64,
    applied_edits: u64,
    conversions: u64,
    platform: PlatformCounts,
    skipped: BTreeMap<String, u64>,
    parked_on_the_way: BTreeMap<String, u64>,
    still_parked: BTreeMap<String, u64>,
    lost: Vec<String>,
    applied_twice: Vec<String>,
    echoes: Vec<String>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |f: &mut std::fmt::Formatter<'_>, title: &str, items: &[String]| -> std::fmt::Result {
            writeln!(f, "{title:<30} {}", items.len())?;
            items.iter().take(20).try_for_each(|item| writeln!(f, "    {item}"))
        };
        let counts =
            |f: &mut std::fmt::Formatter<'_>, title: &str, items: &BTreeMap<String, u64>| -> std::fmt::Result {
                writeln!(f, "{title:<30} {}", items.values().sum::<u64>())?;
                items.iter().try_for_each(|(reason, n)| writeln!(f, "    {n:>6}  {reason}"))
            };
        writeln!(f, "\n== chaos report ==")?;
        writeln!(f, "{:<30} {}", "inputs", self.inputs)?;
        writeln!(
            f,
            "{:<30} {} worker crashes, {} webhook requests replayed",
            "injected", self.crashes, self.replayed_webhooks
        )?;
        writeln!(
            f,
            "{:<30} {} pushed fields in HubSpot, {} HubSpot edits at the platform, {} conversions",
            "applied", self.applied_pushes, self.applied_edits, self.conversions
        )?;
        writeln!(f, "{:<30} {:?}", "platform saw", self.platform)?;
        counts(f, "skipped, by reason", &self.skipped)?;
        counts(f, "parked in DLQ, by reason", &self.parked_on_the_way)?;
        counts(f, "still parked after redrive", &self.still_parked)?;
        list(f, "lost (must be 0)", &self.lost)?;
        list(f, "applied twice (must be 0)", &self.applied_twice)?;
        list(f, "loop echoes (must be 0)", &self.echoes)
    }
}

// ---- The platform: applies each delivery once, and judges whether it was news. ----

#[derive(Default, Clone, Debug)]
struct PlatformCounts {
    deliveries: u64,
    refused_while_down: u64,
    redelivered_same_key: u64,
    older_version_ignored: u64,
    newer_version_nothing_new: u64,
    applied: u64,
    deleted: u64,
}

#[derive(Default)]
struct PlatformRecord {
    fields: BTreeMap<String, Value>,
    /// Values the platform itself wrote (and pushed), by field.
    own: BTreeMap<String, Value>,
    newest_version_ms: i64,
}

#[derive(Default)]
struct Platform {
    down: bool,
    seen_keys: HashSet<String>,
    /// (connection, HubSpot id, version) of every record version applied.
    applied_versions: HashSet<(String, String, i64)>,
    /// (connection, record key) → the record as the platform holds it.
    records: HashMap<(String, String), PlatformRecord>,
    /// (connection, HubSpot id) → conversion events applied.
    conversions: HashMap<(String, String), u32>,
    counts: PlatformCounts,
    echoes: Vec<String>,
    applied_twice: Vec<String>,
}

impl Platform {
    async fn start() -> (Arc<Mutex<Platform>>, String) {
        let platform = Arc::new(Mutex::new(Platform::default()));
        let app = Router::new().route("/ingest", post(ingest)).with_state(platform.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/ingest", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (platform, url)
    }

    /// The platform's own change, before it is pushed.
    fn set_own(&mut self, connection: &ConnectionId, email: &str, fields: &serde_json::Map<String, Value>) {
        let record = self.records.entry((connection.to_string(), email.to_string())).or_default();
        for (field, value) in fields {
            record.fields.insert(field.clone(), value.clone());
            record.own.insert(field.clone(), value.clone());
        }
    }

    fn value(&self, connection: &str, email: &str, field: &str) -> Option<String> {
        let record = self.records.get(&(connection.to_string(), email.to_string()))?;
        record.fields.get(field)?.as_str().map(str::to_string)
    }

    fn apply(&mut self, connection: &str, record: &Value) -> &'static str {
        let key = record["idempotency_key"].as_str().unwrap_or_default().to_string();
        if !self.seen_keys.insert(key) {
            self.counts.redelivered_same_key += 1;
            return "applied";
        }
        let hubspot_id = record["hubspot_id"].as_str().unwrap_or_default().to_string();
        let what = format!("{connection} {} {}: {}", record["record_key"], record["event"], record["fields"]);
        match record["event"].as_str().unwrap_or_default() {
            "trigger" => {
                *self.conversions.entry((connection.to_string(), hubspot_id)).or_insert(0) += 1;
                self.counts.applied += 1;
            }
            "deleted" => self.counts.deleted += 1,
            _ => {
                let Some(email) = record["record_key"].as_str() else { return "not_found" };
                let stored = self.records.entry((connection.to_string(), email.to_string())).or_default();
                let version = record["version_ms"].as_i64().unwrap_or_default();
                let fields = record["fields"].as_object().cloned().unwrap_or_default();
                let news: Vec<&String> = fields
                    .iter()
                    .filter(|(f, v)| stored.fields.get(*f).unwrap_or(&Value::Null) != *v)
                    .map(|(f, _)| f)
                    .collect();
                if version < stored.newest_version_ms {
                    // Two deliveries of one record can cross on the way; the platform applies
                    // only the newer, as the delivery contract asks.
                    self.counts.older_version_ignored += 1;
                } else if !self.applied_versions.insert((connection.to_string(), hubspot_id, version)) {
                    self.applied_twice.push(format!("a version applied before, under another key: {what}"));
                } else if news.is_empty() {
                    let carries_own = fields.iter().any(|(f, v)| stored.own.get(f) == Some(v));
                    if carries_own {
                        self.echoes.push(what);
                    } else {
                        // A newer version whose values the platform already has: two deliveries
                        // crossed on the way. Nothing changes at the platform.
                        self.counts.newer_version_nothing_new += 1;
                    }
                } else {
                    stored.fields.extend(fields);
                    stored.newest_version_ms = version;
                    self.counts.applied += 1;
                }
            }
        }
        "applied"
    }
}

async fn ingest(
    State(platform): State<Arc<Mutex<Platform>>>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, axum::Json<Value>) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let secret = Secret::new(DELIVERY_SECRET);
    if !verify(&secret, header("x-hubsync-timestamp"), body.as_bytes(), header("x-hubsync-signature")) {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({ "error": "bad signature" })));
    }
    let mut platform = platform.lock().unwrap();
    platform.counts.deliveries += 1;
    if platform.down {
        platform.counts.refused_while_down += 1;
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({ "error": "down for maintenance" })));
    }
    let delivery: Value = serde_json::from_str(&body).expect("a delivery is JSON");
    let connection = delivery["connection_id"].as_str().unwrap_or_default().to_string();
    let results: Vec<Value> = delivery["records"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|record| json!({ "idempotency_key": record["idempotency_key"], "status": platform.apply(&connection, record) }))
        .collect();
    (StatusCode::OK, axum::Json(json!({ "results": results })))
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
    rng: Mutex<StdRng>,
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
            rng: Mutex::new(StdRng::seed_from_u64(seed ^ 0x9e37)),
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
            let mut rng = self.rng.lock().unwrap();
            if kept.is_empty() || !rng.random_bool(0.2) {
                return;
            }
            let index = rng.random_range(0..kept.len());
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
    let keep = {
        let rate = f64::from_bits(gateway.replay_rate.load(Ordering::Relaxed));
        rate > 0.0 && gateway.rng.lock().unwrap().random_bool(rate)
    };
    if keep {
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
    fn start(deps: &Deps, seed: u64) -> Arc<Loops> {
        let loops = Arc::new(Loops {
            crash_rate: AtomicU64::new(0.0_f64.to_bits()),
            crashes: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            last_busy_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        });
        let push = Arc::new(PushWorker::new(deps.clone()));
        let inbound = Arc::new(InboundWorker::new(deps.clone()));
        let bulk = Arc::new(PullWorker::new(deps.clone()));
        for instance in 0..CONCURRENCY as u64 {
            let seed = seed.wrapping_add(instance * 3);
            let worker = push.clone();
            loops.spawn(deps.push.work.clone(), seed, move |queue, event| {
                let worker = worker.clone();
                async move { push_worker::handle(&worker, &queue, event).await }
            });
            let worker = inbound.clone();
            loops.spawn(deps.inbound.work.clone(), seed + 1, move |queue, event| {
                let worker = worker.clone();
                async move { inbound_worker::handle(&worker, &queue, event).await }
            });
            let worker = bulk.clone();
            loops.spawn(deps.bulk.work.clone(), seed + 2, move |queue, event| {
                let worker = worker.clone();
                async move { bulk_worker::handle(&worker, &queue, event).await }
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
    fn spawn<F, Fut>(self: &Arc<Self>, queue: Arc<dyn Queue>, seed: u64, handler: F)
    where
        F: Fn(Hurried, SqsEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = SqsBatchResponse> + Send,
    {
        let loops = self.clone();
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed);
            while !loops.stop.load(Ordering::Relaxed) {
                let Ok(batch) = queue.receive(10, Duration::from_millis(300)).await else { continue };
                if batch.is_empty() {
                    continue;
                }
                loops.mark_busy();
                let crash = rng.random_bool(f64::from_bits(loops.crash_rate.load(Ordering::Relaxed)));
                let invocation = handler(Hurried(queue.clone()), sqs_event(&batch));
                let response = if crash {
                    let cut = Duration::from_millis(rng.random_range(0..400));
                    let _ = tokio::time::timeout(cut, invocation).await;
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

/// Names both ways, job title and lifecycle stage in, and a `conversion` event on stage changes.
fn config(ingest_url: &str) -> Value {
    json!({
        "objects": { "contacts": {
            "match_key": { "kind": "email" }, "write_mode": "upsert",
            "fields": [
                { "platform_field": "first_name", "hubspot_property": "firstname", "direction": "both", "platform_type": "string" },
                { "platform_field": "last_name", "hubspot_property": "lastname", "direction": "out", "platform_type": "string" },
                { "platform_field": "job_title", "hubspot_property": "jobtitle", "direction": "in", "platform_type": "string" },
                { "platform_field": "stage", "hubspot_property": "lifecyclestage", "direction": "in",
                  "platform_type": "enumeration", "values": ["subscriber", "lead", "marketingqualifiedlead",
                  "salesqualifiedlead", "opportunity", "customer", "evangelist", "other"] }
            ] } },
        "triggers": [ { "name": "conversion", "object": "contacts", "on_change": ["lifecyclestage"],
            "fields": [ { "name": "contact_id", "source": { "kind": "record_id" } },
                        { "name": "stage", "source": { "kind": "property", "property": "lifecyclestage" } } ] } ],
        "options": { "webhooks_enabled": true, "data_in_enabled": true, "ingest_url": ingest_url }
    })
}
