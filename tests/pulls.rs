//! Scheduled pulls through the bulk worker's Lambda handler (SQS event JSON from moto's queue),
//! walking the simulator's search and delivering to a platform endpoint.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::http::StatusCode;
use hubspot_sim::{Fault, FaultKind};
use hubsync::domain::{ObjectType, RunStatus, SyncFlow, SyncRun};
use hubsync::inbound::{StartError, plan_pulls, pull_worker, start_pull};
use hubsync::ports::Clock;
use hubsync_tests::Function;
use hubsync_tests::lambda::{Event, invoke};
use hubsync_tests::platform::Platform;
use hubsync_tests::push::{PORTAL, PushSetup, sqs_event, take_all};
use serde_json::{Value, json};

fn config(ingest_url: &str) -> Value {
    json!({
        "objects": { "contacts": {
            "match_key": { "kind": "email" }, "write_mode": "upsert",
            "fields": [ { "platform_field": "first_name", "hubspot_property": "firstname", "direction": "in", "platform_type": "string" } ] } },
        "options": { "webhooks_enabled": true, "data_in_enabled": true, "ingest_url": ingest_url }
    })
}

/// Starts a pull as its planner does: signed as the catch-up or the enrichment function.
async fn pull(
    setup: &PushSetup,
    object: ObjectType,
    flow: SyncFlow,
    since: Option<time::OffsetDateTime>,
) -> Result<SyncRun, StartError> {
    let planner = if flow == SyncFlow::CatchUp { Function::CatchUp } else { Function::Enrichment };
    start_pull(&setup.world.function(planner).await, &setup.connection, object, flow, since).await
}

#[tokio::test]
async fn an_enrichment_pull_delivers_every_change_even_when_a_thousand_share_one_instant() {
    let (platform, ingest) = Platform::start("delivery-secret").await;
    let setup = PushSetup::new(config(&ingest)).await;
    let sim = &setup.world.sim;
    // An import: 1,000 contacts with one last-modified time, then 300 ordinary changes.
    let imported = 1_700_000_000_000_i64;
    for i in 0..1_000 {
        sim.seed(PORTAL, "contacts", json!({ "email": format!("import{i}@example.com"), "firstname": format!("I{i}"), "lastmodifieddate": imported.to_string() }));
    }
    for i in 0..300 {
        let at = imported + 1_000 + i64::from(i) * 7;
        sim.seed(PORTAL, "contacts", json!({ "email": format!("user{i}@example.com"), "firstname": format!("U{i}"), "lastmodifieddate": at.to_string() }));
    }
    let worker = pull_worker(setup.world.function(Function::BulkWorker).await);
    let run = pull(&setup, ObjectType::Contacts, SyncFlow::Enrichment, None).await.unwrap();
    assert!(setup.drain_bulk(&worker).await >= 1);

    let keys: BTreeSet<String> =
        platform.records().iter().map(|r| r["record_key"].as_str().unwrap().to_string()).collect();
    assert_eq!(keys.len(), 1_300, "every contact is delivered");
    let run = setup.world.deps.store.get_run(&setup.connection.id, &run.run_id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert!(run.progress.as_ref().unwrap().pages >= 7, "{:?}", run.progress);
    let cursor = setup
        .world
        .deps
        .store
        .get_cursor(&setup.connection.id, ObjectType::Contacts, SyncFlow::Enrichment)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cursor.position.modified_at_ms, imported + 1_000 + 299 * 7, "the cursor ends at the newest change");

    // The next enrichment finds nothing new: nothing is delivered again.
    let before = platform.records().len();
    pull(&setup, ObjectType::Contacts, SyncFlow::Enrichment, None).await.unwrap();
    setup.drain_bulk(&worker).await;
    assert_eq!(platform.records().len(), before, "versions the platform has are skipped");
}

