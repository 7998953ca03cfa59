//! The HubSpot simulator against HubSpot's official Node client: starts the simulator in
//! process and runs `tests/hubspot-sim/conformance/conformance.test.mjs` (Node 20, with
//! `@hubspot/api-client` installed by `npm ci` when `node_modules` is missing).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hubspot_sim::SimConfig;

fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("hubspot-sim").join("conformance")
}

fn run(command: &mut Command, what: &str) -> Output {
    command.output().unwrap_or_else(|err| panic!("could not run {what} (are Node 20 and npm installed?): {err}"))
}

fn show(output: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_node_client_accepts_the_simulator() {
    let dir = conformance_dir();
    let sim = hubspot_sim::start(SimConfig::default()).await.expect("the simulator starts");
    let base_url = sim.base_url();

    // Node runs on a blocking thread so the simulator keeps serving on the runtime.
    let output = tokio::task::spawn_blocking(move || {
        if !dir.join("node_modules").join("@hubspot").join("api-client").exists() {
            let install = run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir), "npm ci");
            assert!(install.status.success(), "npm ci failed in {}\n{}", dir.display(), show(&install));
        }
        run(
            Command::new("node")
                .args(["--test", "conformance.test.mjs"])
                .current_dir(&dir)
                .env("HUBSPOT_SIM_URL", &base_url),
            "node --test",
        )
    })
    .await
    .expect("the Node run finished");

    assert!(output.status.success(), "the conformance suite failed\n{}", show(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("# fail 0"), "unexpected Node test output\n{}", show(&output));
    sim.shutdown().await;
}
