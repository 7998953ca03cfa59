//! The console API against its own OpenAPI document, by schemathesis (PyPI): every documented
//! operation is called with generated input, valid and invalid, on the local runner, and every
//! answer must be what the document says: no server error, a documented status code and
//! content type, a body that matches the schema.
//!
//! `bash tests/run.sh` installs schemathesis; elsewhere `pip install 'schemathesis==4.32.5'`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hubspot_sim::ALL_SCOPES;
use hubsync_local::{DEMO_API_KEY, LOCAL_ADMIN_API_KEY};
use hubsync_tests::local::{DemoConsole, install_demo_portal, start_local};
use serde_json::{Value, json};

const SCHEMATHESIS_VERSION: &str = "4.32.5";

/// A run takes about 20 s on a 2-core machine; beyond this it is stuck.
const TIME_LIMIT: Duration = Duration::from_secs(300);

/// schemathesis's settings. `${NAME}` is taken from the environment of the run.
const CONFIG: &str = r#"
# The same cases on every run, one request at a time, nothing kept between runs.
workers = 1
headers = { Authorization = "Bearer ${HUBSYNC_API_KEY}" }

[generation]
deterministic = true
max-examples = 50
database = "none"

[cache]
enabled = false

[checks]
enabled = false
not_a_server_error.enabled = true
status_code_conformance.enabled = true
content_type_conformance.enabled = true
response_schema_conformance.enabled = true

# Real connections, so that requests get past "not found": one for every operation but the
# uninstall, which has its own.
[parameters]
"path.connection_id" = "${HUBSYNC_CONNECTION}"

[[operations]]
include-operation-id = "uninstall"
parameters = { "path.connection_id" = "${HUBSYNC_CONNECTION_TO_UNINSTALL}" }

# The admin API, with the deployment's admin key: its answers are held to the document too.
[[operations]]
include-tag = "admin"
headers = { Authorization = "Bearer ${HUBSYNC_ADMIN_KEY}" }
"#;

#[tokio::test(flavor = "multi_thread")]
async fn the_console_api_answers_as_its_openapi_document_says() {
    schemathesis_command();
    let local = start_local().await;
    let base = local.base_url.clone();
    let connection = connection_id(&install_demo_portal(&base).await);
    // The next install lands on the portal added last: a second connection, for the uninstall.
    let simulator = local.simulator.as_ref().expect("the simulator runs");
    simulator.add_portal(2000, ALL_SCOPES);
    let to_uninstall = connection_id(&install_demo_portal(&base).await);
    // A saved config takes the sync and full-sync routes past "configure it first".
    let config = json!({ "version": 0, "config": {
        "objects": { "contacts": { "match_key": { "kind": "email" }, "write_mode": "upsert", "fields": [
            { "platform_field": "first_name", "hubspot_property": "firstname", "direction": "both", "platform_type": "string" } ] } },
        "options": { "webhooks_enabled": false, "data_in_enabled": true, "ingest_url": format!("{base}/local/platform/ingest") } } });
    let console = DemoConsole::new(&base);
    let saved = console.send(reqwest::Method::PUT, &format!("/connections/{connection}/config"), &config).await;
    assert_eq!(saved.status(), 200, "{}", saved.text().await.unwrap());

    let env = [
        ("HUBSYNC_API_KEY", DEMO_API_KEY.to_string()),
        ("HUBSYNC_ADMIN_KEY", LOCAL_ADMIN_API_KEY.to_string()),
        ("HUBSYNC_CONNECTION", connection.clone()),
        ("HUBSYNC_CONNECTION_TO_UNINSTALL", to_uninstall.clone()),
    ];
    // The tenant's routes first: the admin run may revoke the demo tenant's key, as it should.
    schemathesis_passes(&base, "--exclude-tag", &env).await;

    // The ids above were the ones used: the uninstall reached its own connection, and only it.
    let gone = console.get(&format!("/connections/{to_uninstall}")).await;
    assert_eq!(gone["status"], "disabled", "{gone}");
    let kept = console.get(&format!("/connections/{connection}")).await;
    assert_eq!(kept["status"], "active", "{kept}");

    schemathesis_passes(&base, "--include-tag", &env).await;
    local.shutdown().await;
}

/// Runs schemathesis on the operations tagged `admin` (`--include-tag`) or on the others
/// (`--exclude-tag`), and requires that every answer is as documented.
async fn schemathesis_passes(base: &str, admin_selection: &str, env: &[(&str, String)]) {
    let mut schemathesis = schemathesis_command();
    let workdir = std::env::temp_dir().join(hubsync_tests::unique_name("hubsync-schemathesis"));
    std::fs::create_dir(&workdir).unwrap();
    std::fs::write(workdir.join("schemathesis.toml"), CONFIG).unwrap();
    schemathesis.current_dir(&workdir).args([
        "--config-file",
        "schemathesis.toml",
        "run",
        "--no-color",
        admin_selection,
        "admin",
        &format!("{base}/openapi.json"),
    ]);
    schemathesis.envs(env.iter().map(|(name, value)| (*name, value.as_str())));
    let started = Instant::now();
    let (passed, report) =
        tokio::task::spawn_blocking(move || run_with_time_limit(schemathesis, &workdir)).await.unwrap();
    assert!(
        passed,
        "schemathesis ({admin_selection} admin) found answers that differ from the OpenAPI document:\n{report}"
    );
    println!("schemathesis ({admin_selection} admin) passed in {:.0?}:\n{report}", started.elapsed());
}

fn connection_id(install: &Value) -> String {
    install["connection_id"].as_str().unwrap_or_else(|| panic!("the demo portal installs: {install}")).to_string()
}

/// `schemathesis`, checked to be the pinned version, which the settings above are written for.
fn schemathesis_command() -> Command {
    let install = format!("install it with `pip install 'schemathesis=={SCHEMATHESIS_VERSION}'`");
    let version = match Command::new("schemathesis").arg("--version").output() {
        Ok(output) => String::from_utf8_lossy(&output.stdout).trim().to_string(),
        Err(err) => {
            panic!("schemathesis is needed to test the console API against its OpenAPI document ({err}): {install}")
        }
    };
    assert!(
        version.ends_with(&format!("version {SCHEMATHESIS_VERSION}")),
        "schemathesis {SCHEMATHESIS_VERSION} is needed, found `{version}`: {install}"
    );
    Command::new("schemathesis")
}

/// Runs the command in `workdir` (removed afterwards), stopping it after [`TIME_LIMIT`];
/// returns whether it succeeded, and what it printed.
fn run_with_time_limit(mut command: Command, workdir: &Path) -> (bool, String) {
    let output_path: PathBuf = workdir.join("output.txt");
    let output = std::fs::File::create(&output_path).unwrap();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(output.try_clone().unwrap())
        .stderr(output)
        .spawn()
        .expect("schemathesis starts");
    let deadline = Instant::now() + TIME_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut report = std::fs::read_to_string(&output_path).unwrap_or_default();
    std::fs::remove_dir_all(workdir).unwrap();
    if status.is_none() {
        report.push_str(&format!("\nstopped after {TIME_LIMIT:?}"));
    }
    (status.is_some_and(|s| s.success()), report)
}