#[tokio::test]
async fn a_catch_up_delivers_only_what_webhooks_missed() {
    let (platform, ingest) = Platform::start("delivery-secret").await;
    let setup = PushSetup::new(config(&ingest)).await;
    let sim = &setup.world.sim;
    for i in 0..20 {
        sim.seed(PORTAL, "contacts", json!({ "email": format!("user{i}@example.com"), "firstname": format!("U{i}") }));
    }
    let worker = pull_worker(setup.world.function(Function::BulkWorker).await);
    // The run starts after those changes (the tests' clock stands still unless moved).
    setup.world.clock.advance(time::Duration::seconds(5));
    let since = setup.world.deps.clock.now() - time::Duration::hours(25);
    pull(&setup, ObjectType::Contacts, SyncFlow::CatchUp, Some(since)).await.unwrap();
    setup.drain_bulk(&worker).await;
    assert_eq!(platform.records().len(), 20);

    // One contact changes and its webhook is lost: the next catch-up brings exactly that one.
    let ada = sim.records(PORTAL, "contacts")[3]["id"].as_str().unwrap().to_string();
    sim.edit_as_user(PORTAL, "contacts", &ada, json!({ "firstname": "Augusta" }));
    setup.world.clock.advance(time::Duration::seconds(5));
    pull(&setup, ObjectType::Contacts, SyncFlow::CatchUp, Some(since)).await.unwrap();
    setup.drain_bulk(&worker).await;
    let records = platform.records();
    assert_eq!(records.len(), 21, "{:?}", &records[20..]);
    assert_eq!(records[20]["fields"]["first_name"], "Augusta");
}

#[tokio::test]
async fn the_schedules_start_one_pull_per_connection_and_object_and_never_two_at_once() {
    let (platform, ingest) = Platform::start("delivery-secret").await;
    let setup = PushSetup::new(config(&ingest)).await;
    setup.world.sim.seed(PORTAL, "contacts", json!({ "email": "ada@example.com", "firstname": "Ada" }));
    setup.world.clock.advance(time::Duration::seconds(5));

    let report = plan_pulls(&setup.world.function(Function::CatchUp).await, SyncFlow::CatchUp).await.unwrap();
    assert_eq!((report.started, report.still_running), (1, 0));
    let again = plan_pulls(&setup.world.function(Function::CatchUp).await, SyncFlow::CatchUp).await.unwrap();
    assert_eq!((again.started, again.still_running), (0, 1), "the first run is still going");

    setup.drain_bulk(&pull_worker(setup.world.function(Function::BulkWorker).await)).await;
    assert_eq!(platform.records().len(), 1);
    let after = plan_pulls(&setup.world.function(Function::CatchUp).await, SyncFlow::CatchUp).await.unwrap();
    assert_eq!(after.started, 1, "once it finished, the next one starts");
}

#[tokio::test]
async fn a_full_sync_sends_everything_again_and_a_new_inbound_field_is_backfilled() {
    let (platform, ingest) = Platform::start("delivery-secret").await;
    let setup = PushSetup::new(config(&ingest)).await;
    for i in 0..250 {
        setup.world.sim.seed(
            PORTAL,
            "contacts",
            json!({ "email": format!("user{i}@example.com"), "firstname": format!("U{i}"), "jobtitle": "Engineer" }),
        );
    }
    let worker = pull_worker(setup.world.function(Function::BulkWorker).await);
    // The first config's inbound fields are new too: saving it filled them in for everyone.
    setup.drain_bulk(&worker).await;
    assert_eq!(platform.records().len(), 250);

    let console = console_api::router(setup.world.function(Function::ConsoleApi).await);
    let path = format!("/connections/{}/full-sync", setup.connection.id);
    let reply = hubsync_tests::lambda::invoke(
        &console,
        hubsync_tests::lambda::Event::new("POST", &path).bearer(setup.key.expose()),
    )
    .await;
    assert_eq!(reply.status, axum::http::StatusCode::ACCEPTED, "{}", reply.body);
    setup.drain_bulk(&worker).await;
    assert_eq!(platform.records().len(), 500, "three list pages, every contact again");

    // The customer maps a new inbound field: it is filled in for every contact on its own.
    let mut next = config(&ingest);
    next["objects"]["contacts"]["fields"].as_array_mut().unwrap().push(json!(
        { "platform_field": "title", "hubspot_property": "jobtitle", "direction": "in", "platform_type": "string" }
    ));
    let update = serde_json::from_value(json!({ "version": 1, "config": next })).unwrap();
    hubsync::console::configs::save(&setup.world.function(Function::ConsoleApi).await, &setup.connection, &update)
        .await
        .unwrap();
    setup.drain_bulk(&worker).await;
    let backfilled: Vec<Value> = platform.records()[500..].to_vec();
    assert_eq!(backfilled.len(), 250);
    assert!(backfilled.iter().all(|r| r["fields"] == json!({ "title": "Engineer" })), "{:?}", backfilled[0]);
}

