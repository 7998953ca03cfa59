//! HubSpot's webhooks through the receiver's Lambda handler (API Gateway v2 event JSON), and
//! the inbound worker delivering to a platform endpoint, against moto and the simulator.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use hubsync::domain::{ConnectionStatus, InboundMessage};
use hubsync::inbound::{InboundWorker, inbound_worker};
use hubsync::ports::Clock;
use hubsync::webhooks::signature::v3_signature;
use hubsync::work::ParkedMessage;
use hubsync_tests::Function;
use hubsync_tests::lambda::{Event, Reply, invoke};
use hubsync_tests::platform::Platform;
use hubsync_tests::push::{PORTAL, PushSetup, acknowledge, sqs_event, take_all};
use hubsync_tests::world::CLIENT_SECRET;
use serde_json::{Value, json};

const HOST: &str = "sync.example.com";
const APP_ID: u64 = 54321;

/// A contacts config that takes first names in from HubSpot and delivers them to `ingest_url`.
fn inbound_config(ingest_url: &str) -> Value {
    json!({
        "objects": { "contacts": {
            "match_key": { "kind": "email" }, "write_mode": "upsert",
            "fields": [
                { "platform_field": "first_name", "hubspot_property": "firstname", "direction": "both", "platform_type": "string" },
                { "platform_field": "seats", "hubspot_property": "num_employees", "direction": "in", "platform_type": "number" }
            ] } },
        "options": { "webhooks_enabled": true, "data_in_enabled": true, "ingest_url": ingest_url }
    })
}

fn event(object_id: &str, property: &str, value: &str, occurred_at: i64) -> Value {
    json!({
        "eventId": 1, "subscriptionId": 7, "portalId": PORTAL, "appId": APP_ID, "occurredAt": occurred_at,
        "subscriptionType": "contact.propertyChange", "attemptNumber": 0, "objectId": object_id.parse::<u64>().unwrap(),
        "propertyName": property, "propertyValue": value, "changeSource": "CRM_UI", "sourceId": "userId:7"
    })
}

fn now_ms(setup: &PushSetup) -> i64 {
    (setup.world.clock.now().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Posts `body` to the receiver as HubSpot would, signed (v3) at `timestamp`.
async fn post_webhook(setup: &PushSetup, body: &str, timestamp: i64, secret: &str) -> Reply {
    let url = format!("https://{HOST}/webhooks/hubspot");
    let timestamp = timestamp.to_string();
    let signature = v3_signature("POST", &url, body.as_bytes(), &timestamp, &hubsync::domain::Secret::new(secret));
    let request = Event::new("POST", "/webhooks/hubspot")
        .header("host", HOST)
        .header("x-hubspot-signature-v3", &signature)
        .header("x-hubspot-request-timestamp", &timestamp)
        .raw_body("application/json", body);
    invoke(&webhook_receiver::router(setup.world.function(Function::WebhookReceiver).await), request).await
}

async fn inbound_messages(setup: &PushSetup) -> Vec<InboundMessage> {
    let bodies = take_all(setup.world.deps.inbound.work.as_ref()).await;
    bodies.iter().map(|body| serde_json::from_str(body).unwrap()).collect()
}

/// Runs the inbound worker over what is on the inbound queue, as Lambda would.
async fn drain_inbound(setup: &PushSetup, worker: &InboundWorker) -> usize {
    // Lambda's poller receives and deletes; the handler backs off as the worker's role.
    let queue = &setup.world.deps.inbound.work;
    let as_worker = setup.world.function(Function::InboundWorker).await.inbound.work;
    let mut failures = 0;
    loop {
        let batch = queue.receive(10, Duration::from_millis(300)).await.unwrap();
        if batch.is_empty() {
            return failures;
        }
        let response =
            inbound_worker::handle(worker, as_worker.as_ref(), sqs_event(&batch), setup.world.deadline()).await;
        failures += acknowledge(queue.as_ref(), &batch, &response).await;
    }
}

#[tokio::test]
async fn a_signed_change_is_routed_to_the_connection_once_and_forgeries_are_refused() {
    let setup = PushSetup::new(inbound_config("https://platform.example.com/ingest")).await;
    let body = json!([event("501", "firstname", "Ada", now_ms(&setup))]).to_string();

    let reply = post_webhook(&setup, &body, now_ms(&setup), CLIENT_SECRET).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.json()["enqueued"], 1);
    let messages = inbound_messages(&setup).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].connection_id, setup.connection.id);
    assert_eq!(messages[0].events[0].object_id, 501);

    // HubSpot's retry of the same request (attemptNumber 1) is acknowledged and not processed.
    let retry = body.replace("\"attemptNumber\":0", "\"attemptNumber\":1");
    let reply = post_webhook(&setup, &retry, now_ms(&setup), CLIENT_SECRET).await;
    assert_eq!((reply.status, reply.json()["duplicates"].clone()), (StatusCode::OK, json!(1)));
    assert!(inbound_messages(&setup).await.is_empty());

    let fresh = json!([event("502", "firstname", "Grace", now_ms(&setup))]).to_string();
    let refused = [
        ("wrong secret", post_webhook(&setup, &fresh, now_ms(&setup), "not-the-secret").await),
        ("stale", post_webhook(&setup, &fresh, now_ms(&setup) - 5 * 60 * 1000 - 1, CLIENT_SECRET).await),
        // A minute past the window: the clock moves on meanwhile.
        ("future", post_webhook(&setup, &fresh, now_ms(&setup) + 6 * 60 * 1000, CLIENT_SECRET).await),
    ];
    for (case, reply) in refused {
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{case}: {}", reply.body);
        assert_eq!(reply.json()["error"]["code"], "bad_signature", "{case}");
    }
    let unsigned = Event::new("POST", "/webhooks/hubspot").header("host", HOST).raw_body("application/json", &fresh);
    let reply =
        invoke(&webhook_receiver::router(setup.world.function(Function::WebhookReceiver).await), unsigned).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(inbound_messages(&setup).await.is_empty(), "nothing unverified is queued");
}

