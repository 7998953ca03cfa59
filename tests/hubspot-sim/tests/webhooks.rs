//! Webhooks: events for every kind of change, their sources, signatures, batching and retries.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::receiver::{Answer, Receiver};
use common::{sim, sim_with};
use hubspot_sim::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SimConfig, Subscription};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const CONTACTS: &str = "/crm/v3/objects/contacts";
/// Generous: deliveries settle in milliseconds unless a test makes them retry.
const SETTLE: Duration = Duration::from_secs(20);

fn of_type<'a>(events: &'a [Value], subscription_type: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["subscriptionType"] == subscription_type).collect()
}

#[tokio::test]
async fn creations_and_api_changes_arrive_signed() {
    let s = sim().await;
    let hook = Receiver::start().await;
    let ids = s.sim.subscribe_webhooks(
        DEFAULT_CLIENT_ID,
        &hook.url,
        &[Subscription::new("contact.creation"), Subscription::property("contact.propertyChange", "firstname")],
    );
    let created = s.post(CONTACTS, json!({ "properties": { "email": "ada@example.com" } })).await;
    let id: u64 = created.body["id"].as_str().unwrap().parse().unwrap();
    let updated = s
        .call(
            Method::PATCH,
            &format!("{CONTACTS}/{id}"),
            Some(json!({ "properties": { "firstname": "Ada", "lastname": "Lovelace" } })),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK);
    assert!(s.sim.wait_webhooks_idle(SETTLE).await);

    let requests = hook.requests();
    assert!(!requests.is_empty());
    for request in &requests {
        request.assert_signed(&hook.url, DEFAULT_CLIENT_SECRET);
    }
    let events = hook.events();
    assert_eq!(events.len(), 2, "lastname has no subscription: {events:?}");
    let app_id = s.sim.app_id(DEFAULT_CLIENT_ID);
    assert_eq!(app_id, 54321);
    for event in &events {
        assert_eq!(event["portalId"], 1000);
        assert_eq!(event["appId"], app_id);
        assert_eq!(event["objectId"], id);
        assert_eq!(event["attemptNumber"], 0);
        assert_eq!(event["changeSource"], "INTEGRATION");
        assert_eq!(event["sourceId"], app_id.to_string());
        assert!(event["occurredAt"].as_i64().unwrap() > 0);
    }
    let creation = of_type(&events, "contact.creation")[0];
    assert_eq!(creation["subscriptionId"], ids[0]);
    assert_eq!(creation["changeFlag"], "CREATED");
    let change = of_type(&events, "contact.propertyChange")[0];
    assert_eq!(change["subscriptionId"], ids[1]);
    assert_eq!(change["propertyName"], "firstname");
    assert_eq!(change["propertyValue"], "Ada");
    assert!(change["eventId"].as_u64() > creation["eventId"].as_u64());
}

#[tokio::test]
async fn changes_by_people_and_seeds_carry_their_source() {
    let s = sim().await;
    let hook = Receiver::start().await;
    s.sim.subscribe_webhooks(
        DEFAULT_CLIENT_ID,
        &hook.url,
        &[Subscription::new("contact.creation"), Subscription::property("contact.propertyChange", "firstname")],
    );
    let id = s.sim.seed(1000, "contacts", json!({ "email": "grace@example.com" }));
    s.sim.edit_as_user(1000, "contacts", &id, json!({ "firstname": "Grace" }));
    assert!(s.sim.wait_webhooks_idle(SETTLE).await);

    let events = hook.events();
    let creation = of_type(&events, "contact.creation")[0];
    assert_eq!(creation["changeSource"], "IMPORT");
    assert!(creation.get("sourceId").is_none(), "imports name no source");
    let change = of_type(&events, "contact.propertyChange")[0];
    assert_eq!(change["changeSource"], "CRM_UI");
    let record = s.sim.record(1000, "contacts", &id).unwrap();
    let user = &record["propertiesWithHistory"]["firstname"][0]["sourceId"];
    assert!(user.as_str().unwrap().starts_with("userId:"));
    assert_eq!(&change["sourceId"], user);
}

