//! Test harness shared by the integration suites: a real local AWS (moto's server) and
//! fresh, uniquely named resources on it, so suites never see each other's data.
//!
//! The first suite that needs AWS starts moto's server (`support/moto_server.py`) on a free port,
//! with IAM enforced: the tests' setup signs as an administrator, and each function's code signs
//! as a principal whose policy is that function's in template.yaml ([`Function`]), so a call the
//! template does not allow is refused as AWS would refuse it. The server stops when the test
//! process ends. `HUBSYNC_TEST_AWS_ENDPOINT` points the suites at a moto started elsewhere instead
//! (started the same way, with the template).

use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_sqs::types::QueueAttributeName;
use hubsync::adapters::{DynamoStore, SqsQueue};

pub mod bench;
pub mod convergence;
pub mod lambda;
pub mod local;
pub mod logs;
pub mod oauth;
pub mod platform;
pub mod push;
pub mod runtime_api;
pub mod scratch;
pub mod simulation;
pub mod world;

static ENDPOINT: OnceLock<String> = OnceLock::new();

/// The URL of the local AWS emulator, starting one if needed.
pub fn aws_endpoint() -> &'static str {
    ENDPOINT.get_or_init(|| match std::env::var("HUBSYNC_TEST_AWS_ENDPOINT") {
        Ok(url) if !url.is_empty() => url,
        _ => start_moto(),
    })
}

/// moto's server, one request at a time (see the script for why).
const MOTO_SERVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/support/moto_server.py");

fn start_moto() -> String {
    start_moto_with(TEMPLATE)
}

/// The deployment's template, whose function policies the emulator enforces.
pub const TEMPLATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");

/// Starts another moto server enforcing the function policies of `template`; returns its URL.
pub fn start_moto_with(template: &str) -> String {
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    // A detached watcher stops moto once this test process is gone, so no server outlives the run.
    let script = r#"(python3 "$3" 127.0.0.1 "$1" "$4" & moto=$!
while kill -0 "$2" && kill -0 "$moto"; do sleep 1; done
kill "$moto") >/dev/null 2>&1 </dev/null &"#;
    let started = Command::new("sh")
        .args(["-c", script, "sh", &port.to_string(), &std::process::id().to_string(), MOTO_SERVER, template])
        .stdin(Stdio::null())
        .status()
        .expect("failed to start sh for moto");
    assert!(started.success(), "could not start moto: {started}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto's server did not start on port {port}: install it with `pip install 'moto[server]'`, \
             or start it yourself and set HUBSYNC_TEST_AWS_ENDPOINT"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    format!("http://127.0.0.1:{port}")
}

/// SDK configuration for the emulator as the tests' administrator (allowed everything): for
/// setting up and inspecting resources, never for running a function's code.
pub async fn aws_config() -> SdkConfig {
    aws_config_on(aws_endpoint(), ADMIN).await
}

/// The principal the tests' own setup signs as.
const ADMIN: &str = "HubsyncTestAdmin";

/// A hubsync function as template.yaml declares it: its code runs, in the tests, signed as a
/// principal with the function's own policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    OAuthCallback,
    ConsoleApi,
    PushWorker,
    WebhookReceiver,
    InboundWorker,
    Enrichment,
    CatchUp,
    BulkWorker,
}

impl Function {
    /// The function's logical id in template.yaml, which names its principal on moto.
    pub const ALL: [Function; 8] = [
        Function::OAuthCallback,
        Function::ConsoleApi,
        Function::PushWorker,
        Function::WebhookReceiver,
        Function::InboundWorker,
        Function::Enrichment,
        Function::CatchUp,
        Function::BulkWorker,
    ];

    /// The function's binary (`functions/<binary>`).
    pub fn binary(self) -> &'static str {
        match self {
            Function::OAuthCallback => "oauth-callback",
            Function::ConsoleApi => "console-api",
            Function::PushWorker => "push-worker",
            Function::WebhookReceiver => "webhook-receiver",
            Function::InboundWorker => "inbound-worker",
            Function::Enrichment => "enrichment",
            Function::CatchUp => "catch-up",
            Function::BulkWorker => "bulk-worker",
        }
    }

    pub fn logical_id(self) -> &'static str {
        match self {
            Function::OAuthCallback => "OAuthCallbackFunction",
            Function::ConsoleApi => "ConsoleApiFunction",
            Function::PushWorker => "PushWorkerFunction",
            Function::WebhookReceiver => "WebhookReceiverFunction",
            Function::InboundWorker => "InboundWorkerFunction",
            Function::Enrichment => "EnrichmentFunction",
            Function::CatchUp => "CatchUpFunction",
            Function::BulkWorker => "BulkWorkerFunction",
        }
    }
}

/// SDK configuration for the emulator as `function`'s role.
pub async fn aws_config_as(function: Function) -> SdkConfig {
    aws_config_on(aws_endpoint(), function.logical_id()).await
}

/// The access key id and secret of a principal on the tests' moto, as moto_server.py creates them.
pub fn access_key(principal: &str) -> (String, String) {
    (format!("HUBSYNC{}", principal.to_uppercase()), format!("{principal}-secret"))
}

/// SDK configuration for the moto at `endpoint`, signed as `principal`, in one region.
pub async fn aws_config_on(endpoint: &str, principal: &str) -> SdkConfig {
    let (key_id, secret) = access_key(principal);
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(key_id, secret, None, None, "hubsync-tests"))
        .load()
        .await
}

/// A name no other test uses.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A new, empty table laid out as template.yaml declares it.
pub async fn dynamo_store() -> DynamoStore {
    let client = aws_sdk_dynamodb::Client::new(&aws_config().await);
    let table = unique_name("hubsync");
    DynamoStore::create_table(&client, &table).await.expect("create table on moto");
    DynamoStore::new(client, table)
}

/// A new queue with its dead-letter queue, redriving after `max_receives` receives, named
/// `hubsync-<id>-<role>` and `hubsync-<id>-<role>-dlq`: `role` is `push`, `inbound` or `bulk`
/// for the queues of that name in template.yaml, whose policies moto matches by these names.
pub async fn sqs_queue_with_dlq(role: &str, max_receives: u32, visibility_timeout: Duration) -> (SqsQueue, SqsQueue) {
    let client = aws_sdk_sqs::Client::new(&aws_config().await);
    let name = format!("{}-{role}", unique_name("hubsync"));
    let dlq_url = client.create_queue().queue_name(format!("{name}-dlq")).send().await.expect("create dlq");
    let dlq_url = dlq_url.queue_url().expect("dlq url").to_string();
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("dlq attributes")
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .expect("dlq arn");
    let redrive = serde_json::json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives.to_string() });
    let url = client
        .create_queue()
        .queue_name(&name)
        .attributes(QueueAttributeName::VisibilityTimeout, visibility_timeout.as_secs().to_string())
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .expect("create queue")
        .queue_url()
        .expect("queue url")
        .to_string();
    (SqsQueue::new(client.clone(), url), SqsQueue::new(client, dlq_url))
}
