//! The push worker through its Lambda handler, with SQS event JSON built from messages received
//! from moto's SQS, writing to the HubSpot simulator.

use std::time::Duration;

use axum::http::StatusCode;
use hubspot_sim::{Fault, FaultKind, SimConfig};
use hubsync::domain::{ConnectionStatus, ObjectType};
use hubsync::outbound::{PushWorker, push_worker};
use hubsync::work::gateway::NEEDS_REAUTH;
use hubsync::work::{ParkNote, park};
use hubsync_tests::Function;
use hubsync_tests::lambda::{Event, invoke};
use hubsync_tests::push::{PORTAL, PushSetup, contacts_config, take_all};
use hubsync_tests::world::World;
use serde_json::{Value, json};

fn users(setup: &PushSetup, n: usize, first_name: &str, changed_at: &str) -> Vec<Value> {
    (0..n)
        .map(|i| {
            setup.change(
                "contact",
                &format!("user{i}@example.com"),
                json!({ "first_name": format!("{first_name} {i}"), "seats": i }),
                changed_at,
            )
        })
        .collect()
}

#[tokio::test]
async fn upsert_mode_creates_then_updates_in_calls_of_100_and_skips_unchanged_records() {
    let setup = PushSetup::new(contacts_config("upsert")).await;

    setup.send(&users(&setup, 150, "Ada", "2026-01-01T00:00:00Z")).await;
    assert!(setup.drain().await.is_empty());
    assert_eq!(setup.world.sim.request_count("POST", "/crm/objects/2026-09/contacts/batch/upsert"), 2);
    let ada = setup.contact("user7@example.com").expect("created in HubSpot");
    assert_eq!((ada["firstname"].as_str(), ada["num_employees"].as_str()), (Some("Ada 7"), Some("7")));
    assert_eq!(setup.counts().await.created, 150);

    setup.send(&users(&setup, 150, "Grace", "2026-01-02T00:00:00Z")).await;
    assert!(setup.drain().await.is_empty());
    assert_eq!(setup.contact("user7@example.com").unwrap()["firstname"], "Grace 7");
    assert_eq!(setup.counts().await.updated, 150);

    // The same values again, newer: nothing to write.
    let writes = setup.hubspot_writes("contacts");
    setup.send(&users(&setup, 150, "Grace", "2026-01-03T00:00:00Z")).await;
    assert!(setup.drain().await.is_empty());
    assert_eq!(setup.hubspot_writes("contacts"), writes, "unchanged records cost no HubSpot write");
    let counts = setup.counts().await;
    assert_eq!((counts.received, counts.unchanged), (450, 150));
}

#[tokio::test]
async fn update_only_mode_updates_existing_records_and_reports_the_rest_as_not_found() {
    let setup = PushSetup::new(contacts_config("update_only")).await;
    let known = setup.world.sim.seed(PORTAL, "contacts", json!({ "email": "known@example.com", "firstname": "Old" }));
    setup
        .send(&[
            setup.change("contact", "Known@Example.com", json!({ "first_name": "New" }), "2026-01-01T00:00:00Z"),
            setup.change("contact", "stranger@example.com", json!({ "first_name": "Nobody" }), "2026-01-01T00:00:00Z"),
        ])
        .await;
    assert!(setup.drain().await.is_empty());
    assert_eq!(setup.world.sim.record(PORTAL, "contacts", &known).unwrap()["properties"]["firstname"], "New");
    assert!(setup.contact("stranger@example.com").is_none(), "update-only never creates");
    let counts = setup.counts().await;
    assert_eq!(counts.updated, 1);
    assert_eq!(counts.skipped["not found in HubSpot (update-only mode)"], 1);
}

