//! Pull benchmark: an enrichment pull (search from a cursor, 200 a page, paced to search's 5
//! requests per second) and a full sync (the list endpoint, 100 a page, paced to the portal's
//! 110 requests per 10 s) of every contact in the HubSpot simulator, delivered to the local
//! runner's stand-in platform, on the embedded stack (memory store, in-process bulk queue).
//!
//! ```sh
//! cargo bench -p hubsync-tests --bench pulls     # HUBSYNC_BENCH_RECORDS=100000
//! ```
//!
//! Prints, per pull: records per second against its ceiling (5 searches/s × 200 records, or
//! 11 list calls/s × 100 records), HubSpot calls per 1,000 records, pages, what the run counted
//! as delivered and skipped, and the process's peak memory before and after seeding and after
//! each pull (which includes the simulator's stored records).
//!
//! The contacts' last-modified times are spread over the last three hours, three to an instant,
//! and an import of 5,000 (5% of them, at most) shares one instant, which search walks by id.
//! Webhooks are off: the simulator's subscriptions are cleared before seeding, so the seeds'
//! creation events neither load the process nor reach the platform first.

use hubsync_tests::bench::{env, peak_memory_mib, process_cpu_seconds};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hubspot_sim::Simulator;
use hubsync::console::configs;
use hubsync::deps::Deps;
use hubsync::domain::{ConnectionId, ObjectType, RunStatus, SyncFlow, SyncRun, VersionedConfig};
use hubsync::inbound::{start_full_sync, start_pull};
use hubsync_tests::local::{install_demo_portal, start_uncaptured};
use serde_json::json;

const PORTAL: u64 = 1000;
/// HubSpot's search limit per portal, and its largest page.
const SEARCH_PER_SECOND: f64 = 5.0;
const SEARCH_PAGE: f64 = 200.0;
/// The portal's general budget, which the list endpoint spends, and its largest page.
const LIMIT_PER_10S: f64 = 110.0;
const LIST_PAGE: f64 = 100.0;
/// Records seeded per `seed_many` call.
const SEED_CHUNK: usize = 1_000;
/// How often the run is looked at.
const POLL: Duration = Duration::from_millis(20);
const ENRICHMENT_GOAL: f64 = 0.90;

struct Phase {
    name: &'static str,
    /// HubSpot calls the pull made: searches, or list pages.
    calls_name: &'static str,
    ceiling: f64,
    seconds: f64,
    calls: u64,
    run: SyncRun,
    cpu_seconds: f64,
    peak_memory_mib: f64,
}