#[tokio::test]
async fn malformed_and_oversize_bodies_are_refused_after_verification() {
    let setup = PushSetup::new(inbound_config("https://platform.example.com/ingest")).await;
    for (body, status) in [
        ("{\"eventId\":1}".to_string(), StatusCode::BAD_REQUEST),
        ("[{\"eventId\":\"one\"}]".to_string(), StatusCode::BAD_REQUEST),
        (format!("[{}]", " ".repeat(600 * 1024)), StatusCode::PAYLOAD_TOO_LARGE),
    ] {
        let reply = post_webhook(&setup, &body, now_ms(&setup), CLIENT_SECRET).await;
        assert_eq!(reply.status, status, "{}", reply.body);
    }
}

#[tokio::test]
async fn echoes_unknown_portals_unmapped_properties_and_disabled_connections_are_not_passed_on_but_reauth_waits() {
    let setup = PushSetup::new(inbound_config("https://platform.example.com/ingest")).await;
    let now = now_ms(&setup);
    let mut echo = event("501", "firstname", "Ada", now);
    echo["changeSource"] = json!("INTEGRATION");
    echo["sourceId"] = json!(APP_ID.to_string());
    let mut other_portal = event("502", "firstname", "Ada", now);
    other_portal["portalId"] = json!(999_999);
    let unmapped = event("503", "lastname", "Lovelace", now);
    let body = json!([echo, other_portal, unmapped]).to_string();
    let reply = post_webhook(&setup, &body, now, CLIENT_SECRET).await;
    assert_eq!(reply.status, StatusCode::OK);
    let receipt = reply.json();
    assert_eq!(
        (receipt["echoes"].clone(), receipt["ignored"].clone(), receipt["enqueued"].clone()),
        (json!(1), json!(2), json!(0))
    );

    // A connection waiting to be authorised again keeps its events for when it is back.
    let mut connection = setup.connection.clone();
    connection.status = ConnectionStatus::NeedsReauth;
    setup.world.deps.store.put_connection(&connection).await.unwrap();
    let body = json!([event("505", "firstname", "Ada", now)]).to_string();
    assert_eq!(post_webhook(&setup, &body, now, CLIENT_SECRET).await.json()["enqueued"], 1);
    assert_eq!(inbound_messages(&setup).await.len(), 1);

    connection.status = ConnectionStatus::Disabled;
    setup.world.deps.store.put_connection(&connection).await.unwrap();
    let body = json!([event("504", "firstname", "Ada", now)]).to_string();
    assert_eq!(post_webhook(&setup, &body, now, CLIENT_SECRET).await.json()["ignored"], 1);
    assert!(inbound_messages(&setup).await.is_empty());
}