#[tokio::test]
async fn create_only_mode_creates_missing_records_and_leaves_existing_ones_alone() {
    let setup = PushSetup::new(contacts_config("create_only")).await;
    let known = setup.world.sim.seed(PORTAL, "contacts", json!({ "email": "known@example.com", "firstname": "Kept" }));
    setup
        .send(&[
            setup.change(
                "contact",
                "known@example.com",
                json!({ "first_name": "Overwritten" }),
                "2026-01-01T00:00:00Z",
            ),
            setup.change("contact", "new@example.com", json!({ "first_name": "Fresh" }), "2026-01-01T00:00:00Z"),
        ])
        .await;
    assert!(setup.drain().await.is_empty());
    assert_eq!(setup.world.sim.record(PORTAL, "contacts", &known).unwrap()["properties"]["firstname"], "Kept");
    assert_eq!(setup.contact("new@example.com").unwrap()["firstname"], "Fresh");
    let counts = setup.counts().await;
    assert_eq!(counts.created, 1);
    assert_eq!(counts.skipped["already exists in HubSpot (create-only mode)"], 1);
}

#[tokio::test]
async fn companies_matched_by_domain_are_found_by_search_and_created_when_missing() {
    let config = json!({ "objects": { "companies": {
        "match_key": { "kind": "company_domain" },
        "write_mode": "upsert",
        "fields": [
            { "platform_field": "employees", "hubspot_property": "numberofemployees", "direction": "out", "platform_type": "number" }
        ] } } });
    let setup = PushSetup::new(config).await;
    let acme = setup.world.sim.seed(PORTAL, "companies", json!({ "name": "Acme", "domain": "acme.com" }));
    setup
        .send(&[
            setup.change("company", "https://www.Acme.com/about", json!({ "employees": 120 }), "2026-01-01T00:00:00Z"),
            setup.change("company", "globex.com", json!({ "employees": 8 }), "2026-01-01T00:00:00Z"),
            setup.change("company", "", json!({ "employees": 1 }), "2026-01-01T00:00:00Z"),
        ])
        .await;
    assert!(setup.drain().await.is_empty());
    let companies = setup.world.sim.records(PORTAL, "companies");
    assert_eq!(companies.len(), 2, "one updated, one created: {companies:?}");
    assert_eq!(setup.world.sim.record(PORTAL, "companies", &acme).unwrap()["properties"]["numberofemployees"], "120");
    assert!(companies.iter().any(|c| c["properties"]["domain"] == "globex.com"));
    let counts = setup.counts().await;
    assert_eq!((counts.created, counts.updated), (1, 1));
    assert_eq!(counts.skipped["company has no website domain"], 1);
}

#[tokio::test]
async fn records_that_must_not_sync_are_dropped_with_their_reason() {
    let setup = PushSetup::new(contacts_config("upsert")).await;
    setup
        .send(&[
            setup.change("contact", "not-an-email", json!({ "first_name": "X" }), "2026-01-01T00:00:00Z"),
            setup.change("deal", "deal-1", json!({ "amount": 5 }), "2026-01-01T00:00:00Z"),
            setup.change("contact", "ok@example.com", json!({ "seats": "many" }), "2026-01-01T00:00:00Z"),
            setup.change(
                "contact",
                "ok2@example.com",
                json!({ "first_name": "Y", "favourite_colour": "red" }),
                "2026-01-01T00:00:00Z",
            ),
            setup.change("contact", "ok3@example.com", json!({ "favourite_colour": "blue" }), "2026-01-01T00:00:00Z"),
        ])
        .await;
    assert!(setup.drain().await.is_empty(), "deliberate drops are acknowledged, not retried");
    let counts = setup.counts().await;
    assert_eq!(counts.skipped["contact has no valid email"], 1);
    assert_eq!(counts.skipped["deals are not configured for this connection"], 1);
    assert_eq!(counts.skipped["field `seats` has an invalid value: expected a number"], 1);
    let nothing_mapped = "no mapped field: favourite_colour sent, none mapped to a HubSpot property (map them in the connection's config)";
    assert_eq!(counts.skipped[nothing_mapped], 1, "{counts:?}");
    assert_eq!(counts.created, 1, "unmapped fields are ignored; the record itself syncs");
    let runs = setup.runs().await;
    assert!(runs.iter().any(|r| r.counts.ignored_fields.get("favourite_colour") == Some(&1)), "{runs:?}");
    assert!(setup.parked().await.is_empty());
}

