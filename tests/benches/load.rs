//! Load benchmark: sustained webhook traffic and push traffic together, for minutes, on the
//! local runner (memory store, in-process queues and workers, the HubSpot simulator, the
//! stand-in platform), then a check that nothing was lost.
//!
//! ```sh
//! cargo bench -p hubsync-tests --bench load
//! # HUBSYNC_BENCH_LOAD_SECONDS=180 HUBSYNC_BENCH_LOAD_EVENTS_PER_MINUTE=10000 HUBSYNC_BENCH_LOAD_PORTALS=50
//! # HUBSYNC_BENCH_LOAD_PUSHES_PER_MINUTE=5000 HUBSYNC_BENCH_LOAD_CONTACTS=200 HUBSYNC_BENCH_LOAD_PUSH_RECORDS=100
//! # HUBSYNC_BENCH_LOAD_WORKERS=5
//! ```
//!
//! Each work queue has `HUBSYNC_BENCH_LOAD_WORKERS` consumers, as Lambda runs that many
//! instances of each worker function (template.yaml's `WorkerConcurrency`, 5 by default).
//!
//! Each portal is installed through OAuth by a tenant of its own, with a config that takes
//! contacts' first names in (to the stand-in platform) and pushes last names out. Then, at the
//! rates asked for, spread evenly over the portals:
//! - a contact's first name is changed in the simulator, as a person would, and the change is
//!   POSTed to the local runner's webhook route as HubSpot sends it (a JSON array of events,
//!   signed with v3); every change has its own value, so each must reach the platform;
//! - a platform change of a last name is put on the push queue, as the platform would; each
//!   must be written to the simulator.
//!
//! When the traffic stops, the queues are left to drain, and every change is checked: a webhook
//! event against the platform's deliveries, a push against the simulator's property history. A
//! change counts as delivered when its own value arrived, or a newer change of the same record
//! did (HubSpot's and hubsync's newer-wins folding). Lost must be 0.
//!
//! Prints the counts, queue lag percentiles (webhook acceptance → platform delivery, push enqueue
//! → HubSpot write), queue depths, memory (peak, and resident at the end of the first and the
//! last minute), CPU time, HubSpot calls and 429s; and a row per minute.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hubspot_sim::{ALL_SCOPES, signature_v3};
use hubsync::console::configs;
use hubsync::domain::{ConnectionId, VersionedConfig};
use hubsync::ports::OutgoingMessage;
use hubsync_local::{PlatformArrival, QueueDepths, RunningLocal};
use hubsync_tests::bench::{env, peak_memory_mib, process_cpu_seconds};
use hubsync_tests::local::start_uncaptured;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

const FIRST_PORTAL: u64 = 1000;
const CLIENT_ID: &str = "sim-client-id";
const CLIENT_SECRET: &str = "sim-client-secret";
/// How often traffic is generated: the simulator's webhook batching delay, so a portal's
/// events of one tick go in one POST, as HubSpot batches them.
const TICK: Duration = Duration::from_millis(50);
/// How often queue depths and resident memory are sampled.
const SAMPLE: Duration = Duration::from_secs(1);
/// HubSpot retries a refused webhook POST for 24 hours; here, five times within half a minute.
const WEBHOOK_RETRIES: [Duration; 5] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(16),
];
/// The longest wait for the queues to drain once the traffic stops: past the push worker's
/// first retry backoffs (30 s, 1 and 2 minutes).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(300);

struct Settings {
    seconds: u64,
    events_per_minute: usize,
    pushes_per_minute: usize,
    portals: usize,
    contacts_per_portal: usize,
    push_records_per_portal: usize,
    workers_per_queue: usize,
}

/// One installed portal: its connection and the simulator ids of the contacts edited in it.
#[derive(Clone)]
struct Portal {
    hub_id: u64,
    connection_id: ConnectionId,
    contacts: Vec<String>,
}

/// Milliseconds since the Unix epoch, from `Instant`s too, so that the simulator's write times
/// (epoch milliseconds) and this process's clocks compare.
#[derive(Clone, Copy)]
struct Clock {
    origin: Instant,
    origin_ms: f64,
}

