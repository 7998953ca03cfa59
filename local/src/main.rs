//! `cargo run -p hubsync-local`: hubsync and a simulated HubSpot on this machine.
//!
//! Options (environment): `HUBSYNC_LOCAL_ADDR` (127.0.0.1:8080), `HUBSYNC_SIM_ADDR`
//! (127.0.0.1:8090). To use a real HubSpot app instead of the simulator, set
//! `HUBSPOT_CLIENT_ID`, `HUBSPOT_CLIENT_SECRET` and `HUBSPOT_REDIRECT_URI`.

use hubsync::domain::Secret;
use hubsync_local::{DEMO_API_KEY, LocalOptions, RealHubSpot};

fn addr(var: &str, default: &str) -> std::net::SocketAddr {
    let value = std::env::var(var).unwrap_or_else(|_| default.to_string());
    value.parse().unwrap_or_else(|_| panic!("{var} must be an address like {default}, not `{value}`"))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    hubsync::telemetry::init_local();
    let real_hubspot = match (
        std::env::var("HUBSPOT_CLIENT_ID"),
        std::env::var("HUBSPOT_CLIENT_SECRET"),
        std::env::var("HUBSPOT_REDIRECT_URI"),
    ) {
        (Ok(client_id), Ok(secret), Ok(redirect_uri)) => {
            Some(RealHubSpot { client_id, client_secret: Secret::new(secret), redirect_uri })
        }
        _ => None,
    };
    let running = hubsync_local::start(LocalOptions {
        addr: addr("HUBSYNC_LOCAL_ADDR", "127.0.0.1:8080"),
        simulator_addr: addr("HUBSYNC_SIM_ADDR", "127.0.0.1:8090"),
        real_hubspot,
    })
    .await?;
    let hubspot = running.simulator.as_ref().map_or("a real HubSpot".to_string(), |s| s.base_url());
    println!("hubsync is running on {} (HubSpot: {hubspot})", running.base_url);
    println!("demo tenant API key: {DEMO_API_KEY}");
    println!(
        "connect a portal:    curl -sL -H 'Authorization: Bearer {DEMO_API_KEY}' '{0}/oauth/install?return_to={0}/local/return'",
        running.base_url
    );
    tokio::signal::ctrl_c().await?;
    running.shutdown().await;
    Ok(())
}