#[tokio::test]
async fn a_disabled_connection_drops_changes_and_one_needing_reauth_keeps_them() {
    let setup = PushSetup::new(contacts_config("upsert")).await;
    let mut connection = setup.connection.clone();
    connection.status = ConnectionStatus::Disabled;
    setup.world.deps.store.put_connection(&connection).await.unwrap();
    setup.send(&users(&setup, 1, "Ada", "2026-01-01T00:00:00Z")).await;
    assert!(setup.drain().await.is_empty());
    assert_eq!(setup.counts().await.skipped["connection is disabled"], 1);

    connection.status = ConnectionStatus::NeedsReauth;
    setup.world.deps.store.put_connection(&connection).await.unwrap();
    setup.send(&users(&setup, 1, "Ada", "2026-01-01T00:00:00Z")).await;
    let (response, delivered) = setup.deliver().await;
    assert_eq!((response.batch_item_failures.len(), delivered), (1, 1), "kept for a retry, not lost");
    assert_eq!(setup.hubspot_writes("contacts"), 0);
}

#[tokio::test]
async fn changes_to_one_record_are_folded_and_an_older_change_never_overwrites_a_newer_one() {
    let setup = PushSetup::new(contacts_config("upsert")).await;
    setup
        .send(&[
            setup.change("contact", "ada@example.com", json!({ "first_name": "Newest" }), "2026-01-03T00:00:00Z"),
            setup.change(
                "contact",
                "ADA@example.com",
                json!({ "first_name": "Oldest", "last_name": "Lovelace" }),
                "2026-01-01T00:00:00Z",
            ),
        ])
        .await;
    assert!(setup.drain().await.is_empty());
    let ada = setup.contact("ada@example.com").unwrap();
    assert_eq!((ada["firstname"].as_str(), ada["lastname"].as_str()), (Some("Newest"), Some("Lovelace")));
    let counts = setup.counts().await;
    assert_eq!((counts.created, counts.skipped["merged into a newer change of the same record"]), (1, 1));
    assert_eq!(setup.hubspot_writes("contacts"), 1);

    // A late, older change arrives alone.
    setup
        .send(&[setup.change("contact", "ada@example.com", json!({ "first_name": "Stale" }), "2026-01-02T00:00:00Z")])
        .await;
    assert!(setup.drain().await.is_empty());
    assert_eq!(setup.contact("ada@example.com").unwrap()["firstname"], "Newest");
    assert_eq!(setup.counts().await.skipped["superseded: a newer change of this record was already written"], 1);
}

#[tokio::test]
async fn a_record_hubspot_refuses_fails_alone_and_is_parked_with_hubspots_reason() {
    let setup = PushSetup::new(contacts_config("upsert")).await;
    setup
        .send(&[
            setup.change("contact", "good@example.com", json!({ "first_name": "Good" }), "2026-01-01T00:00:00Z"),
            setup.change("contact", "bad@example.", json!({ "first_name": "Bad" }), "2026-01-01T00:00:00Z"),
        ])
        .await;
    assert!(setup.drain().await.is_empty(), "a permanent refusal is parked, not retried");
    assert!(setup.contact("good@example.com").is_some());
    let parked = setup.parked().await;
    assert_eq!(parked.len(), 1);
    assert!(parked[0].parked.reason.contains("INVALID_EMAIL"), "{}", parked[0].parked.reason);
    assert!(parked[0].body.contains("bad@example."));
    let counts = setup.counts().await;
    assert_eq!(counts.created, 1);
    assert_eq!(counts.failed.values().sum::<u64>(), 1);
}