#[tokio::test]
async fn a_failed_enqueue_answers_503_so_hubspot_retries_and_the_retry_is_processed() {
    let setup = PushSetup::new(inbound_config("https://platform.example.com/ingest")).await;
    let body = json!([event("501", "firstname", "Ada", now_ms(&setup))]).to_string();
    // A receiver whose inbound queue is gone.
    let mut broken = setup.world.function(Function::WebhookReceiver).await;
    let (gone, _) = hubsync_tests::sqs_queue_with_dlq("inbound", 3, Duration::from_secs(30)).await;
    let gone_url = gone.url().to_string();
    aws_sdk_sqs::Client::new(&hubsync_tests::aws_config().await)
        .delete_queue()
        .queue_url(&gone_url)
        .send()
        .await
        .unwrap();
    broken.inbound.work = Arc::new(gone);
    let timestamp = now_ms(&setup).to_string();
    let url = format!("https://{HOST}/webhooks/hubspot");
    let signature =
        v3_signature("POST", &url, body.as_bytes(), &timestamp, &hubsync::domain::Secret::new(CLIENT_SECRET));
    let request = || {
        Event::new("POST", "/webhooks/hubspot")
            .header("host", HOST)
            .header("x-hubspot-signature-v3", &signature)
            .header("x-hubspot-request-timestamp", &timestamp)
            .raw_body("application/json", &body)
    };
    let reply = invoke(&webhook_receiver::router(broken), request()).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{}", reply.body);

    let reply =
        invoke(&webhook_receiver::router(setup.world.function(Function::WebhookReceiver).await), request()).await;
    assert_eq!(reply.json()["enqueued"], 1, "the retry is not taken for a duplicate: {}", reply.body);
}

#[tokio::test]
async fn changes_reach_the_platform_signed_typed_once_and_newest_first() {
    let (platform, ingest) = Platform::start("delivery-secret").await;
    let setup = PushSetup::new(inbound_config(&ingest)).await;
    let ada = setup.world.sim.seed(
        PORTAL,
        "contacts",
        json!({ "email": "ada@example.com", "firstname": "Ada", "num_employees": "12" }),
    );
    let worker = inbound_worker(setup.world.function(Function::InboundWorker).await);

    let now = now_ms(&setup);
    let body = json!([event(&ada, "firstname", "Ada", now), event(&ada, "num_employees", "12", now + 1)]).to_string();
    assert_eq!(post_webhook(&setup, &body, now, CLIENT_SECRET).await.status, StatusCode::OK);
    assert_eq!(drain_inbound(&setup, &worker).await, 0);
    let records = platform.records();
    assert_eq!(records.len(), 1, "two events about one record make one delivery: {records:?}");
    assert_eq!(records[0]["record_key"], "ada@example.com");
    assert_eq!(records[0]["hubspot_id"], ada.as_str());
    assert_eq!(records[0]["fields"], json!({ "first_name": "Ada", "seats": 12 }));

    // The same version again (another event, nothing changed in HubSpot): not delivered twice.
    let body = json!([event(&ada, "firstname", "Ada", now + 2)]).to_string();
    post_webhook(&setup, &body, now, CLIENT_SECRET).await;
    assert_eq!(drain_inbound(&setup, &worker).await, 0);
    assert_eq!(platform.records().len(), 1);
    let runs = setup.world.deps.store.list_runs(&setup.connection.id, 10).await.unwrap();
    assert!(runs.iter().any(|r| r.counts.skipped.keys().any(|k| k.starts_with("nothing new"))), "{runs:?}");

    // A person edits the contact in HubSpot: the new version goes out.
    setup.world.sim.edit_as_user(PORTAL, "contacts", &ada, json!({ "firstname": "Augusta" }));
    let body = json!([event(&ada, "firstname", "Augusta", now + 3)]).to_string();
    post_webhook(&setup, &body, now, CLIENT_SECRET).await;
    assert_eq!(drain_inbound(&setup, &worker).await, 0);
    assert_eq!(platform.records().last().unwrap()["fields"]["first_name"], "Augusta");
}

