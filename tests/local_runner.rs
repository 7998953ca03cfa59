//! The README's walkthrough, on the local runner: connect a simulated portal, save a mapping and
//! push a change, over real HTTP, with no AWS at all.

use hubsync_local::{LocalError, LocalOptions};
use hubsync_tests::local::{DemoConsole, install_demo_portal, start_local};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn a_newcomer_connects_a_simulated_portal_saves_a_mapping_and_pushes_a_contact() {
    let local = start_local().await;
    let base = &local.base_url;
    let http = reqwest::Client::new();
    let console = DemoConsole::new(base);

    let outcome = install_demo_portal(base).await;
    assert_eq!(outcome["hubsync_status"], "connected", "{outcome}");
    let connection = outcome["connection_id"].as_str().unwrap().to_string();

    let listed = console.get("/connections").await;
    assert_eq!(listed["connections"][0]["id"], connection.as_str());

    let config = json!({
        "version": 0,
        "config": { "objects": { "contacts": {
            "match_key": { "kind": "email" },
            "write_mode": "upsert",
            "fields": [ { "platform_field": "first_name", "hubspot_property": "firstname", "direction": "out", "platform_type": "string" } ]
        } } }
    });
    let saved = console.send(Method::PUT, &format!("/connections/{connection}/config"), &config).await;
    assert_eq!(saved.status(), 200);
    assert_eq!(saved.json::<Value>().await.unwrap()["version"], 1);

    // "Sync with HubSpot": the in-process push worker takes it from the queue to the portal.
    let change = json!({ "version": 1, "object": "contact", "record_key": "ada@example.com",
        "fields": { "first_name": "Ada" }, "changed_at": "2026-01-01T12:00:00Z" });
    let queued = console.send(Method::POST, &format!("/connections/{connection}/sync"), &change).await;
    assert_eq!(queued.status(), 202);
    let mut runs = Value::Null;
    for _ in 0..100 {
        runs = console.get(&format!("/connections/{connection}/runs")).await;
        if runs["runs"].as_array().is_some_and(|r| !r.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let sim = local.simulator.as_ref().unwrap().base_url();
    let contacts: Value =
        http.get(format!("{sim}/_sim/portals/1000/objects/contacts")).send().await.unwrap().json().await.unwrap();
    assert!(contacts.to_string().contains("\"firstname\":\"Ada\""), "{contacts}");

    // Take first names back in, delivered to the local stand-in for the platform.
    let config = json!({
        "version": 1,
        "config": { "objects": { "contacts": {
            "match_key": { "kind": "email" },
            "write_mode": "upsert",
            "fields": [ { "platform_field": "first_name", "hubspot_property": "firstname", "direction": "both", "platform_type": "string" } ]
        } }, "options": { "webhooks_enabled": true, "data_in_enabled": true, "ingest_url": format!("{base}/local/platform/ingest"),
                          "bidirectional_counter_property": "platform_changed" } }
    });
    let saved = console.send(Method::PUT, &format!("/connections/{connection}/config"), &config).await;
    assert_eq!(saved.status(), 200, "{}", saved.text().await.unwrap());

    // Someone renames Ada in HubSpot: the webhook brings it to the platform.
    let ada =
        contacts["results"].as_array().unwrap().iter().find(|c| c["properties"]["email"] == "ada@example.com").unwrap()
            ["id"]
            .as_str()
            .unwrap()
            .to_string();
    let edit = http
        .patch(format!("{sim}/_sim/portals/1000/objects/contacts/{ada}"))
        .json(&json!({ "properties": { "firstname": "Augusta" } }))
        .send()
        .await
        .unwrap();
    assert!(edit.status().is_success());
    let mut received = Value::Null;
    for _ in 0..100 {
        received = http.get(format!("{base}/local/platform/received")).send().await.unwrap().json().await.unwrap();
        if received.to_string().contains("Augusta") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // (Saving the mapping also starts filling the new inbound field in for existing contacts: a
    // backfill of Ada may arrive before or after the rename.)
    let records = received["records"].as_array().unwrap();
    assert!(records.iter().any(|r| r["fields"]["first_name"] == "Augusta"), "{received}");
    assert!(records.iter().all(|r| r["record_key"] == "ada@example.com"), "{received}");
    assert_eq!(runs["runs"][0]["counts"]["created"], 1, "{runs}");

    // The bidirectional flow: a HubSpot workflow bumps "Platform Changed" on Ada; the app is
    // subscribed to it (the runner keeps the subscriptions in line with the configs), so the
    // webhook comes without any extra step.
    let attempts = || async {
        let listed: Value =
            http.get(format!("{sim}/_sim/webhooks/attempts")).send().await.unwrap().json().await.unwrap();
        listed["results"].as_array().unwrap().clone()
    };
    let before = attempts().await.len();
    let bump = http
        .patch(format!("{sim}/_sim/portals/1000/objects/contacts/{ada}"))
        .json(&json!({ "properties": { "platform_changed": "1" } }))
        .send()
        .await
        .unwrap();
    assert!(bump.status().is_success(), "the counter property exists: {}", bump.text().await.unwrap());
    let mut after = vec![];
    for _ in 0..100 {
        after = attempts().await;
        if after.len() > before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let sent = after.get(before).expect("a webhook for the counter");
    assert_eq!((sent["event_count"].clone(), sent["status"].clone()), (json!(1), json!(200)), "{sent}");
    local.shutdown().await;
}

#[tokio::test]
async fn a_busy_port_is_named_with_the_variable_that_moves_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap();
    let free = "127.0.0.1:0".parse().unwrap();
    for (options, var) in [
        (LocalOptions { addr: busy, simulator_addr: free, real_hubspot: None }, "HUBSYNC_LOCAL_ADDR"),
        (LocalOptions { addr: free, simulator_addr: busy, real_hubspot: None }, "HUBSYNC_SIM_ADDR"),
    ] {
        let Err(err) = hubsync_local::start(options).await else { panic!("started on a port in use") };
        assert!(matches!(err, LocalError::AddressInUse { .. }), "{err}");
        let message = err.to_string();
        assert!(message.contains(&busy.to_string()) && message.contains(var), "{message}");
    }
}