/// Seeds `n` contacts an hour in the past, with distinct last-modified times.
fn seed_contacts(setup: &PushSetup, n: usize) {
    let start = (setup.world.deps.clock.now() - time::Duration::hours(1)).unix_timestamp() * 1000;
    for i in 0..n {
        let at = (start + i as i64).to_string();
        setup.world.sim.seed(
            PORTAL,
            "contacts",
            json!({ "email": format!("user{i}@example.com"), "firstname": format!("U{i}"), "lastmodifieddate": at }),
        );
    }
}

#[tokio::test]
async fn a_redelivered_job_after_a_crash_delivers_nothing_twice() {
    let (platform, ingest) = Platform::start("delivery-secret").await;
    let setup = PushSetup::new(config(&ingest)).await;
    let worker = pull_worker(setup.world.function(Function::BulkWorker).await);
    setup.drain_bulk(&worker).await; // the first save's (empty) backfill
    seed_contacts(&setup, 150);
    pull(&setup, ObjectType::Contacts, SyncFlow::Enrichment, None).await.unwrap();

    // The worker delivers, then dies before the queue hears of it: the job comes back.
    let queue = &setup.world.deps.bulk.work;
    let batch = queue.receive(10, Duration::from_millis(300)).await.unwrap();
    bulk_worker::handle(&worker, queue.as_ref(), sqs_event(&batch), setup.world.deadline()).await;
    assert_eq!(platform.records().len(), 150);
    queue.change_visibility(&batch[0].receipt_handle, Duration::ZERO).await.unwrap();
    setup.drain_bulk(&worker).await;
    assert_eq!(platform.records().len(), 150, "the replayed page's records were already delivered");
}

