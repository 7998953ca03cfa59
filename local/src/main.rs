//! `cargo run -p hubsync-local`: hubsync and a simulated HubSpot on this machine.
//!
//! Options (environment): `HUBSYNC_LOCAL_ADDR` (127.0.0.1:8080), `HUBSYNC_SIM_ADDR`
//! (127.0.0.1:8090), `HUBSYNC_LOCAL_STATE` (`.hubsync-local`: where state is kept across
//! restarts; `memory` keeps nothing). To use a real HubSpot app instead of the simulator, set
//! `HUBSPOT_CLIENT_ID`, `HUBSPOT_CLIENT_SECRET` and `HUBSPOT_REDIRECT_URI` (all three).

use std::process::ExitCode;

use hubsync_local::{DEMO_API_KEY, LocalError, LocalOptions, STATE_VAR};

#[tokio::main]
async fn main() -> ExitCode {
    hubsync::telemetry::init_local();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("hubsync-local: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), LocalError> {
    let options = LocalOptions::from_env(|name| std::env::var(name).ok())?;
    let running = hubsync_local::start(options).await?;
    let hubspot = running.simulator.as_ref().map_or("a real HubSpot".to_string(), |s| s.base_url());
    println!("hubsync is running on {} (HubSpot: {hubspot})", running.base_url);
    println!("state:               {} ({STATE_VAR})", running.state);
    println!("demo tenant API key: {DEMO_API_KEY}");
    println!(
        "connect a portal:    curl -sL -H 'Authorization: Bearer {DEMO_API_KEY}' '{0}/oauth/install?return_to={0}/local/return'",
        running.base_url
    );
    tokio::signal::ctrl_c().await?;
    running.shutdown().await;
    Ok(())
}