#[tokio::main]
async fn main() {
    let records: usize = env("HUBSYNC_BENCH_RECORDS", 100_000);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let local = start_uncaptured().await;
    let sim = local.simulator.as_ref().expect("the simulator runs");
    let outcome = install_demo_portal(&local.base_url).await;
    let connection_id = ConnectionId::new(outcome["connection_id"].as_str().expect("connected"));
    let deps = local.deps.clone();
    let connection = deps.store.get_connection(&connection_id).await.unwrap().unwrap();
    sim.subscribe_webhooks("sim-client-id", &format!("{}/webhooks/hubspot", local.base_url), &[]);

    let config: VersionedConfig = serde_json::from_value(json!({ "version": 0, "config": {
        "objects": { "contacts": {
            "match_key": { "kind": "email" }, "write_mode": "upsert",
            "fields": [
                { "platform_field": "first_name", "hubspot_property": "firstname", "direction": "in", "platform_type": "string" }
            ] } },
        "options": { "webhooks_enabled": false, "data_in_enabled": true, "ingest_url": format!("{}/local/platform/ingest", local.base_url) }
    } }))
    .unwrap();
    configs::save(&deps, &connection, &config).await.expect("config saved");
    // The new inbound field's backfill walks the (still empty) portal on the bulk worker.
    wait_idle(&deps, &connection_id).await;
    let memory_before_seeding = peak_memory_mib();

    let existing = sim.records(PORTAL, "contacts").len();
    let seeding = Instant::now();
    seed(sim, records);
    let seed_seconds = seeding.elapsed().as_secs_f64();
    let total = existing + records;
    let memory_after_seeding = peak_memory_mib();

    println!(
        "pull benchmark: {records} contacts seeded in {seed_seconds:.1} s ({existing} there before), {cores} cores; \
         search {SEARCH_PER_SECOND}/s × {SEARCH_PAGE}, list {LIMIT_PER_10S} per 10 s × {LIST_PAGE}"
    );

    let searches = || sim.request_count("POST", "/crm/objects/2026-09/contacts/search");
    let lists = || sim.request_count("GET", "/crm/objects/2026-09/contacts");
    let mut phases = Vec::new();

    let (calls_before, cpu_before, started) = (searches(), process_cpu_seconds(), Instant::now());
    let run = start_pull(&deps, &connection, ObjectType::Contacts, SyncFlow::Enrichment, None).await.unwrap();
    let ceiling = SEARCH_PER_SECOND * SEARCH_PAGE;
    let run = wait_run(&deps, &run, total, ceiling).await;
    phases.push(Phase {
        name: "enrichment (search)",
        calls_name: "searches",
        ceiling,
        seconds: started.elapsed().as_secs_f64(),
        calls: searches() - calls_before,
        run,
        cpu_seconds: process_cpu_seconds() - cpu_before,
        peak_memory_mib: peak_memory_mib(),
    });

    let (calls_before, cpu_before, started) = (lists(), process_cpu_seconds(), Instant::now());
    let run = start_full_sync(&deps, &connection, ObjectType::Contacts, None).await.unwrap();
    let ceiling = LIMIT_PER_10S / 10.0 * LIST_PAGE;
    let run = wait_run(&deps, &run, total, ceiling).await;
    phases.push(Phase {
        name: "full sync (list)",
        calls_name: "list calls",
        ceiling,
        seconds: started.elapsed().as_secs_f64(),
        calls: lists() - calls_before,
        run,
        cpu_seconds: process_cpu_seconds() - cpu_before,
        peak_memory_mib: peak_memory_mib(),
    });

    println!();
    println!(
        "| pull | status | records | seconds | records/s | ceiling | of ceiling | calls | calls per 1,000 | pages | delivered | skipped | failed | process CPU | peak memory |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for p in &phases {
        let counts = &p.run.counts;
        let delivered = counts.created + counts.updated;
        let skipped: u64 = counts.skipped.values().sum();
        let failed: u64 = counts.failed.values().sum();
        let rate = total as f64 / p.seconds;
        println!(
            "| {} | {:?} | {} | {:.1} | {:.0} | {:.0}/s | {:.1}% | {} {} | {:.2} | {} | {} | {} | {} | {:.1} s | {:.0} MiB |",
            p.name,
            p.run.status,
            total,
            p.seconds,
            rate,
            p.ceiling,
            100.0 * rate / p.ceiling,
            p.calls,
            p.calls_name,
            1000.0 * p.calls as f64 / total as f64,
            p.run.progress.as_ref().map_or(0, |progress| progress.pages),
            delivered,
            skipped,
            failed,
            p.cpu_seconds,
            p.peak_memory_mib
        );
    }
    println!();
    let enrichment = &phases[0];
    let share = total as f64 / enrichment.seconds / enrichment.ceiling;
    println!(
        "goal: enrichment ≥ {:.0}% of search's ceiling: {:.1}%, {}",
        100.0 * ENRICHMENT_GOAL,
        100.0 * share,
        if share >= ENRICHMENT_GOAL { "met" } else { "missed" }
    );
    println!(
        "peak memory: {memory_before_seeding:.0} MiB before seeding, {memory_after_seeding:.0} MiB after seeding, \
         {:.0} MiB after the enrichment, {:.0} MiB after the full sync (goal: flat in the number of records)",
        phases[0].peak_memory_mib, phases[1].peak_memory_mib
    );
    for p in &phases {
        let extra = p.calls.saturating_sub(p.run.progress.as_ref().map_or(0, |progress| progress.pages));
        let mut notes = vec![format!("{extra} calls more than pages (pages walked again after a retry)")];
        notes.extend(p.run.counts.skipped.iter().map(|(reason, n)| format!("skipped {n}: {reason}")));
        notes.extend(p.run.counts.failed.iter().map(|(reason, n)| format!("failed {n}: {reason}")));
        notes.extend(p.run.counts.retried.iter().map(|(reason, n)| format!("retried {n}: {reason}")));
        println!("{}: {}", p.name, notes.join("; "));
    }
    local.shutdown().await;
}

/// Seeds `records` contacts modified over the last three hours, three to an instant, with an
/// import of up to 5,000 sharing one instant two hours ago.
fn seed(sim: &Simulator, records: usize) {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let first_ms = now_ms - 3 * 3_600_000;
    let last_ms = now_ms - 60_000;
    let import = (records / 20).min(5_000);
    let spread = records - import;
    let instants = spread.div_ceil(3).max(1) as i64;
    let step = ((last_ms - first_ms) / instants).max(1);
    let import_ms = now_ms - 2 * 3_600_000;
    let modified = |i: usize| if i < import { import_ms } else { first_ms + ((i - import) / 3) as i64 * step };
    let mut i = 0;
    while i < records {
        let end = (i + SEED_CHUNK).min(records);
        sim.seed_many(
            PORTAL,
            "contacts",
            (i..end).map(|i| {
                json!({
                    "email": format!("user{i}@bench.example"),
                    "firstname": format!("User {i}"),
                    "lastmodifieddate": modified(i).to_string(),
                })
            }),
        );
        i = end;
    }
}

/// Waits until none of the connection's runs is still running.
async fn wait_idle(deps: &Deps, connection: &ConnectionId) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let runs = deps.store.list_runs(connection, 10).await.unwrap();
        if runs.iter().all(|r| r.status != RunStatus::Running) || Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Polls the run until it is no longer running; gives up (and returns it as it stands) after
/// twice the time its ceiling allows, and a minute.
async fn wait_run(deps: &Deps, run: &SyncRun, records: usize, ceiling: f64) -> SyncRun {
    let deadline = Instant::now() + Duration::from_secs_f64(2.0 * records as f64 / ceiling + 60.0);
    loop {
        let current = deps.store.get_run(&run.connection_id, &run.run_id).await.unwrap().expect("the run exists");
        if current.status != RunStatus::Running || Instant::now() >= deadline {
            return current;
        }
        tokio::time::sleep(POLL).await;
    }
}
