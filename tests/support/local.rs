//! The local runner, started on free ports, and the README's install step against it.

use std::path::Path;

use hubsync_local::{DEMO_API_KEY, LocalOptions, RunningLocal, StateLocation};
use serde_json::Value;

use crate::logs::{SecretKind, SecretWatch};

/// The local runner keeping nothing: each start is a new deployment.
pub async fn start_local() -> LocalRunner {
    start_local_with(StateLocation::Memory).await
}

/// The local runner keeping its state in `dir`, as `cargo run -p hubsync-local` does.
pub async fn start_local_in(dir: &Path) -> LocalRunner {
    start_local_with(StateLocation::Directory(dir.to_path_buf())).await
}

async fn start_local_with(state: StateLocation) -> LocalRunner {
    let secrets = SecretWatch::start();
    let running = hubsync_local::start(free_ports(state)).await.expect("the local runner starts");
    let app = running.deps.secrets.app_secrets().await.expect("the local runner's secrets");
    secrets.register(SecretKind::ClientSecret, app.client_secret.expose());
    secrets.register(SecretKind::DeliverySigningSecret, app.delivery_signing_secret.expose());
    secrets.register(
        SecretKind::TokenEncryptionKey,
        app.token_encryption_key.as_ref().expect("the local runner's master key").expose(),
    );
    secrets.register(SecretKind::ConsoleApiKey, DEMO_API_KEY);
    LocalRunner { running: Some(running), secrets }
}

/// The local runner without the log capture, for benchmarks: capturing every line in memory
/// would weigh on the memory and CPU they measure.
pub async fn start_uncaptured() -> RunningLocal {
    hubsync_local::start(free_ports(StateLocation::Memory)).await.expect("the local runner starts")
}

fn free_ports(state: StateLocation) -> LocalOptions {
    LocalOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        simulator_addr: "127.0.0.1:0".parse().unwrap(),
        real_hubspot: None,
        state,
    }
}

/// The running local runner; when the test is done with it, its secrets must not appear in the
/// lines logged while it ran.
pub struct LocalRunner {
    /// Taken by `shutdown`.
    running: Option<RunningLocal>,
    secrets: SecretWatch,
}

impl LocalRunner {
    pub async fn shutdown(mut self) {
        self.register_issued_tokens();
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }

    fn register_issued_tokens(&self) {
        if let Some(simulator) = self.running.as_ref().and_then(|running| running.simulator.as_ref()) {
            self.secrets.register_issued_tokens(simulator);
        }
    }
}

impl std::ops::Deref for LocalRunner {
    type Target = RunningLocal;

    fn deref(&self) -> &RunningLocal {
        self.running.as_ref().expect("the local runner is running until shut down")
    }
}

impl Drop for LocalRunner {
    fn drop(&mut self) {
        self.register_issued_tokens();
        self.secrets.assert_no_leaks();
    }
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

/// The local runner's console API, called as the demo tenant.
pub struct DemoConsole {
    http: reqwest::Client,
    base_url: String,
}

impl DemoConsole {
    pub fn new(base_url: &str) -> DemoConsole {
        DemoConsole { http: reqwest::Client::new(), base_url: base_url.to_string() }
    }

    /// `GET {base}{path}`, read as JSON.
    pub async fn get(&self, path: &str) -> Value {
        let request = self.http.get(format!("{}{path}", self.base_url)).bearer_auth(DEMO_API_KEY);
        request.send().await.unwrap().json().await.unwrap()
    }

    /// `{method} {base}{path}` with a JSON body.
    pub async fn send(&self, method: reqwest::Method, path: &str, body: &Value) -> reqwest::Response {
        let request = self.http.request(method, format!("{}{path}", self.base_url)).bearer_auth(DEMO_API_KEY);
        request.json(body).send().await.unwrap()
    }
}