#[tokio::test]
async fn batches_hold_at_most_100_events() {
    let s = sim().await;
    let hook = Receiver::start().await;
    s.sim.subscribe_webhooks(DEFAULT_CLIENT_ID, &hook.url, &[Subscription::new("contact.creation")]);
    let mut created = BTreeSet::new();
    for (first, count) in [(0, 100), (100, 100), (200, 50)] {
        let inputs: Vec<Value> = (first..first + count)
            .map(|n| json!({ "properties": { "email": format!("person{n}@example.com") } }))
            .collect();
        let reply = s.post(&format!("{CONTACTS}/batch/create"), json!({ "inputs": inputs })).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        created.extend(reply.body["results"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()));
    }
    assert!(s.sim.wait_webhooks_idle(SETTLE).await);

    let requests = hook.requests();
    assert!(requests.len() >= 3, "250 events need at least three POSTs");
    for request in &requests {
        assert!(request.events().len() <= 100);
        request.assert_signed(&hook.url, DEFAULT_CLIENT_SECRET);
    }
    let notified: BTreeSet<String> = hook.events().iter().map(|e| e["objectId"].to_string()).collect();
    assert_eq!(notified, created);
    assert_eq!(hook.events().len(), 250, "each creation once");
    let attempts = s.sim.webhook_attempts();
    assert!(attempts.iter().all(|a| a.status == Some(200) && a.attempt_number == 0 && a.target_url == hook.url));
    assert_eq!(attempts.iter().map(|a| a.event_count).sum::<usize>(), 250);
}

#[tokio::test]
async fn failed_deliveries_are_retried_with_the_next_attempt_number() {
    let s = sim().await;
    let hook = Receiver::start().await;
    hook.answer_next(&[Answer::Status(500)]);
    s.sim.subscribe_webhooks(DEFAULT_CLIENT_ID, &hook.url, &[Subscription::new("contact.creation")]);
    s.post(CONTACTS, json!({ "properties": { "email": "retry@example.com" } })).await;
    assert!(s.sim.wait_webhooks_idle(SETTLE).await);

    let requests = hook.requests();
    assert_eq!(requests.len(), 2);
    let (first, second) = (requests[0].events(), requests[1].events());
    assert_eq!(first[0]["attemptNumber"], 0);
    assert_eq!(second[0]["attemptNumber"], 1);
    assert_eq!(first[0]["eventId"], second[0]["eventId"], "the same batch again");
    for request in &requests {
        request.assert_signed(&hook.url, DEFAULT_CLIENT_SECRET);
    }
    let attempts = s.sim.webhook_attempts();
    let outcomes: Vec<(u32, Option<u16>)> = attempts.iter().map(|a| (a.attempt_number, a.status)).collect();
    assert_eq!(outcomes, [(0, Some(500)), (1, Some(200))]);
}

#[tokio::test]
async fn slow_receivers_time_out_and_are_retried() {
    let config = SimConfig { webhook_timeout: Duration::from_millis(200), ..SimConfig::default() };
    let s = sim_with(config).await;
    let hook = Receiver::start().await;
    hook.answer_next(&[Answer::Slow(Duration::from_secs(2))]);
    s.sim.subscribe_webhooks(DEFAULT_CLIENT_ID, &hook.url, &[Subscription::new("contact.creation")]);
    s.post(CONTACTS, json!({ "properties": { "email": "slow@example.com" } })).await;
    assert!(s.sim.wait_webhooks_idle(SETTLE).await);

    let attempts = s.sim.webhook_attempts();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].status, None);
    assert!(attempts[0].error.as_deref().unwrap().contains("timed out"), "{:?}", attempts[0]);
    assert_eq!((attempts[1].attempt_number, attempts[1].status), (1, Some(200)));
    let attempt_numbers: Vec<Value> = hook.events().iter().map(|e| e["attemptNumber"].clone()).collect();
    assert_eq!(attempt_numbers, [0, 1]);
}

#[tokio::test]
async fn unreachable_targets_are_given_up_after_the_last_retry() {
    let config = SimConfig { webhook_retry_delays: vec![Duration::from_millis(10); 3], ..SimConfig::default() };
    let s = sim_with(config).await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hubspot/webhooks", listener.local_addr().unwrap())
    };
    s.sim.subscribe_webhooks(DEFAULT_CLIENT_ID, &closed, &[Subscription::new("contact.creation")]);
    s.post(CONTACTS, json!({ "properties": { "email": "lost@example.com" } })).await;
    assert!(s.sim.wait_webhooks_idle(SETTLE).await);
    let attempts = s.sim.webhook_attempts();
    assert_eq!(attempts.iter().map(|a| a.attempt_number).collect::<Vec<_>>(), [0, 1, 2, 3]);
    assert!(attempts.iter().all(|a| a.status.is_none() && a.error.as_deref().unwrap().contains("connection failed")));

    // The queue is not stuck: later events go to the new target.
    let hook = Receiver::start().await;
    s.sim.subscribe_webhooks(DEFAULT_CLIENT_ID, &hook.url, &[Subscription::new("contact.creation")]);
    s.post(CONTACTS, json!({ "properties": { "email": "found@example.com" } })).await;
    assert!(s.sim.wait_webhooks_idle(SETTLE).await);
    assert_eq!(hook.events().len(), 1);
}