impl Clock {
    fn new() -> Self {
        let origin_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64() * 1000.0;
        Clock { origin: Instant::now(), origin_ms }
    }

    fn ms(&self, at: Instant) -> f64 {
        self.origin_ms + at.duration_since(self.origin).as_secs_f64() * 1000.0
    }

    fn now_ms(&self) -> f64 {
        self.ms(Instant::now())
    }
}

/// One change sent (a webhook event or a push) and what became of it, in epoch milliseconds.
struct Change {
    record: String,
    /// When the webhook POST answered 200, or the push message was enqueued.
    accepted_ms: Option<f64>,
    /// When the platform had it (webhook) or HubSpot wrote it (push): its own value, or a
    /// newer change of the same record.
    done_ms: Option<f64>,
    /// Done with its own value, not by a newer change of the record.
    exact: bool,
}

/// Every change of one kind, by sequence number (its value is `E{n}` or `P{n}`).
#[derive(Default)]
struct Ledger {
    changes: Vec<Change>,
    /// Per record, the changes not yet done, oldest first.
    outstanding: HashMap<String, Vec<usize>>,
    /// A change whose value arrived again after it was done.
    duplicates: usize,
    /// Values that belong to no change of that record.
    unexpected: usize,
}

impl Ledger {
    /// A new change of `record`, not accepted yet; returns its sequence number.
    fn add(&mut self, record: String) -> usize {
        let seq = self.changes.len();
        self.outstanding.entry(record.clone()).or_default().push(seq);
        self.changes.push(Change { record, accepted_ms: None, done_ms: None, exact: false });
        seq
    }

    fn accept(&mut self, seqs: &[usize], at_ms: f64) {
        seqs.iter().for_each(|&seq| self.changes[seq].accepted_ms = Some(at_ms));
    }

    /// Change `seq`'s value reached its destination at `at_ms`: it is done, and so is every
    /// older change of the same record (newer wins).
    fn arrived(&mut self, record: &str, seq: usize, at_ms: f64) {
        match self.changes.get(seq) {
            Some(change) if change.record == record && change.done_ms.is_some() => {
                self.duplicates += 1;
                return;
            }
            Some(change) if change.record == record => {}
            _ => {
                self.unexpected += 1;
                return;
            }
        }
        let changes = &mut self.changes;
        if let Some(outstanding) = self.outstanding.get_mut(record) {
            outstanding.retain(|&older| {
                if older > seq {
                    return true;
                }
                changes[older].done_ms = Some(at_ms);
                changes[older].exact = older == seq;
                false
            });
        }
    }

    fn accepted(&self) -> usize {
        self.changes.iter().filter(|c| c.accepted_ms.is_some()).count()
    }

    fn done(&self) -> usize {
        self.changes.iter().filter(|c| c.done_ms.is_some()).count()
    }

    fn exact(&self) -> usize {
        self.changes.iter().filter(|c| c.exact).count()
    }

    /// Accepted changes that never reached their destination.
    fn lost(&self) -> usize {
        self.changes.iter().filter(|c| c.accepted_ms.is_some() && c.done_ms.is_none()).count()
    }

    /// From acceptance to done, in milliseconds, sorted; a change whose value arrived before
    /// its own webhook was answered (read along with an earlier event) counts 0.
    fn lags(&self) -> Vec<f64> {
        let mut lags: Vec<f64> =
            self.changes.iter().filter_map(|c| Some((c.done_ms? - c.accepted_ms?).max(0.0))).collect();
        lags.sort_by(f64::total_cmp);
        lags
    }
}

/// How fast a sender sends, and until when.
#[derive(Clone, Copy)]
struct Schedule {
    per_second: f64,
    until: Instant,
}

impl Schedule {
    /// Ticks until the schedule ends; each tick says how many items should have been sent by now.
    fn pace(self) -> Pace {
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Pace { schedule: self, started: Instant::now(), ticks }
    }
}

