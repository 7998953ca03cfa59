//! A simulator that keeps its state in a file: started again on the file, it knows its portals,
//! records, lists, associations, tokens and webhook subscriptions as they were.

mod common;

use std::path::{Path, PathBuf};

use common::reply;
use hubspot_sim::{
    ALL_SCOPES, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_PORTAL, RunningSimulator, SimConfig, StateFile,
    StateFileError, Subscription,
};
use reqwest::StatusCode;
use serde_json::json;

/// A directory of its own under the system's temporary directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let path = std::env::temp_dir().join(format!("hubspot-sim-state-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).unwrap();
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn start_kept(path: &Path) -> RunningSimulator {
    let state = StateFile::open(path).expect("a readable state file");
    hubspot_sim::start_kept(SimConfig::default(), "127.0.0.1:0".parse().unwrap(), state).await.unwrap()
}

#[tokio::test]
async fn a_simulator_started_again_on_its_state_file_knows_what_it_knew() {
    let dir = Scratch::new();
    let path = dir.0.join("hubspot-sim.json");

    let sim = start_kept(&path).await;
    sim.add_portal(2000, &["crm.objects.contacts.read"]);
    let tokens = sim.issue_tokens(DEFAULT_PORTAL, DEFAULT_CLIENT_ID, ALL_SCOPES);
    let ada = sim.seed(DEFAULT_PORTAL, "contacts", json!({ "email": "ada@example.com", "firstname": "Ada" }));
    sim.edit_as_user(DEFAULT_PORTAL, "contacts", &ada, json!({ "firstname": "Augusta" }));
    let acme = sim.seed(DEFAULT_PORTAL, "companies", json!({ "name": "Acme", "domain": "acme.example" }));
    sim.associate(DEFAULT_PORTAL, "contacts", &ada, "companies", &acme);
    let list = sim.create_list(DEFAULT_PORTAL, "Customers", "contacts", "MANUAL");
    let subscription_ids = sim.subscribe_webhooks(
        DEFAULT_CLIENT_ID,
        "http://127.0.0.1:9/webhooks",
        &[Subscription::new("contact.creation")],
    );
    let ada_before = sim.record(DEFAULT_PORTAL, "contacts", &ada).unwrap();
    let issued_before = sim.issued_tokens();
    sim.shutdown().await;

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the file holds tokens: its owner's only");
    }

    let sim = start_kept(&path).await;
    assert_eq!(sim.record(DEFAULT_PORTAL, "contacts", &ada).unwrap(), ada_before, "values, history, version");
    assert_eq!(sim.associations(DEFAULT_PORTAL, "contacts", &ada, "companies"), vec![acme.clone()]);
    assert!(sim.issued_tokens() == issued_before, "the tokens handed out before are remembered");

    // The tokens issued before still work, the access token and the refresh token.
    let http = reqwest::Client::new();
    let read = http
        .get(format!("{}/crm/v3/objects/contacts/{ada}", sim.base_url()))
        .bearer_auth(&tokens.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    let refresh = [
        ("grant_type", "refresh_token"),
        ("client_id", DEFAULT_CLIENT_ID),
        ("client_secret", DEFAULT_CLIENT_SECRET),
        ("refresh_token", tokens.refresh_token.as_str()),
    ];
    let refreshed = reply(http.post(format!("{}/oauth/v1/token", sim.base_url())).form(&refresh).send().await.unwrap());
    let refreshed = refreshed.await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);

    // The list, the other portal and the subscriptions (same ids) are there; new records get
    // new ids.
    let lists = reply(
        http.get(format!("{}/crm/v3/lists/{list}", sim.base_url()))
            .bearer_auth(&tokens.access_token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(lists.status, StatusCode::OK, "{}", lists.body);
    assert_eq!(lists.body["list"]["name"], "Customers");
    sim.issue_tokens(2000, DEFAULT_CLIENT_ID, &["crm.objects.contacts.read"]);
    let again = sim.subscribe_webhooks(
        DEFAULT_CLIENT_ID,
        "http://127.0.0.1:9/webhooks",
        &[Subscription::new("contact.creation")],
    );
    assert_eq!(again, subscription_ids);
    let grace = sim.seed(DEFAULT_PORTAL, "contacts", json!({ "email": "grace@example.com" }));
    assert!(grace != ada && grace != acme, "a new id, {grace}");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_state_file_that_is_not_one_is_refused_with_its_path() {
    let dir = Scratch::new();
    let path = dir.0.join("hubspot-sim.json");
    std::fs::write(&path, "{ not json").unwrap();
    let Err(err) = StateFile::open(&path) else { panic!("read a broken state file") };
    assert!(matches!(err, StateFileError::Unreadable { .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
}

#[tokio::test]
async fn a_missing_state_file_starts_a_new_simulator_and_is_created_at_shutdown() {
    let dir = Scratch::new();
    let path = dir.0.join("hubspot-sim.json");
    let sim = start_kept(&path).await;
    assert_eq!(sim.records(DEFAULT_PORTAL, "contacts"), Vec::<serde_json::Value>::new());
    sim.seed(DEFAULT_PORTAL, "contacts", json!({ "email": "ada@example.com" }));
    sim.shutdown().await;
    let sim = start_kept(&path).await;
    assert_eq!(sim.records(DEFAULT_PORTAL, "contacts").len(), 1);
    sim.shutdown().await;
}