#[tokio::test]
async fn outages_are_retried_with_backoff_then_parked_with_the_reason_and_redriven_after_the_fix() {
    let setup = PushSetup::new(contacts_config("upsert")).await;
    setup.world.sim.inject_fault(Fault {
        kind: FaultKind::ServerError(503),
        rate: 1.0,
        path_prefix: Some("/crm/objects/2026-09/contacts/batch".into()),
        remaining: None,
    });
    setup.send(&users(&setup, 1, "Ada", "2026-01-01T00:00:00Z")).await;
    let queue = &setup.world.deps.push.work;
    for attempt in 1..=6 {
        let batch = setup.receive(10).await;
        assert_eq!(batch.len(), 1, "attempt {attempt}");
        assert_eq!(batch[0].receive_count, attempt);
        let response = setup.invoke(&setup.worker, &batch).await;
        if attempt < 6 {
            assert_eq!(response.batch_item_failures.len(), 1, "attempt {attempt} is reported as failed");
            assert!(setup.receive(10).await.is_empty(), "hidden for its backoff");
            // Time passes: the backoff is over.
            queue.change_visibility(&batch[0].receipt_handle, Duration::ZERO).await.unwrap();
        } else {
            assert!(response.batch_item_failures.is_empty(), "parked on the last attempt");
        }
    }
    let parked = setup.parked().await;
    assert_eq!(parked.len(), 1);
    assert!(parked[0].parked.reason.starts_with("gave up after 6 attempts"), "{}", parked[0].parked.reason);
    assert!(parked[0].parked.reason.contains("503"), "{}", parked[0].parked.reason);
    assert_eq!(setup.counts().await.retried.values().sum::<u64>(), 6);

    // Put it back in the dead-letter queue, fix HubSpot, redrive from the console.
    hubsync::work::park(&*setup.world.deps.push.parked, &parked[0].body, parked[0].parked.clone()).await.unwrap();
    setup.world.sim.clear_faults();
    let console = console_api::router(setup.world.function(Function::ConsoleApi).await);
    let path = format!("/connections/{}/redrive", setup.connection.id);
    let reply = invoke(&console, Event::new("POST", &path).bearer(setup.key.expose())).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.json()["replayed"], 1);
    assert!(setup.drain().await.is_empty());
    assert_eq!(setup.contact("user0@example.com").unwrap()["firstname"], "Ada 0");
}

#[tokio::test]
async fn an_expired_access_token_is_renewed_once_and_the_push_goes_through() {
    let setup = PushSetup::new(contacts_config("upsert")).await;
    let token = setup.world.deps.tokens.access_token(&setup.connection.id).await.unwrap();
    setup.world.sim.expire_access_token(token.expose());
    let refreshes = setup.world.sim.request_count("POST", "/oauth/2026-09/token");
    setup.send(&users(&setup, 3, "Ada", "2026-01-01T00:00:00Z")).await;
    assert!(setup.drain().await.is_empty());
    assert_eq!(setup.world.sim.request_count("POST", "/oauth/2026-09/token"), refreshes + 1);
    assert_eq!(setup.counts().await.created, 3);
}

#[tokio::test]
async fn list_memberships_follow_the_changes_and_dynamic_lists_are_refused() {
    let world = World::new().await;
    let customers = world.sim.create_list(PORTAL, "Customers", "contacts", "MANUAL");
    let trial = world.sim.create_list(PORTAL, "Trial", "contacts", "SNAPSHOT");
    let engaged = world.sim.create_list(PORTAL, "Engaged", "contacts", "DYNAMIC");
    let mut config = contacts_config("upsert");
    config["objects"]["contacts"]["lists"] = json!([customers]);
    let setup = PushSetup::in_world(world, config).await;

    let mut change = setup.change("contact", "ada@example.com", json!({ "first_name": "Ada" }), "2026-01-01T00:00:00Z");
    change["lists"] = json!({ "add": [trial] });
    setup.send(&[change]).await;
    assert!(setup.drain().await.is_empty());
    let ada = setup.contact("ada@example.com").unwrap()["hs_object_id"].as_str().unwrap().to_string();
    assert_eq!(setup.world.sim.list_members(PORTAL, &customers), vec![ada.clone()], "the config's list");
    assert_eq!(setup.world.sim.list_members(PORTAL, &trial), vec![ada.clone()], "the change's list");

    // Unchanged fields, but a list change still applies.
    let mut change = setup.change("contact", "ada@example.com", json!({ "first_name": "Ada" }), "2026-01-02T00:00:00Z");
    change["lists"] = json!({ "remove": [trial] });
    setup.send(&[change]).await;
    assert!(setup.drain().await.is_empty());
    assert!(setup.world.sim.list_members(PORTAL, &trial).is_empty());

    let mut change = setup.change("contact", "ada@example.com", json!({ "first_name": "Ada" }), "2026-01-03T00:00:00Z");
    change["lists"] = json!({ "add": [engaged] });
    setup.send(&[change]).await;
    assert!(setup.drain().await.is_empty());
    let parked = setup.parked().await;
    assert_eq!(parked.len(), 1);
    assert!(parked[0].parked.reason.contains("DYNAMIC"), "{}", parked[0].parked.reason);

    // The console refuses a dynamic list in a config at once.
    let mut config = contacts_config("upsert");
    config["objects"]["contacts"]["lists"] = json!([engaged]);
    let console = console_api::router(setup.world.function(Function::ConsoleApi).await);
    let path = format!("/connections/{}/config/validate", setup.connection.id);
    let reply = invoke(&console, Event::new("POST", &path).bearer(setup.key.expose()).json_body(&config)).await;
    assert_eq!(reply.json()["problems"][0]["rule"], "list_dynamic", "{}", reply.body);
}