#[tokio::test]
async fn platform_answers_decide_skip_retry_or_park() {
    let (platform, ingest) = Platform::start("delivery-secret").await;
    let setup = PushSetup::new(inbound_config(&ingest)).await;
    let ada = setup.world.sim.seed(PORTAL, "contacts", json!({ "email": "ada@example.com", "firstname": "Ada" }));
    let worker = inbound_worker(setup.world.function(Function::InboundWorker).await);
    let now = now_ms(&setup);

    *platform.status.lock().unwrap() = "not_found";
    post_webhook(&setup, &json!([event(&ada, "firstname", "Ada", now)]).to_string(), now, CLIENT_SECRET).await;
    assert_eq!(drain_inbound(&setup, &worker).await, 0, "a platform without the user is a skip, not a failure");
    let runs = setup.world.deps.store.list_runs(&setup.connection.id, 10).await.unwrap();
    // (The config's save also started a backfill run; the inbound one is what counts here.)
    let inbound = runs.iter().find(|r| r.kind == hubsync::domain::RunKind::Inbound).expect("an inbound run");
    assert_eq!(inbound.counts.skipped.get("not found on the platform"), Some(&1), "{runs:?}");

    *platform.status.lock().unwrap() = "error";
    post_webhook(&setup, &json!([event(&ada, "firstname", "Ada", now + 1)]).to_string(), now, CLIENT_SECRET).await;
    assert_eq!(drain_inbound(&setup, &worker).await, 1, "an error is retried later");

    // A connection without an ingest URL parks its events with the reason.
    let mut config = inbound_config(&ingest);
    config["options"]["ingest_url"] = Value::Null;
    let stored = setup.world.deps.store.get_config(&setup.connection.id).await.unwrap().unwrap();
    let config = serde_json::from_value(config).unwrap();
    setup.world.deps.store.put_config(&setup.connection.id, &config, stored.version).await.unwrap();
    post_webhook(&setup, &json!([event(&ada, "firstname", "Ada", now + 2)]).to_string(), now, CLIENT_SECRET).await;
    assert_eq!(drain_inbound(&setup, &worker).await, 0);
    let parked = setup.world.deps.inbound.parked.receive(10, Duration::from_millis(300)).await.unwrap();
    assert_eq!(parked.len(), 1);
    assert!(ParkedMessage::read(&parked[0].body).parked.reason.contains("ingest_url"));
}

#[tokio::test]
async fn hubsyncs_own_pushed_values_coming_back_are_not_delivered() {
    let (platform, ingest) = Platform::start("delivery-secret").await;
    let mut config = inbound_config(&ingest);
    config["objects"]["contacts"]["fields"] = json!([
        { "platform_field": "first_name", "hubspot_property": "firstname", "direction": "both", "platform_type": "string" }
    ]);
    let setup = PushSetup::new(config).await;
    setup
        .send(&[setup.change("contact", "ada@example.com", json!({ "first_name": "Ada" }), "2026-01-01T00:00:00Z")])
        .await;
    assert!(setup.drain().await.is_empty());
    let ada = setup.contact("ada@example.com").unwrap()["hs_object_id"].as_str().unwrap().to_string();

    // A workflow re-saves the value under another source: the value is still hubsync's own.
    let worker = inbound_worker(setup.world.function(Function::InboundWorker).await);
    let now = now_ms(&setup);
    post_webhook(&setup, &json!([event(&ada, "firstname", "Ada", now)]).to_string(), now, CLIENT_SECRET).await;
    assert_eq!(drain_inbound(&setup, &worker).await, 0);
    assert!(platform.records().is_empty(), "{:?}", platform.records());
}

