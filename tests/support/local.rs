//! The local runner, started on free ports, and the README's install step against it.

use hubsync_local::{DEMO_API_KEY, LocalOptions, RunningLocal};
use serde_json::Value;

pub async fn start_local() -> RunningLocal {
    hubsync_local::start(LocalOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        simulator_addr: "127.0.0.1:0".parse().unwrap(),
        real_hubspot: None,
    })
    .await
    .expect("the local runner starts")
}

/// `curl -sL -H 'Authorization: Bearer …' '{base}/oauth/install?return_to={base}/local/return'`:
/// the browser's trip through the simulated consent page; returns what the return page shows.
pub async fn install_demo_portal(base_url: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{base_url}/oauth/install?return_to={base_url}/local/return"))
        .bearer_auth(DEMO_API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