#[tokio::test]
async fn unreadable_messages_are_parked_at_once_with_the_reason() {
    let setup = PushSetup::new(contacts_config("upsert")).await;
    setup.send_raw("{ not json").await;
    setup.send_raw(&json!({ "version": 2, "connection_id": setup.connection.id }).to_string()).await;
    let mut huge = setup.change("contact", "ada@example.com", json!({}), "2026-01-01T00:00:00Z");
    huge["fields"]["notes"] = json!("x".repeat(250 * 1024));
    setup.send_raw(&huge.to_string()).await;

    assert!(setup.drain().await.is_empty(), "never retried");
    let mut reasons: Vec<String> = setup.parked().await.into_iter().map(|p| p.parked.reason).collect();
    reasons.sort();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("not a push message")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("version 2 is not supported")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("at most 245760")), "{reasons:?}");
}

#[tokio::test]
async fn the_console_queues_a_single_record_and_shows_the_runs_to_its_tenant_only() {
    let setup = PushSetup::new(contacts_config("upsert")).await;
    let console = console_api::router(setup.world.function(Function::ConsoleApi).await);
    let sync = format!("/connections/{}/sync", setup.connection.id);
    let body = json!({ "version": 1, "object": "contact", "record_key": "ada@example.com", "fields": { "first_name": "Ada" } });
    let reply = invoke(&console, Event::new("POST", &sync).bearer(setup.key.expose()).json_body(&body)).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    assert!(setup.drain().await.is_empty());
    assert_eq!(setup.contact("ada@example.com").unwrap()["firstname"], "Ada");

    let runs = format!("/connections/{}/runs", setup.connection.id);
    let reply = invoke(&console, Event::get(&runs).bearer(setup.key.expose())).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["runs"][0]["counts"]["created"], 1, "{}", reply.body);

    let bad = json!({ "version": 1, "object": "contact", "record_key": "a@b.co", "fields": {}, "colour": "red" });
    let reply = invoke(&console, Event::new("POST", &sync).bearer(setup.key.expose()).json_body(&bad)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.json()["error"]["message"].as_str().unwrap().contains("colour"), "{}", reply.body);

    let other = setup.world.tenant("globex").await;
    for event in [
        Event::new("POST", &sync).json_body(&body),
        Event::get(&runs),
        Event::new("POST", &format!("/connections/{}/redrive", setup.connection.id)),
    ] {
        let reply = invoke(&console, event.bearer(other.expose())).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "another tenant sees nothing: {}", reply.body);
    }
}

#[tokio::test]
async fn concurrent_workers_share_the_portals_rate_budget() {
    // HubSpot allows 12 per 10 s here; the connection is configured to spend 10. Unpaced, the
    // 12 batch calls and the config's schema read would overrun it.
    let world = World::with(SimConfig::default(), |_| {}).await;
    world.sim.set_rate_limit(PORTAL, 12);
    let mut config = contacts_config("upsert");
    config["options"] = json!({ "webhooks_enabled": true, "data_in_enabled": true, "rate_limit_per_10s": 10 });
    let setup = PushSetup::in_world(world, config).await;
    setup.send(&users(&setup, 120, "Ada", "2026-01-01T00:00:00Z")).await;

    // Three Lambdas, each taking batches of 10 until the queue is empty.
    let mut workers: Vec<PushWorker> = Vec::new();
    for _ in 0..3 {
        workers.push(push_worker(setup.world.function(Function::PushWorker).await));
    }
    tokio::join!(drain_with(&setup, &workers[0]), drain_with(&setup, &workers[1]), drain_with(&setup, &workers[2]));
    let counts = setup.counts().await;
    assert_eq!(counts.created, 120);
    assert!(counts.retried.is_empty(), "{:?}", counts.retried);
}