#[tokio::test]
async fn a_deal_trigger_reports_its_customer_and_line_items_once() {
    let (platform, ingest) = Platform::start("delivery-secret").await;
    let mut config = inbound_config(&ingest);
    config["triggers"] = json!([{
        "name": "conversion", "object": "deals", "on_change": ["dealstage"],
        "fields": [
            { "name": "OrderId", "source": { "kind": "record_id" } },
            { "name": "Amount", "source": { "kind": "property", "property": "amount" }, "required": true },
            { "name": "CustomerId", "source": { "kind": "associated_contact_id" }, "required": true },
            { "name": "ItemName{i}", "source": { "kind": "line_items", "property": "name" } }
        ]
    }]);
    let setup = PushSetup::new(config).await;
    let sim = &setup.world.sim;
    let ada = sim.seed(PORTAL, "contacts", json!({ "email": "ada@example.com" }));
    let deal =
        sim.seed(PORTAL, "deals", json!({ "dealname": "Ada's order", "amount": "120", "dealstage": "closedwon" }));
    sim.associate(PORTAL, "deals", &deal, "contacts", &ada);
    for name in ["Analytical Engine", "Punch cards"] {
        let item = sim.seed(PORTAL, "line_items", json!({ "name": name, "price": "10" }));
        sim.associate(PORTAL, "deals", &deal, "line_items", &item);
    }
    let orphan =
        sim.seed(PORTAL, "deals", json!({ "dealname": "Nobody's order", "amount": "5", "dealstage": "closedwon" }));
    let worker = inbound_worker(setup.world.function(Function::InboundWorker).await);

    let now = now_ms(&setup);
    let mut won = event(&deal, "dealstage", "closedwon", now);
    won["subscriptionType"] = json!("deal.propertyChange");
    let mut orphan_won = event(&orphan, "dealstage", "closedwon", now);
    orphan_won["subscriptionType"] = json!("deal.propertyChange");
    let body = json!([won, orphan_won]).to_string();
    assert_eq!(post_webhook(&setup, &body, now, CLIENT_SECRET).await.json()["enqueued"], 2);
    assert_eq!(drain_inbound(&setup, &worker).await, 0);
    let records = platform.records();
    let runs = setup.world.deps.store.list_runs(&setup.connection.id, 10).await.unwrap();
    assert_eq!(records.len(), 1, "{records:?} {runs:?}");
    assert_eq!((records[0]["event"].as_str(), records[0]["trigger"].as_str()), (Some("trigger"), Some("conversion")));
    assert_eq!(
        records[0]["fields"],
        json!({ "OrderId": deal, "Amount": "120", "CustomerId": ada, "ItemName1": "Analytical Engine", "ItemName2": "Punch cards" })
    );
    let runs = setup.world.deps.store.list_runs(&setup.connection.id, 10).await.unwrap();
    let reason = "trigger conversion: required field `CustomerId` has no value";
    assert!(runs.iter().any(|r| r.counts.skipped.get(reason) == Some(&1)), "{runs:?}");

    // HubSpot delivers the same webhook again: one conversion still.
    let retry = body.replace("\"attemptNumber\":0", "\"attemptNumber\":1");
    post_webhook(&setup, &retry, now, CLIENT_SECRET).await;
    assert_eq!(drain_inbound(&setup, &worker).await, 0);
    assert_eq!(platform.records().len(), 1);
}

#[tokio::test]
async fn a_bump_of_the_bidirectional_counter_pulls_the_contacts_mapped_properties() {
    let (platform, ingest) = Platform::start("delivery-secret").await;
    let mut config = inbound_config(&ingest);
    config["objects"]["contacts"]["fields"] = json!([
        { "platform_field": "first_name", "hubspot_property": "firstname", "direction": "in", "platform_type": "string" }
    ]);
    config["options"]["bidirectional_counter_property"] = json!("acme_changed");
    let setup = PushSetup::new(config).await;
    let ada = setup.world.sim.seed(
        PORTAL,
        "contacts",
        json!({ "email": "ada@example.com", "firstname": "Ada", "acme_changed": "1" }),
    );
    let worker = inbound_worker(setup.world.function(Function::InboundWorker).await);
    let now = now_ms(&setup);
    post_webhook(&setup, &json!([event(&ada, "acme_changed", "1", now)]).to_string(), now, CLIENT_SECRET).await;
    assert_eq!(drain_inbound(&setup, &worker).await, 0);
    let records = platform.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["fields"], json!({ "first_name": "Ada" }));
}

