//! Webhook benchmark: the receiver's handler in-process (verify the v3 signature, parse,
//! de-duplicate, route, enqueue), and a change made in the HubSpot simulator until the platform
//! has it, on the embedded stack (memory store, in-process queues, the simulator).
//!
//! ```sh
//! cargo bench -p hubsync-tests --bench webhooks  # HUBSYNC_BENCH_REQUESTS=2000 HUBSYNC_BENCH_CHANGES=200
//! ```
//!
//! Prints handler latency percentiles for 1-event and 100-event requests and events per second
//! per core, end-to-end latency percentiles from a user's edit to the platform's ingest endpoint,
//! and the process's peak memory.
//!
//! The end-to-end part runs first: the in-process requests leave thousands of messages on the
//! inbound queue, which the local runner's inbound worker drains in the background, paced to
//! the portal's HubSpot rate limit, for minutes; measured after them, an edit would wait its
//! turn behind that backlog.

use hubsync_tests::bench::{env, peak_memory_mib, process_cpu_seconds};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use hubspot_sim::Simulator;
use hubsync::console::configs;
use hubsync::domain::{ConnectionId, Secret, VersionedConfig};
use hubsync::webhooks::signature::v3_signature;
use hubsync::work::Pacer;
use hubsync_tests::local::{install_demo_portal, start_uncaptured};
use serde_json::{Value, json};
use tower::ServiceExt;

const PORTAL: u64 = 1000;
const APP_ID: u64 = 54321;
const CLIENT_SECRET: &str = "sim-client-secret";
/// The simulator's default: events wait this long to be sent in one batch (SimConfig::webhook_flush_delay).
const SIM_FLUSH_DELAY_MS: u64 = 50;
/// How often the platform's `received` list is looked at, end to end.
const POLL: Duration = Duration::from_millis(5);
/// Object ids of the in-process events: no such contact exists in the simulator.
const FIRST_OBJECT_ID: u64 = 50_000_000;

const P99_GOAL_100_EVENTS: Duration = Duration::from_millis(5);
const P50_GOAL_END_TO_END: Duration = Duration::from_secs(2);

struct Row {
    path: &'static str,
    batch: String,
    requests: usize,
    events: usize,
    latencies: Vec<Duration>,
    /// Events per second of handler time, and per second of the process's CPU time, when
    /// measured in-process.
    per_core: Option<(f64, f64)>,
    goal: String,
    note: String,
}