#[tokio::test]
async fn an_access_token_expiring_mid_run_is_renewed_and_the_run_completes() {
    let (platform, ingest) = Platform::start("delivery-secret").await;
    let setup = PushSetup::new(config(&ingest)).await;
    let worker = pull_worker(setup.world.function(Function::BulkWorker).await);
    setup.drain_bulk(&worker).await;
    seed_contacts(&setup, 450);
    let run = pull(&setup, ObjectType::Contacts, SyncFlow::Enrichment, None).await.unwrap();
    let token = setup.world.deps.tokens.access_token(&setup.connection.id).await.unwrap();
    setup.world.sim.expire_access_token(token.expose());
    setup.drain_bulk(&worker).await;
    assert_eq!(platform.records().len(), 450);
    let run = setup.world.deps.store.get_run(&setup.connection.id, &run.run_id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
}

#[tokio::test]
async fn a_connection_disabled_mid_run_stops_its_pull_with_the_reason() {
    let (platform, ingest) = Platform::start("delivery-secret").await;
    let setup = PushSetup::new(config(&ingest)).await;
    let worker = pull_worker(setup.world.function(Function::BulkWorker).await);
    setup.drain_bulk(&worker).await;
    seed_contacts(&setup, 50);
    let run = pull(&setup, ObjectType::Contacts, SyncFlow::Enrichment, None).await.unwrap();
    let mut connection = setup.connection.clone();
    connection.status = hubsync::domain::ConnectionStatus::Disabled;
    setup.world.deps.store.put_connection(&connection).await.unwrap();
    setup.drain_bulk(&worker).await;
    assert!(platform.records().is_empty());
    let run = setup.world.deps.store.get_run(&setup.connection.id, &run.run_id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.counts.skipped.get("connection is disabled"), Some(&1), "{:?}", run.counts);
}

#[tokio::test]
async fn a_pull_past_the_ten_thousand_result_wall_misses_nothing() {
    let (platform, ingest) = Platform::start("delivery-secret").await;
    // A platform that updates existing users only, and has none of these: every record is
    // delivered and answered `not_found`, so hubsync keeps no state for them (the walk is what
    // this test is about; 21,500 saved states would take minutes on the local AWS emulator).
    *platform.status.lock().unwrap() = "not_found";
    let setup = PushSetup::new(config(&ingest)).await;
    let worker = pull_worker(setup.world.function(Function::BulkWorker).await);
    setup.drain_bulk(&worker).await;
    // 20,000 contacts imported at one instant, then 1,500 changes four to a millisecond: a
    // search of the import alone would hit HubSpot's 10,000-result wall.
    let imported = 1_700_000_000_000_i64;
    let records = (0..21_500).map(|i: i64| {
        let at = if i < 20_000 { imported } else { imported + 1 + (i - 20_000) / 4 };
        json!({ "email": format!("c{i}@example.com"), "firstname": format!("C{i}"), "lastmodifieddate": at.to_string() })
    });
    setup.world.sim.seed_many(PORTAL, "contacts", records);
    pull(&setup, ObjectType::Contacts, SyncFlow::Enrichment, None).await.unwrap();
    setup.drain_bulk(&worker).await;
    let keys: BTreeSet<String> =
        platform.records().iter().map(|r| r["record_key"].as_str().unwrap().to_string()).collect();
    assert_eq!(keys.len(), 21_500);
    assert_eq!(platform.records().len(), 21_500, "and none twice");
}

#[tokio::test]
async fn a_change_search_has_not_indexed_yet_is_delivered_by_the_next_run() {
    let (platform, ingest) = Platform::start("delivery-secret").await;
    let setup = PushSetup::new(config(&ingest)).await;
    let worker = pull_worker(setup.world.function(Function::BulkWorker).await);
    setup.drain_bulk(&worker).await;
    seed_contacts(&setup, 30);
    let start = || pull(&setup, ObjectType::Contacts, SyncFlow::Enrichment, None);
    start().await.unwrap();
    setup.drain_bulk(&worker).await;
    assert_eq!(platform.records().len(), 30);

    // Search's index lags: a change made just before the run is not found by it.
    setup.world.sim.set_search_index_delay(Duration::from_millis(1_500));
    let ada = setup.world.sim.records(PORTAL, "contacts")[7]["id"].as_str().unwrap().to_string();
    setup.world.sim.edit_as_user(PORTAL, "contacts", &ada, json!({ "firstname": "Augusta" }));
    setup.world.clock.advance(time::Duration::seconds(5));
    start().await.unwrap();
    setup.drain_bulk(&worker).await;
    assert_eq!(platform.records().len(), 30, "not indexed yet: nothing new");

    tokio::time::sleep(Duration::from_millis(1_600)).await;
    setup.world.clock.advance(time::Duration::seconds(5));
    start().await.unwrap();
    setup.drain_bulk(&worker).await;
    let records = platform.records();
    assert_eq!(records.len(), 31);
    assert_eq!(records[30]["fields"]["first_name"], "Augusta");
}

#[tokio::test]
async fn records_changed_during_a_run_are_left_to_the_next_one_and_nothing_is_skipped() {
    let (platform, ingest) = Platform::start("delivery-secret").await;
    let setup = PushSetup::new(config(&ingest)).await;
    let worker = pull_worker(setup.world.function(Function::BulkWorker).await);
    setup.drain_bulk(&worker).await;
    seed_contacts(&setup, 600);
    let start = || pull(&setup, ObjectType::Contacts, SyncFlow::Enrichment, None);
    start().await.unwrap();

    // While the run goes, a person edits contacts it has not reached yet: they move past the
    // run's start. Offsets would now skip records; the cursor-based walk does not.
    let contacts = setup.world.sim.records(PORTAL, "contacts");
    for contact in &contacts[400..410] {
        setup.world.sim.edit_as_user(
            PORTAL,
            "contacts",
            contact["id"].as_str().unwrap(),
            json!({ "firstname": "Edited" }),
        );
    }
    setup.drain_bulk(&worker).await;
    let first: BTreeSet<String> =
        platform.records().iter().map(|r| r["record_key"].as_str().unwrap().to_string()).collect();
    assert_eq!(first.len(), 590, "the ten edited ones belong to the next run");

    setup.world.clock.advance(time::Duration::seconds(5));
    start().await.unwrap();
    setup.drain_bulk(&worker).await;
    let all: BTreeSet<String> =
        platform.records().iter().map(|r| r["record_key"].as_str().unwrap().to_string()).collect();
    assert_eq!(all.len(), 600);
    assert_eq!(platform.records().iter().filter(|r| r["fields"]["first_name"] == "Edited").count(), 10);
}

#[tokio::test]
async fn a_search_refused_for_the_secondly_limit_is_tried_again_within_the_job() {
    let (platform, ingest) = Platform::start("delivery-secret").await;
    let setup = PushSetup::new(config(&ingest)).await;
    let worker = pull_worker(setup.world.function(Function::BulkWorker).await);
    setup.drain_bulk(&worker).await;
    seed_contacts(&setup, 30);
    // A request that reaches HubSpot a little early: one 429, as search's per-second limit answers.
    setup.world.sim.inject_fault(Fault {
        kind: FaultKind::TooManyRequests,
        rate: 1.0,
        path_prefix: Some("/crm/objects/2026-09/contacts/search".into()),
        remaining: Some(1),
    });
    pull(&setup, ObjectType::Contacts, SyncFlow::Enrichment, None).await.unwrap();
    setup.drain_bulk(&worker).await; // fails if the job had to be retried
    assert_eq!(platform.records().len(), 30);
}

#[tokio::test]
async fn two_companies_sharing_a_domain_in_one_page_are_delivered_and_the_pull_goes_on() {
    let (platform, ingest) = Platform::start("delivery-secret").await;
    let companies = json!({
        "objects": { "companies": {
            "match_key": { "kind": "company_domain" }, "write_mode": "upsert",
            "fields": [ { "platform_field": "name", "hubspot_property": "name", "direction": "in", "platform_type": "string" } ] } },
        "options": { "webhooks_enabled": true, "data_in_enabled": true, "ingest_url": ingest }
    });
    let setup = PushSetup::new(companies).await;
    let worker = pull_worker(setup.world.function(Function::BulkWorker).await);
    setup.drain_bulk(&worker).await;
    // HubSpot does not keep domains unique: two companies, one key for hubsync.
    for name in ["Acme Ltd", "Acme Inc"] {
        setup.world.sim.seed(PORTAL, "companies", json!({ "name": name, "domain": "acme.com" }));
    }
    setup.world.clock.advance(time::Duration::seconds(5));
    let run = pull(&setup, ObjectType::Companies, SyncFlow::Enrichment, None).await.unwrap();
    setup.drain_bulk(&worker).await;
    let run = setup.world.deps.store.get_run(&setup.connection.id, &run.run_id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.counts);
    let names: BTreeSet<String> = platform
        .records()
        .iter()
        .filter(|r| r["record_key"] == "acme.com")
        .map(|r| r["fields"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 2, "both companies are delivered");
    let cursor = setup
        .world
        .deps
        .store
        .get_cursor(&setup.connection.id, ObjectType::Companies, SyncFlow::Enrichment)
        .await
        .unwrap();
    assert!(cursor.is_some(), "the cursor moved past the page");
}

#[tokio::test]
async fn a_record_the_platform_refuses_is_parked_alone_and_redriven_while_the_pull_moves_on() {
    let (platform, ingest) = Platform::start("delivery-secret").await;
    let setup = PushSetup::new(config(&ingest)).await;
    let worker = pull_worker(setup.world.function(Function::BulkWorker).await);
    setup.drain_bulk(&worker).await;
    seed_contacts(&setup, 30);
    platform.refused.lock().unwrap().insert("user7@example.com".into());
    let run = pull(&setup, ObjectType::Contacts, SyncFlow::Enrichment, None).await.unwrap();
    setup.drain_bulk(&worker).await;
    let run = setup.world.deps.store.get_run(&setup.connection.id, &run.run_id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "one refused record does not stop the pull: {:?}", run.counts);
    let parked = take_all(setup.world.deps.inbound.parked.as_ref()).await;
    assert_eq!(parked.len(), 1, "the refused record is parked on its own");
    let note = hubsync::work::ParkedMessage::read(&parked[0]);
    assert!(note.parked.reason.contains("the platform reported an error"), "{}", note.parked.reason);
    hubsync::work::park(&*setup.world.deps.inbound.parked, &note.body, note.parked.clone()).await.unwrap();

    // Fixed on the platform's side, the console sends it back and it is delivered.
    platform.refused.lock().unwrap().clear();
    let console = console_api::router(setup.world.function(Function::ConsoleApi).await);
    let path = format!("/connections/{}/redrive?queue=inbound", setup.connection.id);
    let reply = invoke(&console, Event::new("POST", &path).bearer(setup.key.expose())).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.json()["queues"]["inbound"]["replayed"], 1, "{}", reply.body);
    let inbound_deps = setup.world.function(Function::InboundWorker).await;
    let inbound = hubsync::inbound::inbound_worker(inbound_deps.clone());
    let batch = setup.world.deps.inbound.work.receive(10, Duration::from_millis(300)).await.unwrap();
    let queue = inbound_deps.inbound.work.as_ref();
    let response = inbound_worker::handle(&inbound, queue, sqs_event(&batch), setup.world.deadline()).await;
    assert!(response.batch_item_failures.is_empty());
    let user7: Vec<Value> = platform.records().into_iter().filter(|r| r["record_key"] == "user7@example.com").collect();
    assert_eq!(user7.last().unwrap()["fields"]["first_name"], "U7");
}

#[tokio::test]
async fn planning_goes_on_past_a_broken_config_and_a_running_pull_is_known_whatever_ran_since() {
    let (_platform, ingest) = Platform::start("delivery-secret").await;
    let setup = PushSetup::new(config(&ingest)).await;
    let world = &setup.world;
    setup.drain_bulk(&pull_worker(world.function(Function::BulkWorker).await)).await;
    // Another tenant's connection, whose config does not read.
    world.sim.add_portal(2000, hubspot_sim::ALL_SCOPES);
    let other = world.tenant("other").await;
    let broken = hubsync::domain::ConnectionId::new(&hubsync_tests::oauth::install(world, other.expose()).await);
    let stored = world.deps.store.get_connection(&broken).await.unwrap().unwrap();
    let update = serde_json::from_value(json!({ "version": 0, "config": config(&ingest) })).unwrap();
    hubsync::console::configs::save(&world.function(Function::ConsoleApi).await, &stored, &update).await.unwrap();
    world.break_config(&broken).await;

    let report = plan_pulls(&world.function(Function::Enrichment).await, SyncFlow::Enrichment).await.unwrap();
    assert_eq!(report.started, 1, "the healthy connection is planned: {report:?}");
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(report.failed[0].starts_with(broken.as_str()), "{report:?}");

    // A busy connection records many runs while its pull goes on: the pull is still known.
    for i in 0..60 {
        let run = hubsync::domain::SyncRun::start(
            setup.connection.id.clone(),
            hubsync::domain::RunKind::Push,
            world.clock.now(),
            &format!("{i:08}"),
        );
        world.deps.store.put_run(&run).await.unwrap();
    }
    let again = plan_pulls(&world.function(Function::Enrichment).await, SyncFlow::Enrichment).await.unwrap();
    assert_eq!((again.started, again.still_running), (0, 1), "{again:?}");
}