#[tokio::test]
async fn deletions_restores_and_merges_are_notified() {
    let s = sim().await;
    let hook = Receiver::start().await;
    s.sim.subscribe_webhooks(
        DEFAULT_CLIENT_ID,
        &hook.url,
        &[
            Subscription::new("contact.deletion"),
            Subscription::new("contact.restore"),
            Subscription::new("contact.merge"),
            Subscription::property("contact.propertyChange", "lastname"),
        ],
    );
    let primary = s.post(CONTACTS, json!({ "properties": { "email": "p@example.com" } })).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let merged = s
        .post(CONTACTS, json!({ "properties": { "email": "m@example.com", "firstname": "Mia", "lastname": "Merge" } }))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let deleted = s.call(Method::DELETE, &format!("{CONTACTS}/{primary}"), None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    s.sim.restore(1000, "contacts", &primary);
    s.sim.merge(1000, "contacts", &primary, &merged);
    assert!(s.sim.wait_webhooks_idle(SETTLE).await);

    let events = hook.events();
    let app_id = s.sim.app_id(DEFAULT_CLIENT_ID).to_string();
    let deletion = of_type(&events, "contact.deletion");
    assert_eq!(deletion.len(), 1, "the merged record is reported by the merge, not as a deletion");
    assert_eq!(deletion[0]["objectId"].to_string(), primary);
    assert_eq!((&deletion[0]["changeSource"], &deletion[0]["sourceId"]), (&json!("INTEGRATION"), &json!(app_id)));
    let restore = of_type(&events, "contact.restore")[0];
    assert_eq!(restore["objectId"].to_string(), primary);
    assert_eq!(restore["changeSource"], "CRM_UI");
    let merge = of_type(&events, "contact.merge")[0];
    assert_eq!(merge["objectId"].to_string(), primary);
    assert_eq!(merge["primaryObjectId"].to_string(), primary);
    assert_eq!(merge["newObjectId"].to_string(), primary);
    assert_eq!(merge["mergedObjectIds"], json!([merged.parse::<u64>().unwrap()]));
    assert_eq!(merge["numberOfPropertiesMoved"], 2, "firstname and lastname; the primary keeps its email");
    assert_eq!(merge["changeSource"], "CRM_UI");
    // Values the primary gains in a merge are property changes too.
    let lastnames: Vec<(String, &Value)> = of_type(&events, "contact.propertyChange")
        .iter()
        .map(|e| (e["objectId"].to_string(), &e["propertyValue"]))
        .collect();
    assert_eq!(lastnames, [(merged.clone(), &json!("Merge")), (primary.clone(), &json!("Merge"))]);

    let kept = s.sim.record(1000, "contacts", &primary).unwrap();
    assert_eq!((kept["archived"].clone(), kept["properties"]["firstname"].clone()), (json!(false), json!("Mia")));
    assert_eq!(s.sim.record(1000, "contacts", &merged).unwrap()["archived"], true);
}

#[tokio::test]
async fn events_reach_only_apps_installed_on_the_portal() {
    let s = sim().await;
    let hook = Receiver::start().await;
    s.sim.add_app("other-app", "other-secret");
    let answer = s
        .call(
            Method::PUT,
            "/_sim/webhooks",
            Some(json!({
                "client_id": "other-app",
                "target_url": hook.url,
                "subscriptions": [{ "subscriptionType": "contact.creation" }],
            })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let app_id = s.sim.app_id("other-app");
    assert_eq!(answer.body["appId"], app_id);
    assert_ne!(app_id, s.sim.app_id(DEFAULT_CLIENT_ID));
    let subscription_id = answer.body["subscriptions"][0]["id"].clone();

    s.post(CONTACTS, json!({ "properties": { "email": "before@example.com" } })).await;
    assert!(s.sim.wait_webhooks_idle(SETTLE).await);
    assert!(hook.requests().is_empty(), "other-app has no tokens for portal 1000 yet");

    s.sim.issue_tokens(1000, "other-app", &["crm.objects.contacts.read"]);
    s.post(CONTACTS, json!({ "properties": { "email": "after@example.com" } })).await;
    assert!(s.sim.wait_webhooks_idle(SETTLE).await);
    let requests = hook.requests();
    assert_eq!(requests.len(), 1);
    requests[0].assert_signed(&hook.url, "other-secret");
    let event = &requests[0].events()[0];
    assert_eq!(event["appId"], app_id);
    assert_eq!(event["subscriptionId"], subscription_id);
    assert_eq!(event["sourceId"], s.sim.app_id(DEFAULT_CLIENT_ID).to_string(), "written by the default app");

    let attempts = s.get("/_sim/webhooks/attempts").await;
    assert_eq!(attempts.body["results"][0]["status"], 200);
    let refused = s
        .call(
            Method::PUT,
            "/_sim/webhooks",
            Some(json!({
                "client_id": "other-app",
                "target_url": hook.url,
                "subscriptions": [{ "subscriptionType": "contact.propertyChange" }],
            })),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "propertyChange needs a propertyName");
}
