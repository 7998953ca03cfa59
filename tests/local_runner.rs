//! The README's walkthrough, on the local runner: connect a simulated portal, save a mapping and
//! push a change, over real HTTP, with no AWS at all; then the same runner stopped and started
//! again on its state directory, where it finds everything as it was.

use hubsync_local::StateLocation::Memory;
use hubsync_local::{LocalError, LocalOptions, StateLocation};
use hubsync_tests::local::{DemoConsole, install_demo_portal, start_local, start_local_in};
use hubsync_tests::scratch::ScratchDir;
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
        (LocalOptions { addr: busy, simulator_addr: free, real_hubspot: None, state: Memory }, "HUBSYNC_LOCAL_ADDR"),
        (LocalOptions { addr: free, simulator_addr: busy, real_hubspot: None, state: Memory }, "HUBSYNC_SIM_ADDR"),
    ] {
        let Err(err) = hubsync_local::start(options).await else { panic!("started on a port in use") };
        assert!(matches!(err, LocalError::AddressInUse { .. }), "{err}");
        let message = err.to_string();
        assert!(message.contains(&busy.to_string()) && message.contains(var), "{message}");
    }
}

/// A mapping that takes first names out to HubSpot contacts, saved over `version`.
fn first_names_out(version: u64) -> Value {
    json!({
        "version": version,
        "config": { "objects": { "contacts": {
            "match_key": { "kind": "email" },
            "write_mode": "upsert",
            "fields": [ { "platform_field": "first_name", "hubspot_property": "firstname", "direction": "out", "platform_type": "string" } ]
        } } }
    })
}

/// The connection's runs, once there are at least `count` (the push worker runs in the background).
async fn runs_once_there_are(console: &DemoConsole, connection: &str, count: usize) -> Value {
    let mut runs = Value::Null;
    for _ in 0..100 {
        runs = console.get(&format!("/connections/{connection}/runs")).await;
        if runs["runs"].as_array().is_some_and(|r| r.len() >= count) {
            return runs;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("fewer than {count} runs after 10 s: {runs}");
}

#[tokio::test]
async fn a_restarted_runner_finds_its_connection_config_and_portal_and_still_pushes() {
    let state = ScratchDir::new("local-state");

    let local = start_local_in(state.path()).await;
    let console = DemoConsole::new(&local.base_url);
    let outcome = install_demo_portal(&local.base_url).await;
    assert_eq!(outcome["hubsync_status"], "connected", "{outcome}");
    let connection = outcome["connection_id"].as_str().unwrap().to_string();
    let saved = console.send(Method::PUT, &format!("/connections/{connection}/config"), &first_names_out(0)).await;
    assert_eq!(saved.status(), 200);
    let saved: Value = saved.json().await.unwrap();
    local.shutdown().await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let secrets = std::fs::metadata(state.join(hubsync_local::SECRETS_FILE)).unwrap();
        assert_eq!(secrets.permissions().mode() & 0o777, 0o600, "the local secrets are their owner's only");
    }

    // Started again (on other ports): the demo key, the connection and its config are there, and
    // a push reaches the simulated portal: the stored tokens still decrypt, and the simulator
    // still knows the portal and the tokens it issued.
    let local = start_local_in(state.path()).await;
    let console = DemoConsole::new(&local.base_url);
    let listed = console.get("/connections").await;
    assert_eq!(listed["connections"].as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed["connections"][0]["id"], connection.as_str(), "{listed}");
    let config = console.get(&format!("/connections/{connection}/config")).await;
    assert_eq!(config["version"], 1, "{config}");
    assert_eq!(config, saved);
    let change = json!({ "version": 1, "object": "contact", "record_key": "ada@example.com",
        "fields": { "first_name": "Ada" }, "changed_at": "2026-01-01T12:00:00Z" });
    let queued = console.send(Method::POST, &format!("/connections/{connection}/sync"), &change).await;
    assert_eq!(queued.status(), 202);
    let runs = runs_once_there_are(&console, &connection, 1).await;
    assert_eq!(runs["runs"][0]["counts"]["created"], 1, "{runs}");
    local.shutdown().await;

    // Once more: the run and the contact the push created are still there.
    let local = start_local_in(state.path()).await;
    let console = DemoConsole::new(&local.base_url);
    let runs = console.get(&format!("/connections/{connection}/runs")).await;
    assert_eq!(runs["runs"][0]["counts"]["created"], 1, "{runs}");
    let contacts = local.simulator.as_ref().unwrap().records(1000, "contacts");
    let ada: Vec<&Value> = contacts.iter().filter(|c| c["properties"]["email"] == "ada@example.com").collect();
    assert_eq!(ada.len(), 1, "{contacts:?}");
    assert_eq!(ada[0]["properties"]["firstname"], "Ada");
    local.shutdown().await;
}

#[tokio::test]
async fn a_second_runner_on_the_same_state_is_refused_with_the_file_and_the_variable() {
    let state = ScratchDir::new("local-state");
    let first = start_local_in(state.path()).await;
    let free = "127.0.0.1:0".parse().unwrap();
    let options = LocalOptions {
        addr: free,
        simulator_addr: free,
        real_hubspot: None,
        state: StateLocation::Directory(state.path().to_path_buf()),
    };
    let Err(err) = hubsync_local::start(options).await else { panic!("two runners on one state") };
    assert!(matches!(err, LocalError::StateInUse { .. }), "{err}");
    let message = err.to_string();
    let store_file = state.join(hubsync_local::STORE_FILE);
    assert!(message.contains(&store_file.display().to_string()), "{message}");
    assert!(message.contains("HUBSYNC_LOCAL_STATE"), "{message}");
    first.shutdown().await;
}
