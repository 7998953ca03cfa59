//! The README's walkthrough, on the local runner: connect a simulated portal and save a mapping,
//! over real HTTP, with no AWS at all.

use hubsync_local::{DEMO_API_KEY, LocalOptions};
use serde_json::{Value, json};

#[tokio::test]
async fn a_newcomer_connects_a_simulated_portal_and_saves_a_mapping() {
    let local = hubsync_local::start(LocalOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        simulator_addr: "127.0.0.1:0".parse().unwrap(),
        real_hubspot: None,
    })
    .await
    .unwrap();
    let base = &local.base_url;
    let http = reqwest::Client::new();

    // curl -sL -H 'Authorization: Bearer …' '{base}/oauth/install?return_to={base}/local/return'
    let outcome: Value = http
        .get(format!("{base}/oauth/install?return_to={base}/local/return"))
        .bearer_auth(DEMO_API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(outcome["hubsync_status"], "connected", "{outcome}");
    let connection = outcome["connection_id"].as_str().unwrap().to_string();

    let listed: Value =
        http.get(format!("{base}/connections")).bearer_auth(DEMO_API_KEY).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["connections"][0]["id"], connection.as_str());

    let config = json!({
        "version": 0,
        "config": { "objects": { "contacts": {
            "match_key": { "kind": "email" },
            "write_mode": "upsert",
            "fields": [ { "platform_field": "first_name", "hubspot_property": "firstname", "direction": "out", "platform_type": "string" } ]
        } } }
    });
    let saved = http
        .put(format!("{base}/connections/{connection}/config"))
        .bearer_auth(DEMO_API_KEY)
        .json(&config)
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), 200);
    assert_eq!(saved.json::<Value>().await.unwrap()["version"], 1);
    local.shutdown().await;
}