#[tokio::test]
async fn a_contact_carries_its_companys_fields_and_a_company_change_reaches_each_contact() {
    let (platform, ingest) = Platform::start("delivery-secret").await;
    let mut config = inbound_config(&ingest);
    config["objects"]["contacts"]["fields"] = json!([
        { "platform_field": "first_name", "hubspot_property": "firstname", "direction": "in", "platform_type": "string" },
        { "platform_field": "company_size", "hubspot_property": "numberofemployees", "direction": "in",
          "platform_type": "number", "from_associated": "companies" }
    ]);
    let setup = PushSetup::new(config).await;
    let sim = &setup.world.sim;
    let acme =
        sim.seed(PORTAL, "companies", json!({ "name": "Acme", "domain": "acme.com", "numberofemployees": "40" }));
    let ada = sim.seed(PORTAL, "contacts", json!({ "email": "ada@example.com", "firstname": "Ada" }));
    let grace = sim.seed(PORTAL, "contacts", json!({ "email": "grace@example.com", "firstname": "Grace" }));
    sim.associate(PORTAL, "contacts", &ada, "companies", &acme);
    sim.associate(PORTAL, "contacts", &grace, "companies", &acme);
    let worker = inbound_worker(setup.world.function(Function::InboundWorker).await);

    let now = now_ms(&setup);
    post_webhook(&setup, &json!([event(&ada, "firstname", "Ada", now)]).to_string(), now, CLIENT_SECRET).await;
    assert_eq!(drain_inbound(&setup, &worker).await, 0);
    assert_eq!(platform.records()[0]["fields"], json!({ "first_name": "Ada", "company_size": 40 }));

    // The company grows: both of its contacts hear of it.
    sim.edit_as_user(PORTAL, "companies", &acme, json!({ "numberofemployees": "55" }));
    let mut grew = event(&acme, "numberofemployees", "55", now + 1);
    grew["subscriptionType"] = json!("company.propertyChange");
    let reply = post_webhook(&setup, &json!([grew]).to_string(), now, CLIENT_SECRET).await;
    assert_eq!(reply.json()["enqueued"], 1, "{}", reply.body);
    assert_eq!(drain_inbound(&setup, &worker).await, 0);
    let records = platform.records();
    let mut updated: Vec<(String, Value)> = records[1..]
        .iter()
        .map(|r| (r["record_key"].as_str().unwrap().to_string(), r["fields"]["company_size"].clone()))
        .collect();
    updated.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(updated, vec![("ada@example.com".to_string(), json!(55)), ("grace@example.com".to_string(), json!(55))]);

    // The same company version announced again: both contacts have it, nothing is resent.
    let mut again = event(&acme, "numberofemployees", "55", now + 2);
    again["subscriptionType"] = json!("company.propertyChange");
    post_webhook(&setup, &json!([again]).to_string(), now, CLIENT_SECRET).await;
    assert_eq!(drain_inbound(&setup, &worker).await, 0);
    assert_eq!(platform.records().len(), 3, "the contacts' applied versions were remembered as contacts'");
}

#[tokio::test]
async fn deletions_and_merges_arrive_as_such_and_a_platform_outage_is_retried() {
    let (platform, ingest) = Platform::start("delivery-secret").await;
    let setup = PushSetup::new(inbound_config(&ingest)).await;
    let sim = &setup.world.sim;
    let ada = sim.seed(PORTAL, "contacts", json!({ "email": "ada@example.com", "firstname": "Ada" }));
    let worker = inbound_worker(setup.world.function(Function::InboundWorker).await);
    let now = now_ms(&setup);

    *platform.status.lock().unwrap() = "http_503";
    let mut gone = event("901", "firstname", "", now);
    gone["subscriptionType"] = json!("contact.deletion");
    post_webhook(&setup, &json!([gone]).to_string(), now, CLIENT_SECRET).await;
    assert_eq!(drain_inbound(&setup, &worker).await, 1, "kept for a retry while the platform is down");

    *platform.status.lock().unwrap() = "applied";
    let queue = &setup.world.deps.inbound.work;
    let batch = queue.receive(10, Duration::from_millis(100)).await.unwrap();
    assert!(batch.is_empty(), "hidden for its backoff");
    let mut merged = event(&ada, "firstname", "", now + 1);
    merged["subscriptionType"] = json!("contact.merge");
    merged["primaryObjectId"] = json!(ada.parse::<u64>().unwrap());
    merged["mergedObjectIds"] = json!([ada.parse::<u64>().unwrap(), 902]);
    post_webhook(&setup, &json!([merged]).to_string(), now, CLIENT_SECRET).await;
    assert_eq!(drain_inbound(&setup, &worker).await, 0);
    let records = platform.records();
    let merge = records.iter().find(|r| r["event"] == "merged").expect("the merge arrived");
    assert_eq!((merge["hubspot_id"].as_str(), merge["merged_ids"].clone()), (Some(ada.as_str()), json!(["902"])));
    assert_eq!(merge["fields"]["first_name"], "Ada");
}