/// One Lambda's life: batches of 10 until the queue is empty, none refused for the rate limit.
async fn drain_with(setup: &PushSetup, worker: &PushWorker) {
    loop {
        let batch = setup.receive(10).await;
        if batch.is_empty() {
            return;
        }
        let response = setup.invoke(worker, &batch).await;
        assert!(response.batch_item_failures.is_empty(), "no call was refused for the rate limit");
    }
}

#[tokio::test]
async fn reinstalling_a_connection_that_needed_reauth_replays_its_parked_changes_both_ways() {
    let setup = PushSetup::new(contacts_config("upsert")).await;
    let mut connection = setup.connection.clone();
    connection.status = ConnectionStatus::NeedsReauth;
    setup.world.deps.store.put_connection(&connection).await.unwrap();
    setup.send(&users(&setup, 1, "Ada", "2026-01-01T00:00:00Z")).await;
    let queue = &setup.world.deps.push.work;
    for attempt in 1..=6 {
        let batch = setup.receive(10).await;
        let response = setup.invoke(&setup.worker, &batch).await;
        if attempt < 6 {
            assert_eq!(response.batch_item_failures.len(), 1, "kept for a retry while the connection is stopped");
            queue.change_visibility(&batch[0].receipt_handle, Duration::ZERO).await.unwrap();
        }
    }
    assert!(setup.receive(10).await.is_empty(), "parked after its last attempt");
    // A HubSpot change the inbound worker parked meanwhile, for the platform.
    let inbound = json!({ "version": 1, "connection_id": setup.connection.id, "portal_id": PORTAL, "events": [] });
    let note = ParkNote {
        reason: NEEDS_REAUTH.into(),
        connection_id: Some(setup.connection.id.clone()),
        attempts: 6,
        parked_at: time::OffsetDateTime::now_utc(),
    };
    park(setup.world.deps.inbound.parked.as_ref(), &inbound.to_string(), note).await.unwrap();

    hubsync_tests::oauth::install(&setup.world, setup.key.expose()).await;
    // The install asked the bulk worker to redrive the connection's parked work.
    let bulk = hubsync::inbound::bulk_worker(setup.world.function(Function::BulkWorker).await);
    assert_eq!(setup.drain_bulk(&bulk).await, 1, "one redrive job");
    assert!(setup.drain().await.is_empty());
    assert_eq!(setup.contact("user0@example.com").unwrap()["firstname"], "Ada 0");
    assert!(setup.parked().await.is_empty());
    let replayed = take_all(setup.world.deps.inbound.work.as_ref()).await;
    assert_eq!(replayed, vec![inbound.to_string()], "the HubSpot change is back on its way to the platform");
}

#[tokio::test]
async fn every_value_written_is_remembered_as_hubsyncs_own_when_later_changes_carry_other_fields() {
    let setup = PushSetup::new(contacts_config("upsert")).await;
    setup
        .send(&[setup.change("contact", "ada@example.com", json!({ "first_name": "Ada" }), "2026-01-01T00:00:00Z")])
        .await;
    assert!(setup.drain().await.is_empty());
    setup
        .send(&[setup.change("contact", "ada@example.com", json!({ "last_name": "Lovelace" }), "2026-01-01T00:01:00Z")])
        .await;
    assert!(setup.drain().await.is_empty());

    // Both values are HubSpot's now; either coming back is an echo, not news for the platform.
    let keys = ["ada@example.com".to_string()];
    let states = setup.world.deps.store.get_record_states(&setup.connection.id, ObjectType::Contacts, &keys).await;
    let state = states.unwrap().remove("ada@example.com").expect("a state is kept");
    let written = |property: &str| state.outbound.written.get(property).map(|w| w.value.clone());
    assert_eq!(written("firstname").as_deref(), Some("Ada"));
    assert_eq!(written("lastname").as_deref(), Some("Lovelace"));
    assert!(state.outbound.writing.is_empty(), "nothing is still being written: {state:?}");
}
