//! Push benchmark: contact changes through the push worker into the HubSpot simulator, with
//! HubSpot's rate limit on (110 requests per rolling 10 s), on the embedded stack.
//!
//! ```sh
//! cargo bench -p hubsync-tests --bench push      # HUBSYNC_BENCH_RECORDS=100000 HUBSYNC_BENCH_WORKERS=4
//! ```
//!
//! Prints, for a first push and for a re-push of the same unchanged records: records per second
//! against the ceiling (limit × 100 records per call), HubSpot calls per 1,000 records, 429s,
//! and the process's peak memory (which includes the simulator's stored records).

use hubsync_tests::bench::{env, peak_memory_mib};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hubsync::console::configs;
use hubsync::deps::Deps;
use hubsync::domain::{ConnectionId, VersionedConfig};
use hubsync::outbound::push_worker;
use hubsync::ports::ReceivedMessage;
use hubsync::work::{Deadline, Disposition};
use hubsync_tests::local::{install_demo_portal, start_uncaptured};
use serde_json::json;

const BATCH: usize = 100;
const LIMIT_PER_10S: f64 = 110.0;

struct Phase {
    name: &'static str,
    records: usize,
    seconds: f64,
    write_calls: u64,
    retried: usize,
    rate_limited: u64,
    failed: u64,
    peak_memory_mib: f64,
}

#[tokio::main]
async fn main() {
    let records: usize = env("HUBSYNC_BENCH_RECORDS", 100_000);
    let workers: usize = env("HUBSYNC_BENCH_WORKERS", 4);
    let local = start_uncaptured().await;
    let outcome = install_demo_portal(&local.base_url).await;
    let connection_id = ConnectionId::new(outcome["connection_id"].as_str().expect("connected"));
    let deps = local.deps.clone();
    let connection = deps.store.get_connection(&connection_id).await.unwrap().unwrap();
    let config: VersionedConfig = serde_json::from_value(json!({ "version": 0, "config": { "objects": { "contacts": {
        "match_key": { "kind": "email" }, "write_mode": "upsert",
        "fields": [
            { "platform_field": "first_name", "hubspot_property": "firstname", "direction": "out", "platform_type": "string" },
            { "platform_field": "seats", "hubspot_property": "num_employees", "direction": "out", "platform_type": "number" }
        ] } } } }))
    .unwrap();
    configs::save(&deps, &connection, &config).await.expect("config saved");
    let sim = local.simulator.as_ref().expect("the simulator runs");
    let upserts = || sim.request_count("POST", "/crm/objects/2026-09/contacts/batch/upsert");

    println!(
        "push benchmark: {records} contacts, {workers} concurrent workers, batches of {BATCH}, limit {LIMIT_PER_10S} per 10 s"
    );
    let mut phases = Vec::new();
    for (name, changed_at) in [("first push", "2026-01-01T00:00:00Z"), ("unchanged re-push", "2026-01-02T00:00:00Z")] {
        let calls_before = upserts();
        let started = Instant::now();
        let retried = push_all(&deps, &connection_id, records, workers, changed_at).await;
        let seconds = started.elapsed().as_secs_f64();
        let (rate_limited, failed) = failures(&deps, &connection_id).await;
        phases.push(Phase {
            name,
            records,
            seconds,
            write_calls: upserts() - calls_before,
            retried,
            rate_limited,
            failed,
            peak_memory_mib: peak_memory_mib(),
        });
    }
    let ceiling = LIMIT_PER_10S / 10.0 * BATCH as f64;
    println!();
    println!(
        "| phase | records | seconds | records/s | of ceiling ({ceiling:.0}/s) | write calls | calls per 1,000 | retried | 429s | failed | peak memory |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for p in &phases {
        let rate = p.records as f64 / p.seconds;
        println!(
            "| {} | {} | {:.1} | {:.0} | {:.1}% | {} | {:.2} | {} | {} | {} | {:.0} MiB |",
            p.name,
            p.records,
            p.seconds,
            rate,
            100.0 * rate / ceiling,
            p.write_calls,
            1000.0 * p.write_calls as f64 / p.records as f64,
            p.retried,
            p.rate_limited,
            p.failed,
            p.peak_memory_mib
        );
    }
    local.shutdown().await;
}

/// Feeds `records` changes, as Lambda would in batches of 100, to concurrent workers; returns
/// how many messages were left for a retry. Bodies are made per batch, as they would arrive.
async fn push_all(deps: &Deps, connection: &ConnectionId, records: usize, workers: usize, changed_at: &str) -> usize {
    let batches: Arc<Mutex<VecDeque<usize>>> = Arc::new(Mutex::new((0..records).step_by(BATCH).collect()));
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (batches, worker, deps) = (batches.clone(), push_worker(deps.clone()), deps.clone());
        let (connection, changed_at) = (connection.clone(), changed_at.to_string());
        tasks.push(tokio::spawn(async move {
            let mut retried = 0;
            loop {
                let Some(start) = batches.lock().unwrap().pop_front() else { return retried };
                let batch: Vec<ReceivedMessage> =
                    (start..(start + BATCH).min(records)).map(|i| message(&connection, i, &changed_at)).collect();
                let deadline = Deadline::after(deps.clock.now(), Duration::from_secs(60));
                let dispositions = worker.process_batch(&batch, deadline).await;
                retried += dispositions.iter().filter(|d| !matches!(d, Disposition::Done)).count();
            }
        }));
    }
    let mut retried = 0;
    for task in tasks {
        retried += task.await.unwrap();
    }
    retried
}

fn message(connection: &ConnectionId, i: usize, changed_at: &str) -> ReceivedMessage {
    let body = json!({
        "version": 1, "connection_id": connection, "object": "contact",
        "record_key": format!("user{i}@example.com"),
        "fields": { "first_name": format!("User {i}"), "seats": i % 500 },
        "changed_at": changed_at,
    });
    ReceivedMessage {
        message_id: i.to_string(),
        receipt_handle: i.to_string(),
        body: body.to_string(),
        receive_count: 1,
    }
}

/// Messages retried because of a 429, and messages parked, over every run so far.
async fn failures(deps: &Deps, connection: &ConnectionId) -> (u64, u64) {
    let runs = deps.store.list_runs(connection, usize::MAX).await.unwrap();
    let rate_limited = runs
        .iter()
        .flat_map(|r| r.counts.retried.iter())
        .filter(|(reason, _)| reason.contains("429"))
        .map(|(_, n)| n)
        .sum();
    let failed = runs.iter().flat_map(|r| r.counts.failed.values()).sum();
    (rate_limited, failed)
}