#[tokio::test]
async fn a_store_error_on_a_later_portal_releases_every_event_of_the_request() {
    let setup = PushSetup::new(inbound_config("https://platform.example.com/ingest")).await;
    // A second tenant on another portal, whose config cannot be read for now.
    let world = &setup.world;
    world.sim.add_portal(2000, hubspot_sim::ALL_SCOPES);
    let other = world.tenant("other").await;
    let connection = hubsync::domain::ConnectionId::new(&hubsync_tests::oauth::install(world, other.expose()).await);
    let stored = world.deps.store.get_connection(&connection).await.unwrap().unwrap();
    assert_eq!(stored.portal_id, 2000);
    let config: hubsync::domain::VersionedConfig = serde_json::from_value(
        json!({ "version": 0, "config": inbound_config("https://platform.example.com/ingest") }),
    )
    .unwrap();
    hubsync::console::configs::save(&world.function(Function::ConsoleApi).await, &stored, &config).await.unwrap();
    world.break_config(&connection).await;

    let now = now_ms(&setup);
    let mut elsewhere = event("601", "firstname", "Grace", now);
    elsewhere["portalId"] = json!(2000);
    let body = json!([event("501", "firstname", "Ada", now), elsewhere]).to_string();
    let reply = post_webhook(&setup, &body, now, CLIENT_SECRET).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{}", reply.body);
    assert!(inbound_messages(&setup).await.is_empty(), "nothing is queued from a request answered 503");

    // Fixed, HubSpot's retry of the request is processed in full: the first portal's event too.
    world.deps.store.put_config(&connection, &config.config, 1).await.unwrap();
    let reply =
        post_webhook(&setup, &body.replace("\"attemptNumber\":0", "\"attemptNumber\":1"), now, CLIENT_SECRET).await;
    assert_eq!((reply.status, reply.json()["enqueued"].clone()), (StatusCode::OK, json!(2)), "{}", reply.body);
    assert_eq!(reply.json()["duplicates"], 0);
}

#[tokio::test]
async fn a_refused_write_leaves_no_trace_and_the_same_value_set_in_hubspot_is_news() {
    let (platform, ingest) = Platform::start("delivery-secret").await;
    let setup = PushSetup::new(inbound_config(&ingest)).await;
    let ada = setup.world.sim.seed(PORTAL, "contacts", json!({ "email": "ada@example.com", "firstname": "Ada" }));
    // HubSpot refuses the platform's change: it is parked with HubSpot's reason.
    setup.world.sim.inject_fault(hubspot_sim::Fault {
        kind: hubspot_sim::FaultKind::ServerError(400),
        rate: 1.0,
        path_prefix: Some("/crm/objects/2026-09/contacts/batch/upsert".into()),
        remaining: Some(1),
    });
    let changed_at = setup.world.deps.clock.now().format(&time::format_description::well_known::Rfc3339).unwrap();
    setup.send(&[setup.change("contact", "ada@example.com", json!({ "first_name": "Augusta" }), &changed_at)]).await;
    setup.drain().await;
    assert_eq!(setup.parked().await.len(), 1, "the refused change is parked");
    let keys = ["ada@example.com".to_string()];
    let states = setup
        .world
        .deps
        .store
        .get_record_states(&setup.connection.id, hubsync::domain::ObjectType::Contacts, &keys)
        .await;
    let state = states.unwrap().remove("ada@example.com").expect("the claim left a state");
    assert!(state.outbound.writing.is_empty(), "a refused write is not hubsync's value: {state:?}");

    // A person then sets the same value in HubSpot: that is news for the platform.
    setup.world.sim.edit_as_user(PORTAL, "contacts", &ada, json!({ "firstname": "Augusta" }));
    let now = now_ms(&setup);
    post_webhook(&setup, &json!([event(&ada, "firstname", "Augusta", now)]).to_string(), now, CLIENT_SECRET).await;
    assert_eq!(drain_inbound(&setup, &inbound_worker(setup.world.function(Function::InboundWorker).await)).await, 0);
    let records = platform.records();
    assert_eq!(records.last().map(|r| r["fields"]["first_name"].clone()), Some(json!("Augusta")), "{records:?}");
}

