//! The local runner, started on free ports, and the README's install step against it.

use hubsync_local::{DEMO_API_KEY, LocalOptions, RunningLocal};
use serde_json::Value;

use crate::logs::{SecretKind, SecretWatch};

pub async fn start_local() -> LocalRunner {
    let secrets = SecretWatch::start();
    let running = hubsync_local::start(LocalOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        simulator_addr: "127.0.0.1:0".parse().unwrap(),
        real_hubspot: None,
    })
    .await
    .expect("the local runner starts");
    let app = running.deps.secrets.app_secrets().await.expect("the local runner's secrets");
    secrets.register(SecretKind::ClientSecret, app.client_secret.expose());
    secrets.register(SecretKind::DeliverySigningSecret, app.delivery_signing_secret.expose());
    secrets.register(SecretKind::TokenEncryptionKey, app.token_encryption_key.expose());
    secrets.register(SecretKind::ConsoleApiKey, DEMO_API_KEY);
    LocalRunner { running: Some(running), secrets }
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