#[tokio::main]
async fn main() {
    let requests: usize = env("HUBSYNC_BENCH_REQUESTS", 2_000);
    let changes: usize = env("HUBSYNC_BENCH_CHANGES", 200);
    let warm_up = (requests / 10).max(1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    let local = start_uncaptured().await;
    let sim = local.simulator.as_ref().expect("the simulator runs");
    let outcome = install_demo_portal(&local.base_url).await;
    let connection_id = ConnectionId::new(outcome["connection_id"].as_str().expect("connected"));
    let deps = local.deps.clone();
    let connection = deps.store.get_connection(&connection_id).await.unwrap().unwrap();

    // The contacts edited end to end, seeded (and their webhooks, if any, settled) before the
    // config takes anything in.
    let end_to_end_warm_up = 10;
    let contacts: Vec<String> = (0..changes + end_to_end_warm_up)
        .map(|i| {
            sim.seed(
                PORTAL,
                "contacts",
                json!({ "email": format!("user{i}@bench.example"), "firstname": format!("User {i}") }),
            )
        })
        .collect();
    assert!(sim.wait_webhooks_idle(Duration::from_secs(30)).await, "the simulator's webhooks settle");

    let config: VersionedConfig = serde_json::from_value(json!({ "version": 0, "config": {
        "objects": { "contacts": {
            "match_key": { "kind": "email" }, "write_mode": "upsert",
            "fields": [
                { "platform_field": "first_name", "hubspot_property": "firstname", "direction": "both", "platform_type": "string" },
                { "platform_field": "seats", "hubspot_property": "num_employees", "direction": "in", "platform_type": "number" }
            ] } },
        "options": { "webhooks_enabled": true, "data_in_enabled": true, "ingest_url": format!("{}/local/platform/ingest", local.base_url) }
    } }))
    .unwrap();
    configs::save(&deps, &connection, &config).await.expect("config saved");

    println!(
        "webhook benchmark: {requests} requests per batch size in-process (after {warm_up} warm-up), \
         {changes} HubSpot edits end to end twice (after {end_to_end_warm_up} warm-up), {cores} cores"
    );

    // End to end: a user's edit in the simulator until the platform stand-in has the new value.
    // Back to back, each read waits for the portal's next pacer slot; spaced by more than the
    // pacer's gap, none waits.
    let pacer_gap = Pacer::new(deps.store.clone(), deps.clock.clone()).interval(PORTAL, None);
    let spacing = Duration::from_millis(200);
    let phases = Instant::now();
    let http = reqwest::Client::new();
    let received_url = format!("{}/local/platform/received", local.base_url);
    let (warm, measured) = contacts.split_at(end_to_end_warm_up);
    edit_all(sim, &http, &received_url, warm, "Warm", Duration::ZERO).await;
    let (back_to_back, back_to_back_lost) =
        edit_all(sim, &http, &received_url, measured, "Edited", Duration::ZERO).await;
    let (spaced, spaced_lost) = edit_all(sim, &http, &received_url, measured, "Spaced", spacing).await;
    let end_to_end_seconds = phases.elapsed().as_secs_f64();

    // In-process: the receiver's router called on this task, one request after the other.
    let router = webhook_receiver::router(deps.clone());
    let webhook_url = deps.settings.webhook_url.clone().expect("the local runner sets the webhook URL");
    let mut next_event = 0u64;
    let mut rows = Vec::new();
    for batch in [1usize, 100] {
        for _ in 0..warm_up {
            call(&router, &webhook_url, batch, &mut next_event).await;
        }
        let cpu_before = process_cpu_seconds();
        let wall = Instant::now();
        let mut latencies = Vec::with_capacity(requests);
        for _ in 0..requests {
            latencies.push(call(&router, &webhook_url, batch, &mut next_event).await);
        }
        let (wall, cpu) = (wall.elapsed().as_secs_f64(), process_cpu_seconds() - cpu_before);
        let handler_seconds: f64 = latencies.iter().map(Duration::as_secs_f64).sum();
        let events = requests * batch;
        let p99 = percentile(&latencies, 0.99);
        rows.push(Row {
            path: "receiver, in-process",
            batch: format!("{batch} event{}", if batch == 1 { "" } else { "s" }),
            requests,
            events,
            per_core: Some((events as f64 / handler_seconds, events as f64 / cpu)),
            goal: if batch == 100 { goal("p99", p99, P99_GOAL_100_EVENTS) } else { "—".into() },
            note: format!("process CPU {cpu:.2} s in {wall:.2} s"),
            latencies,
        });
    }
    for (batch, latencies, lost) in [
        ("1 change, back to back".to_string(), back_to_back, back_to_back_lost),
        (format!("1 change, {} ms apart", spacing.as_millis()), spaced, spaced_lost),
    ] {
        rows.push(Row {
            path: "HubSpot edit → platform",
            batch,
            requests: latencies.len(),
            events: latencies.len(),
            goal: goal("p50", percentile(&latencies, 0.50), P50_GOAL_END_TO_END),
            latencies,
            per_core: None,
            note: if lost == 0 { "none lost".into() } else { format!("{lost} not delivered within 10 s") },
        });
    }
    let in_process_seconds = phases.elapsed().as_secs_f64() - end_to_end_seconds;
    let peak = peak_memory_mib();

    println!();
    println!(
        "| path | batch | requests | events | p50 | p90 | p99 | max | events/s per core | events per process CPU-second | goal | notes |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for row in &rows {
        let (per_core, per_cpu_second) = match row.per_core {
            Some((handler, cpu)) => (format!("{handler:.0}"), format!("{cpu:.0}")),
            None => ("—".to_string(), "—".to_string()),
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.path,
            row.batch,
            row.requests,
            row.events,
            millis(percentile(&row.latencies, 0.50)),
            millis(percentile(&row.latencies, 0.90)),
            millis(percentile(&row.latencies, 0.99)),
            millis(row.latencies.iter().max().copied().unwrap_or_default()),
            per_core,
            per_cpu_second,
            row.goal,
            row.note
        );
    }
    println!();
    println!(
        "peak memory: {peak:.0} MiB (the whole process: the simulator's records, the de-duplication keys, the queued messages)"
    );
    println!(
        "notes: events/s per core = events / the sum of handler times, measured one call after another on one task \
         (one core at a time, but the de-duplication claims are spawned tasks, free to run on the other \
         worker thread). Events per process CPU-second divide by the whole process's CPU time over the same \
         calls (10 ms ticks), which also counts the local runner's inbound worker, which drains the inbound queue in the \
         background (reading the unknown records from the simulator, paced to the portal's rate limit, and \
         delivering tombstones to the platform stand-in). End to end includes the simulator's \
         {SIM_FLUSH_DELAY_MS} ms webhook flush delay (SimConfig::webhook_flush_delay), the inbound worker's \
         batch read and the delivery; arrival is seen by polling every {} ms. Back to back, each edit's \
         read waits for the portal's next pacer slot ({:.1} ms apart at 110 requests per 10 s); {} ms \
         apart, none waits. End to end took {end_to_end_seconds:.0} s, in-process {in_process_seconds:.0} s.",
        POLL.as_millis(),
        pacer_gap.as_secs_f64() * 1000.0,
        spacing.as_millis()
    );
    local.shutdown().await;
}

/// One signed request of `batch` new events through the receiver's router; returns how long
/// the router took to answer. The body and signature are made before the clock starts, as
/// HubSpot makes them.
async fn call(router: &Router, url: &str, batch: usize, next_event: &mut u64) -> Duration {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let events: Vec<Value> = (0..batch)
        .map(|_| {
            *next_event += 1;
            event(*next_event, now_ms)
        })
        .collect();
    let body = serde_json::to_string(&events).unwrap();
    let timestamp = now_ms.to_string();
    let signature = v3_signature("POST", url, body.as_bytes(), &timestamp, &Secret::new(CLIENT_SECRET));
    let host = url.trim_start_matches("http://").split('/').next().unwrap_or_default().to_string();
    let request = Request::post("/webhooks/hubspot")
        .header("host", host)
        .header("content-type", "application/json")
        .header("x-hubspot-signature-v3", signature)
        .header("x-hubspot-request-timestamp", timestamp)
        .body(Body::from(body))
        .unwrap();

    let started = Instant::now();
    let response = router.clone().oneshot(request).await.unwrap();
    let elapsed = started.elapsed();

    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let receipt: Value = serde_json::from_slice(&body).unwrap_or_default();
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(receipt["enqueued"], batch, "every event is new and routed: {receipt}");
    elapsed
}

/// Edits each contact's first name as a user, one after the other, and waits for each to reach
/// the platform; `gap` is waited between an arrival and the next edit. Returns the latencies,
/// and how many did not arrive.
async fn edit_all(
    sim: &Simulator,
    http: &reqwest::Client,
    received_url: &str,
    contacts: &[String],
    prefix: &str,
    gap: Duration,
) -> (Vec<Duration>, usize) {
    let (mut latencies, mut lost) = (Vec::with_capacity(contacts.len()), 0);
    for (i, id) in contacts.iter().enumerate() {
        tokio::time::sleep(gap).await;
        let name = format!("{prefix} {i}");
        let started = Instant::now();
        sim.edit_as_user(PORTAL, "contacts", id, json!({ "firstname": name }));
        match arrival(http, received_url, id, &name, started + Duration::from_secs(10)).await {
            Some(()) => latencies.push(started.elapsed()),
            None => lost += 1,
        }
    }
    (latencies, lost)
}

/// A first name changed in HubSpot's UI; `n` makes its event id, object id and time its own.
fn event(n: u64, now_ms: i64) -> Value {
    json!({
        "eventId": n, "subscriptionId": 7, "portalId": PORTAL, "appId": APP_ID,
        "occurredAt": now_ms - 10_000_000 + n as i64,
        "subscriptionType": "contact.propertyChange", "attemptNumber": 0, "objectId": FIRST_OBJECT_ID + n,
        "propertyName": "firstname", "propertyValue": format!("Name {n}"), "changeSource": "CRM_UI", "sourceId": "userId:7"
    })
}

/// Polls the platform stand-in until it has received `hubspot_id` with `first_name`; `None`
/// after `deadline`.
async fn arrival(
    http: &reqwest::Client,
    url: &str,
    hubspot_id: &str,
    first_name: &str,
    deadline: Instant,
) -> Option<()> {
    loop {
        let received: Value = http.get(url).send().await.ok()?.json().await.ok()?;
        let arrived = received["records"].as_array().is_some_and(|records| {
            records.iter().any(|r| r["hubspot_id"] == hubspot_id && r["fields"]["first_name"] == first_name)
        });
        if arrived {
            return Some(());
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The nearest-rank percentile (`p` in 0..=1).
fn percentile(latencies: &[Duration], p: f64) -> Duration {
    if latencies.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = latencies.to_vec();
    sorted.sort();
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn millis(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 { format!("{ms:.2} ms") } else { format!("{ms:.0} ms") }
}

/// "p99 < 5 ms: met", or "missed".
fn goal(name: &str, measured: Duration, goal: Duration) -> String {
    let verdict = if measured < goal { "met" } else { "missed" };
    let goal = if goal < Duration::from_secs(1) {
        format!("{} ms", goal.as_millis())
    } else {
        format!("{} s", goal.as_secs_f64())
    };
    format!("{name} < {goal}: {verdict}")
}