struct Pace {
    schedule: Schedule,
    started: Instant,
    ticks: tokio::time::Interval,
}

impl Pace {
    async fn due(&mut self) -> Option<usize> {
        if Instant::now() >= self.schedule.until {
            return None;
        }
        self.ticks.tick().await;
        Some((self.started.elapsed().as_secs_f64() * self.schedule.per_second) as usize)
    }
}

/// What the traffic generators and the observers share.
struct Traffic {
    clock: Clock,
    webhooks: Mutex<Ledger>,
    pushes: Mutex<Ledger>,
    webhook_posts: AtomicUsize,
    /// POSTs answered with anything but 200 (each retried, as HubSpot does).
    refused_posts: AtomicUsize,
    /// Events the receiver answered 200 for but did not queue for any connection.
    not_enqueued: AtomicUsize,
}

/// One sample of the queues and memory, seconds into the traffic.
struct Sample {
    second: f64,
    depths: QueueDepths,
    resident_mib: f64,
    events_sent: usize,
    pushes_sent: usize,
}

#[tokio::main]
async fn main() {
    let settings = Settings {
        seconds: env("HUBSYNC_BENCH_LOAD_SECONDS", 180) as u64,
        events_per_minute: env("HUBSYNC_BENCH_LOAD_EVENTS_PER_MINUTE", 10_000),
        pushes_per_minute: env("HUBSYNC_BENCH_LOAD_PUSHES_PER_MINUTE", 5_000),
        portals: env("HUBSYNC_BENCH_LOAD_PORTALS", 50).max(1),
        contacts_per_portal: env("HUBSYNC_BENCH_LOAD_CONTACTS", 200).max(1),
        push_records_per_portal: env("HUBSYNC_BENCH_LOAD_PUSH_RECORDS", 100).max(1),
        workers_per_queue: env("HUBSYNC_BENCH_LOAD_WORKERS", 5).max(1),
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut local = start_uncaptured().await;
    local.add_workers(settings.workers_per_queue - 1);
    let sim = local.simulator.as_ref().expect("the simulator runs");
    // This benchmark sends the webhooks itself, at its own rate: the simulator sends none.
    sim.subscribe_webhooks(CLIENT_ID, &format!("{}/webhooks/hubspot", local.base_url), &[]);

    let setup = Instant::now();
    let portals = Arc::new(install_portals(&local, &settings).await);
    let setup_seconds = setup.elapsed().as_secs_f64();
    println!(
        "load benchmark: {} s of {} webhook events/min and {} push changes/min over {} portals \
         ({} contacts edited and {} pushed per portal), queue consumers: {} each, {cores} cores; set up in {setup_seconds:.1} s",
        settings.seconds,
        settings.events_per_minute,
        settings.pushes_per_minute,
        settings.portals,
        settings.contacts_per_portal,
        settings.push_records_per_portal,
        settings.workers_per_queue
    );

    let traffic = Arc::new(Traffic {
        clock: Clock::new(),
        webhooks: Mutex::default(),
        pushes: Mutex::default(),
        webhook_posts: AtomicUsize::new(0),
        refused_posts: AtomicUsize::new(0),
        not_enqueued: AtomicUsize::new(0),
    });
    let watcher = tokio::spawn(watch_platform(local.platform.watch(), traffic.clone()));
    let reads = || sim.request_count("POST", "/crm/objects/2026-09/contacts/batch/read");
    let upserts = || sim.request_count("POST", "/crm/objects/2026-09/contacts/batch/upsert");
    let (reads_before, upserts_before, cpu_before) = (reads(), upserts(), process_cpu_seconds());

    let started = Instant::now();
    let until = started + Duration::from_secs(settings.seconds);
    let webhooks = Schedule { per_second: settings.events_per_minute as f64 / 60.0, until };
    let webhook_sender =
        tokio::spawn(send_webhooks(local.base_url.clone(), sim.handle(), portals.clone(), traffic.clone(), webhooks));
    let pushes = Schedule { per_second: settings.pushes_per_minute as f64 / 60.0, until };
    let push_sender = tokio::spawn(send_pushes(
        local.deps.clone(),
        portals.clone(),
        settings.push_records_per_portal,
        traffic.clone(),
        pushes,
    ));

    let mut samples = Vec::new();
    let mut sampler = tokio::time::interval(SAMPLE);
    sampler.set_missed_tick_behavior(MissedTickBehavior::Delay);
    while Instant::now() < until {
        sampler.tick().await;
        samples.push(sample(&local, &traffic, started));
    }
    let cpu_traffic = process_cpu_seconds() - cpu_before;
    webhook_sender.await.expect("the webhook sender finishes");
    push_sender.await.expect("the push sender finishes");

    // Drain: until the work queues are empty and every accepted event has arrived (or the
    // time is up; what is missing then is reported as lost).
    let drain = Instant::now();
    loop {
        let depths = local.queue_depths();
        let webhooks_done = {
            let ledger = traffic.webhooks.lock().unwrap();
            ledger.lost() == 0
        };
        samples.push(sample(&local, &traffic, started));
        if (depths.push + depths.inbound + depths.bulk == 0 && webhooks_done) || drain.elapsed() > DRAIN_TIMEOUT {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Deliveries that arrived just before the queues emptied are still on their way to the ledger.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let drain_seconds = drain.elapsed().as_secs_f64();
    let cpu_total = process_cpu_seconds() - cpu_before;
    let (reads_during, upserts_during) = (reads() - reads_before, upserts() - upserts_before);
    watcher.abort();

    check_pushes(sim, &portals, &traffic);
    let RunTotals { runs, rate_limited, failed } = run_totals(&local, &portals).await;
    let measured = Measured {
        drain_seconds,
        cpu_traffic,
        cpu_total,
        reads: reads_during,
        upserts: upserts_during,
        runs,
        rate_limited,
        failed,
        peak_memory_mib: peak_memory_mib(),
    };
    let (webhooks_lost, pushes_lost) = report(&settings, &traffic, &samples, &measured);
    local.shutdown().await;
    assert_eq!(webhooks_lost, 0, "every acknowledged webhook event reaches the platform");
    assert_eq!(pushes_lost, 0, "every push change reaches HubSpot");
}

/// Figures taken at the end of the run, besides the ledgers and samples.
#[derive(Clone, Copy)]
struct Measured {
    drain_seconds: f64,
    cpu_traffic: f64,
    cpu_total: f64,
    reads: u64,
    upserts: u64,
    /// Runs recorded in the store (one per connection and object of each queue batch).
    runs: usize,
    rate_limited: u64,
    failed: u64,
    peak_memory_mib: f64,
}

/// Prints the figures and the minutes; returns how many webhook events and push changes were lost.
fn report(settings: &Settings, traffic: &Traffic, samples: &[Sample], measured: &Measured) -> (usize, usize) {
    let Measured { drain_seconds, cpu_traffic, cpu_total, reads, upserts, runs, rate_limited, failed, peak_memory_mib } =
        *measured;
    let webhooks = traffic.webhooks.lock().unwrap();
    let pushes = traffic.pushes.lock().unwrap();
    let (webhook_lags, push_lags) = (webhooks.lags(), pushes.lags());
    let max_depth = |depth: fn(&QueueDepths) -> usize| samples.iter().map(|s| depth(&s.depths)).max().unwrap_or(0);
    let traffic_samples: Vec<&Sample> = samples.iter().filter(|s| s.second <= settings.seconds as f64).collect();
    let first_minute = traffic_samples.iter().take_while(|s| s.second <= 60.0).last().or(traffic_samples.first());
    let last_minute = traffic_samples.last();
    let (first_resident, last_resident) =
        (first_minute.map_or(0.0, |s| s.resident_mib), last_minute.map_or(0.0, |s| s.resident_mib));
    let changes = webhooks.changes.len() + pushes.changes.len();

    println!();
    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| webhook events sent / acknowledged | {} / {} ({} POSTs, {} refused and retried, {} not queued) |",
        webhooks.changes.len(),
        webhooks.accepted(),
        traffic.webhook_posts.load(Ordering::Relaxed),
        traffic.refused_posts.load(Ordering::Relaxed),
        traffic.not_enqueued.load(Ordering::Relaxed)
    );
    println!(
        "| delivered to the platform | {} ({} with their own value, {} by a newer change of the record; {} duplicate deliveries, {} unexpected) |",
        webhooks.done(),
        webhooks.exact(),
        webhooks.done() - webhooks.exact(),
        webhooks.duplicates,
        webhooks.unexpected
    );
    println!("| webhook events lost | {} |", webhooks.lost());
    println!(
        "| push changes sent / applied / lost | {} / {} / {} ({} with their own value, {} by a newer change) |",
        pushes.changes.len(),
        pushes.done(),
        pushes.lost(),
        pushes.exact(),
        pushes.done() - pushes.exact()
    );
    println!("| webhook lag (accepted → platform) p50 / p95 / p99 / max | {} |", percentiles(&webhook_lags));
    println!("| push lag (enqueued → HubSpot) p50 / p95 / p99 / max | {} |", percentiles(&push_lags));
    println!(
        "| queue depth max: inbound / push / bulk / dead-letter | {} / {} / {} / {} |",
        max_depth(|d| d.inbound),
        max_depth(|d| d.push),
        max_depth(|d| d.bulk),
        max_depth(|d| d.parked)
    );
    println!("| drain after the traffic stopped | {drain_seconds:.1} s |");
    println!("| peak memory (VmHWM) | {peak_memory_mib:.0} MiB |");
    println!(
        "| resident memory, end of first → last minute | {first_resident:.0} → {last_resident:.0} MiB ({:+.0} MiB) |",
        last_resident - first_resident
    );
    println!(
        "| kept in memory at the end | {runs} runs and {} de-duplication keys (memory store), the property history of {changes} writes (simulator) |",
        webhooks.accepted()
    );
    println!(
        "| process CPU | {cpu_total:.1} s ({cpu_traffic:.1} s during the traffic: {:.0}% of one core; {:.2} ms per change) |",
        100.0 * cpu_traffic / settings.seconds as f64,
        1000.0 * cpu_total / changes.max(1) as f64
    );
    println!(
        "| HubSpot calls: batch reads / batch upserts | {reads} / {upserts} ({:.0} and {:.0} per 1,000 changes) |",
        1000.0 * reads as f64 / webhooks.changes.len().max(1) as f64,
        1000.0 * upserts as f64 / pushes.changes.len().max(1) as f64
    );
    println!("| HubSpot 429s / changes failed | {rate_limited} / {failed} |");

    println!();
    println!(
        "| minute | events sent | pushes sent | max inbound depth | max push depth | resident memory at its end |"
    );
    println!("|---|---|---|---|---|---|");
    let minutes = samples.iter().map(|s| (s.second / 60.0).ceil().max(1.0) as usize).max().unwrap_or(0);
    let mut previous = (0, 0);
    for minute in 1..=minutes {
        let in_minute: Vec<&Sample> =
            samples.iter().filter(|s| (s.second / 60.0).ceil().max(1.0) as usize == minute).collect();
        let Some(last) = in_minute.last() else { continue };
        println!(
            "| {minute}{} | {} | {} | {} | {} | {:.0} MiB |",
            if minute as f64 * 60.0 > settings.seconds as f64 { " (drain)" } else { "" },
            last.events_sent - previous.0,
            last.pushes_sent - previous.1,
            in_minute.iter().map(|s| s.depths.inbound).max().unwrap_or(0),
            in_minute.iter().map(|s| s.depths.push).max().unwrap_or(0),
            last.resident_mib
        );
        previous = (last.events_sent, last.pushes_sent);
    }
    println!();
    println!(
        "notes: lag is from the receiver's 200 (webhooks) or the enqueue (pushes) to the platform's receipt \
         or the simulator's write time; depths count messages visible and in flight, sampled every {} s. \
         Process CPU and memory are the whole process: hubsync, the HubSpot simulator (with every record's \
         property history), the stand-in platform and the load generator.",
        SAMPLE.as_secs()
    );
    (webhooks.lost(), pushes.lost())
}

/// Installs one portal per tenant through the OAuth flow, saves its config (first names in,
/// last names out) and seeds the contacts its webhooks will be about.
async fn install_portals(local: &RunningLocal, settings: &Settings) -> Vec<Portal> {
    let sim = local.simulator.as_ref().expect("the simulator runs");
    let http = reqwest::Client::new();
    let mut portals = Vec::with_capacity(settings.portals);
    for i in 0..settings.portals {
        let hub_id = FIRST_PORTAL + i as u64;
        let (tenant, api_key) = (format!("load-{i:03}"), format!("hsk_load_{i:03}"));
        local.add_tenant(&tenant, &api_key).await;
        // An install lands on the portal added last.
        sim.add_portal(hub_id, ALL_SCOPES);
        let base = &local.base_url;
        let outcome: Value = http
            .get(format!("{base}/oauth/install?return_to={base}/local/return"))
            .bearer_auth(&api_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(outcome["portal_id"], hub_id.to_string(), "installed: {outcome}");
        let connection_id = ConnectionId::new(outcome["connection_id"].as_str().expect("connected"));
        let connection = local.deps.store.get_connection(&connection_id).await.unwrap().unwrap();
        let config: VersionedConfig = serde_json::from_value(json!({ "version": 0, "config": {
            "objects": { "contacts": {
                "match_key": { "kind": "email" }, "write_mode": "upsert",
                "fields": [
                    { "platform_field": "first_name", "hubspot_property": "firstname", "direction": "in", "platform_type": "string" },
                    { "platform_field": "last_name", "hubspot_property": "lastname", "direction": "out", "platform_type": "string" }
                ] } },
            "options": { "webhooks_enabled": true, "data_in_enabled": true, "ingest_url": format!("{base}/local/platform/ingest") }
        } }))
        .unwrap();
        configs::save(&local.deps, &connection, &config).await.expect("config saved");
        portals.push(Portal { hub_id, connection_id, contacts: Vec::new() });
    }
    // Each new inbound field's backfill walks the (still empty) portal on the bulk worker.
    while local.queue_depths().bulk > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for portal in &mut portals {
        let contacts = (0..settings.contacts_per_portal)
            .map(|n| json!({ "email": format!("contact{n}@portal{}.example", portal.hub_id), "firstname": "Seeded" }));
        portal.contacts = sim.seed_many(portal.hub_id, "contacts", contacts);
    }
    portals
}

/// Changes contacts' first names in the simulator on `schedule`, each
/// portal's changes of a tick POSTed as one signed webhook request. Change `n` goes to portal
/// `n % portals` and to its contacts in turn; its value is `E{n}`.
async fn send_webhooks(
    base_url: String,
    sim: hubspot_sim::Simulator,
    portals: Arc<Vec<Portal>>,
    traffic: Arc<Traffic>,
    schedule: Schedule,
) {
    let url = format!("{base_url}/webhooks/hubspot");
    let app_id = sim.app_id(CLIENT_ID);
    let http = reqwest::Client::new();
    let mut posts = JoinSet::new();
    let mut pace = schedule.pace();
    let mut sent = 0usize;
    while let Some(due) = pace.due().await {
        let mut by_portal: BTreeMap<u64, (Vec<Value>, Vec<usize>)> = BTreeMap::new();
        while sent < due {
            let Portal { hub_id, contacts, .. } = &portals[sent % portals.len()];
            let contact = &contacts[(sent / portals.len()) % contacts.len()];
            let value = format!("E{sent}");
            sim.edit_as_user(*hub_id, "contacts", contact, json!({ "firstname": value }));
            let occurred_at = traffic.clock.now_ms() as i64;
            let seq = traffic.webhooks.lock().unwrap().add(format!("{hub_id}/{contact}"));
            let event = json!({
                "eventId": seq + 1, "subscriptionId": 1, "portalId": hub_id, "appId": app_id,
                "occurredAt": occurred_at, "subscriptionType": "contact.propertyChange", "attemptNumber": 0,
                "objectId": contact.parse::<u64>().unwrap(), "propertyName": "firstname", "propertyValue": value,
                "changeSource": "CRM_UI", "sourceId": "userId:1",
            });
            let batch = by_portal.entry(*hub_id).or_default();
            batch.0.push(event);
            batch.1.push(seq);
            sent += 1;
        }
        for (events, seqs) in by_portal.into_values() {
            posts.spawn(post_webhook(http.clone(), url.clone(), traffic.clone(), events, seqs));
        }
        // A finished task keeps its memory until it is joined.
        while posts.try_join_next().is_some() {}
    }
    while posts.join_next().await.is_some() {}
}

/// POSTs one request of events as HubSpot does (v3 signature over method, URL, body and
/// timestamp), retrying until it is answered 200.
async fn post_webhook(http: reqwest::Client, url: String, traffic: Arc<Traffic>, events: Vec<Value>, seqs: Vec<usize>) {
    for attempt in 0..=WEBHOOK_RETRIES.len() {
        if attempt > 0 {
            tokio::time::sleep(WEBHOOK_RETRIES[attempt - 1]).await;
        }
        let events: Vec<Value> = events
            .iter()
            .map(|event| {
                let mut event = event.clone();
                event["attemptNumber"] = json!(attempt);
                event
            })
            .collect();
        let body = serde_json::to_vec(&events).unwrap();
        let timestamp = traffic.clock.now_ms() as i64;
        let signature = signature_v3(CLIENT_SECRET, "POST", &url, &body, timestamp);
        traffic.webhook_posts.fetch_add(1, Ordering::Relaxed);
        let response = http
            .post(&url)
            .header("content-type", "application/json")
            .header("x-hubspot-request-timestamp", timestamp.to_string())
            .header("x-hubspot-signature-v3", signature)
            .body(body)
            .send()
            .await;
        let accepted_ms = traffic.clock.now_ms();
        match response {
            Ok(response) if response.status() == reqwest::StatusCode::OK => {
                let receipt: Value = response.json().await.unwrap_or_default();
                let enqueued = receipt["enqueued"].as_u64().unwrap_or(0) as usize;
                traffic.not_enqueued.fetch_add(events.len().saturating_sub(enqueued), Ordering::Relaxed);
                traffic.webhooks.lock().unwrap().accept(&seqs, accepted_ms);
                return;
            }
            _ => {
                traffic.refused_posts.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Puts platform changes of last names on the push queue on `schedule`, as
/// the platform's backend would. Change `n` goes to portal `n % portals` and to its push
/// records in turn; its value is `P{n}`.
async fn send_pushes(
    deps: hubsync::deps::Deps,
    portals: Arc<Vec<Portal>>,
    records_per_portal: usize,
    traffic: Arc<Traffic>,
    schedule: Schedule,
) {
    let mut pace = schedule.pace();
    let mut sent = 0usize;
    while let Some(due) = pace.due().await {
        let mut messages = Vec::new();
        let mut seqs = Vec::new();
        while sent < due {
            let Portal { hub_id, connection_id, .. } = &portals[sent % portals.len()];
            let email = format!("pushed{}@portal{hub_id}.example", (sent / portals.len()) % records_per_portal);
            let body = json!({
                "version": 1, "connection_id": connection_id, "object": "contact", "record_key": email,
                "fields": { "last_name": format!("P{sent}") },
                "changed_at": time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap(),
            });
            messages.push(OutgoingMessage::new(body.to_string()));
            seqs.push(traffic.pushes.lock().unwrap().add(format!("{hub_id}/{email}")));
            sent += 1;
        }
        if messages.is_empty() {
            continue;
        }
        let enqueued_ms = traffic.clock.now_ms();
        deps.push.work.send(messages).await.expect("the push queue takes the changes");
        traffic.pushes.lock().unwrap().accept(&seqs, enqueued_ms);
    }
}

/// Marks each webhook change done as its value arrives at the stand-in platform.
async fn watch_platform(mut arrivals: tokio::sync::mpsc::UnboundedReceiver<PlatformArrival>, traffic: Arc<Traffic>) {
    while let Some(arrival) = arrivals.recv().await {
        let at_ms = traffic.clock.ms(arrival.arrived_at);
        let hub_id = arrival.delivery["portal_id"].as_u64().unwrap_or_default();
        let mut ledger = traffic.webhooks.lock().unwrap();
        for record in arrival.delivery["records"].as_array().into_iter().flatten() {
            let key = format!("{hub_id}/{}", record["hubspot_id"].as_str().unwrap_or_default());
            match record["fields"]["first_name"].as_str().and_then(|v| v.strip_prefix('E')?.parse().ok()) {
                Some(seq) => ledger.arrived(&key, seq, at_ms),
                None => ledger.unexpected += 1,
            }
        }
    }
}

/// Marks each push change done at the time the simulator wrote its value (or a newer one), as
/// each pushed record's last-name history shows.
fn check_pushes(sim: &hubspot_sim::Simulator, portals: &[Portal], traffic: &Traffic) {
    let mut ledger = traffic.pushes.lock().unwrap();
    for portal in portals {
        for record in sim.records(portal.hub_id, "contacts") {
            let Some(email) = record["properties"]["email"].as_str().filter(|e| e.starts_with("pushed")) else {
                continue;
            };
            let key = format!("{}/{email}", portal.hub_id);
            for entry in record["propertiesWithHistory"]["lastname"].as_array().into_iter().flatten().rev() {
                let seq = entry["value"].as_str().and_then(|v| v.strip_prefix('P')?.parse::<usize>().ok());
                let written = entry["timestamp"]
                    .as_str()
                    .and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok());
                match (seq, written) {
                    (Some(seq), Some(written)) => {
                        ledger.arrived(&key, seq, (written.unix_timestamp_nanos() / 1_000_000) as f64)
                    }
                    _ => ledger.unexpected += 1,
                }
            }
        }
    }
}

/// Every connection's runs: how many, the 429s they met (messages retried for a rate limit)
/// and the changes they failed (parked).
struct RunTotals {
    runs: usize,
    rate_limited: u64,
    failed: u64,
}

async fn run_totals(local: &RunningLocal, portals: &[Portal]) -> RunTotals {
    let mut totals = RunTotals { runs: 0, rate_limited: 0, failed: 0 };
    for portal in portals {
        for run in local.deps.store.list_runs(&portal.connection_id, usize::MAX).await.unwrap() {
            totals.runs += 1;
            totals.rate_limited += run
                .counts
                .retried
                .iter()
                .filter(|(reason, _)| reason.contains("429") || reason.contains("rate limit"))
                .map(|(_, n)| n)
                .sum::<u64>();
            totals.failed += run.counts.failed.values().sum::<u64>();
        }
    }
    totals
}

fn sample(local: &RunningLocal, traffic: &Traffic, started: Instant) -> Sample {
    Sample {
        second: started.elapsed().as_secs_f64(),
        depths: local.queue_depths(),
        resident_mib: resident_memory_mib(),
        events_sent: traffic.webhooks.lock().unwrap().changes.len(),
        pushes_sent: traffic.pushes.lock().unwrap().changes.len(),
    }
}

/// The process's resident memory now (Linux's VmRSS), in MiB.
fn resident_memory_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// "p50 / p95 / p99 / max" of sorted milliseconds (nearest rank).
fn percentiles(sorted: &[f64]) -> String {
    if sorted.is_empty() {
        return "—".into();
    }
    let at = |p: f64| sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
    [at(0.50), at(0.95), at(0.99), sorted[sorted.len() - 1]].map(millis).join(" / ")
}

fn millis(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 10_000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}
