//! `hubspot-sim [--host 127.0.0.1] [--port 8090] [--state FILE]`: serves the simulator until
//! Ctrl-C; with `--state`, its state is kept in FILE across restarts.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use hubspot_sim::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_PORTAL, SimConfig, StateFile};

const USAGE: &str = "usage: hubspot-sim [--host 127.0.0.1] [--port 8090] [--state FILE]";

fn parse_args() -> Result<(SocketAddr, Option<PathBuf>), String> {
    let mut host: IpAddr = [127, 0, 0, 1].into();
    let mut port: u16 = 8090;
    let mut state = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name.to_string(), Some(value.to_string())),
            None => (arg, None),
        };
        let mut value = || inline.clone().or_else(|| args.next()).ok_or(format!("{name} needs a value\n{USAGE}"));
        match name.as_str() {
            "--host" => host = value()?.parse().map_err(|e| format!("--host: {e}"))?,
            "--port" => port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--state" => state = Some(PathBuf::from(value()?)),
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok((SocketAddr::new(host, port), state))
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,hubspot_sim=debug")),
        )
        .init();
    let (addr, state) = match parse_args() {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let state = match state.map(StateFile::open).transpose() {
        Ok(state) => state,
        Err(err) => {
            eprintln!("hubspot-sim: {err}");
            std::process::exit(1);
        }
    };
    let started = match state {
        Some(state) => hubspot_sim::start_kept(SimConfig::default(), addr, state).await,
        None => hubspot_sim::start_on(SimConfig::default(), addr).await,
    };
    let sim = match started {
        Ok(sim) => sim,
        Err(err) => {
            eprintln!("hubspot-sim: cannot listen on {addr}: {err}");
            std::process::exit(1);
        }
    };
    println!("hubspot-sim listening on {}", sim.base_url());
    println!("  app: client_id={DEFAULT_CLIENT_ID} client_secret={DEFAULT_CLIENT_SECRET}");
    println!("  portal: {DEFAULT_PORTAL} (all CRM scopes); controls under {}/_sim/", sim.base_url());
    tracing::info!(base_url = %sim.base_url(), client_id = DEFAULT_CLIENT_ID, "hubspot-sim started");
    let _ = tokio::signal::ctrl_c().await;
    sim.shutdown().await;
}