/// An ingest endpoint that redirects every request to `target`; its URL.
async fn redirecting_endpoint(target: String) -> String {
    let app = axum::Router::new().fallback(move || {
        let target = target.clone();
        async move { (StatusCode::TEMPORARY_REDIRECT, [(axum::http::header::LOCATION, target)]) }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ingest", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// The reasons of what the inbound dead-letter queue holds (taken out of it).
async fn parked_reasons(setup: &PushSetup) -> Vec<String> {
    take_all(setup.world.deps.inbound.parked.as_ref())
        .await
        .iter()
        .map(|b| ParkedMessage::read(b).parked.reason)
        .collect()
}

#[tokio::test]
async fn deliveries_follow_no_redirects_and_record_the_status_not_the_body() {
    let (platform, ingest) = Platform::start("delivery-secret").await;
    let setup = PushSetup::new(inbound_config(&redirecting_endpoint(ingest).await)).await;
    let ada = setup.world.sim.seed(PORTAL, "contacts", json!({ "email": "ada@example.com", "firstname": "Ada" }));
    let worker = inbound_worker(setup.world.function(Function::InboundWorker).await);
    let now = now_ms(&setup);
    post_webhook(&setup, &json!([event(&ada, "firstname", "Ada", now)]).to_string(), now, CLIENT_SECRET).await;
    drain_inbound(&setup, &worker).await;

    assert!(platform.records().is_empty(), "the redirect was not followed");
    let reasons = parked_reasons(&setup).await;
    assert!(reasons.iter().any(|r| r.contains("307") && r.contains("follows no redirects")), "{reasons:?}");
}

#[tokio::test]
async fn deliveries_never_reach_a_private_address_whatever_the_config_says() {
    let world = hubsync_tests::world::World::with(hubspot_sim::SimConfig::default(), |settings| {
        // As deployed: https only, on the allowed origins, never to a private address.
        settings.allow_local_ingest = false;
        settings.allowed_ingest_origins =
            ["https://platform.example.com", "http://127.0.0.1:9001", "https://localhost"].map(String::from).to_vec();
    })
    .await;
    let setup = PushSetup::in_world(world, inbound_config("https://platform.example.com/ingest")).await;
    let console = setup.world.function(Function::ConsoleApi).await;
    let runtime_api =
        serde_json::from_value(inbound_config("http://127.0.0.1:9001/2018-06-01/runtime/invocation/next")).unwrap();
    let problems = hubsync::console::configs::validate(&console, &setup.connection, &runtime_api).await.unwrap();
    assert!(problems.iter().any(|p| p.rule == "ingest_url_invalid"), "the console refuses it: {problems:?}");

    // Stored anyway (before the rule existed, or edited by hand): the worker does not call it,
    // neither by address nor by a name resolving to this machine.
    let ada = setup.world.sim.seed(PORTAL, "contacts", json!({ "email": "ada@example.com", "firstname": "Ada" }));
    let worker = inbound_worker(setup.world.function(Function::InboundWorker).await);
    for (i, url) in
        ["http://127.0.0.1:9001/2018-06-01/runtime/invocation/next", "https://localhost/ingest"].iter().enumerate()
    {
        let stored = setup.world.deps.store.get_config(&setup.connection.id).await.unwrap().unwrap();
        let config = serde_json::from_value(inbound_config(url)).unwrap();
        setup.world.deps.store.put_config(&setup.connection.id, &config, stored.version).await.unwrap();
        let now = now_ms(&setup) + i as i64;
        setup.world.sim.edit_as_user(PORTAL, "contacts", &ada, json!({ "firstname": format!("Ada {i}") }));
        post_webhook(&setup, &json!([event(&ada, "firstname", "x", now)]).to_string(), now, CLIENT_SECRET).await;
        drain_inbound(&setup, &worker).await;
        let reasons = parked_reasons(&setup).await;
        assert!(reasons.iter().any(|r| r.contains("was not sent")), "{url}: {reasons:?}");
        if url.starts_with("https://localhost") {
            assert!(reasons.iter().any(|r| r.contains("resolves only to local or private")), "{reasons:?}");
        }
    }
}
