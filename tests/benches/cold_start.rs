//! Cold-start benchmark: each release function binary started as Lambda starts it, with the
//! Runtime API served by an emulator (`support/runtime_api.rs`) and AWS by moto's server.
//!
//! ```sh
//! cargo build --release -p oauth-callback -p console-api -p push-worker -p webhook-receiver \
//!   -p inbound-worker -p bulk-worker -p enrichment -p catch-up
//! cargo bench -p hubsync-tests --bench cold_start     # HUBSYNC_BENCH_COLD_STARTS=20
//! ```
//!
//! For each binary in the release target directory: its size, and the time from spawning the
//! process to its first `GET /2018-06-01/runtime/invocation/next` (the end of its init: settings
//! read, AWS clients built, Lambda runtime started), over `HUBSYNC_BENCH_COLD_STARTS` starts
//! after one unmeasured start (which loads the file into the page cache). Each start then
//! serves one invocation (a request that reads DynamoDB or Secrets Manager, an SQS batch, a
//! schedule), so a binary that ignores the local endpoint fails here instead of looking fast.
//!
//! Lambda adds to this what happens before the process starts (fetching and unpacking the
//! code, starting the micro-VM), which no local measurement sees.
//!
//! Other binaries: `HUBSYNC_BENCH_BINARY_DIR` names a directory holding one binary per function
//! (by its name), and `HUBSYNC_BENCH_RUNNER` a command that runs each, e.g. the arm64 artifacts
//! under user-mode emulation on an x86_64 machine (BENCHMARKS.md, "As shipped: arm64 zips"):
//!
//! ```sh
//! HUBSYNC_BENCH_BINARY_DIR=/tmp/arm64 HUBSYNC_BENCH_RUNNER='qemu-aarch64 -L /usr/aarch64-linux-gnu' \
//!   cargo bench -p hubsync-tests --bench cold_start
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client as DynamoClient;
use hubsync::adapters::DynamoStore;
use hubsync_tests::bench::env;
use hubsync_tests::lambda::Event;
use hubsync_tests::runtime_api::{Outcome, RuntimeApi};
use hubsync_tests::{Function, access_key, aws_config, aws_endpoint, unique_name};
use serde_json::{Value, json};

/// Every Lambda function of template.yaml, by binary name.
const FUNCTIONS: [&str; 8] = [
    "oauth-callback",
    "console-api",
    "webhook-receiver",
    "push-worker",
    "inbound-worker",
    "bulk-worker",
    "enrichment",
    "catch-up",
];
/// template.yaml's MemorySize, as Lambda tells the runtime.
const MEMORY_MB: &str = "256";
const READY_TIMEOUT: Duration = Duration::from_secs(10);
const INVOCATION_TIMEOUT: Duration = Duration::from_secs(20);
const SQS_EVENT: &str = include_str!("../fixtures/sqs-event.json");

struct Measured {
    function: &'static str,
    bytes: u64,
    ready: Vec<Duration>,
    first_invocation: Vec<Duration>,
    answer: String,
}

#[tokio::main]
async fn main() {
    let starts = env("HUBSYNC_BENCH_COLD_STARTS", 20).max(1);
    let release = release_dir();
    let (present, missing): (Vec<&str>, Vec<&str>) = FUNCTIONS.iter().partition(|f| release.join(f).is_file());
    if !missing.is_empty() {
        println!(
            "not in {}: {}; build them with `cargo build --release {}`",
            release.display(),
            missing.join(", "),
            missing.iter().map(|f| format!("-p {f}")).collect::<Vec<_>>().join(" ")
        );
    }
    let deployment = deployment_on_moto().await;
    println!(
        "cold-start benchmark: {} binaries from {}, {starts} starts each after one unmeasured start; AWS at {}",
        present.len(),
        release.display(),
        aws_endpoint()
    );

    let mut rows = Vec::new();
    for function in present {
        let binary = release.join(function);
        let bytes = std::fs::metadata(&binary).map(|m| m.len()).unwrap_or(0);
        let mut measured =
            Measured { function, bytes, ready: Vec::new(), first_invocation: Vec::new(), answer: String::new() };
        for start in 0..=starts {
            let (ready, invocation, answer) = cold_start(function, &binary, &deployment).await;
            if start > 0 {
                measured.ready.push(ready);
                measured.first_invocation.push(invocation);
            }
            measured.answer = answer;
        }
        rows.push(measured);
    }

    println!();
    println!(
        "| function | binary size | ready p50 | ready p95 | ready max | first invocation p50 (against moto) | its answer |"
    );
    println!("|---|---|---|---|---|---|---|");
    for row in &rows {
        println!(
            "| {} | {} bytes ({:.1} MiB) | {} | {} | {} | {} | {} |",
            row.function,
            row.bytes,
            row.bytes as f64 / (1024.0 * 1024.0),
            millis(percentile(&row.ready, 0.50)),
            millis(percentile(&row.ready, 0.95)),
            millis(row.ready.iter().max().copied().unwrap_or_default()),
            millis(percentile(&row.first_invocation, 0.50)),
            row.answer
        );
    }
    let total: u64 = rows.iter().map(|r| r.bytes).sum();
    println!();
    println!(
        "total: {total} bytes ({:.1} MiB) for {} binaries. Ready = spawn → first GET …/invocation/next. The first \
         invocation's time is mostly moto's (a Python server, one request at a time), not AWS's.",
        total as f64 / (1024.0 * 1024.0),
        rows.len()
    );
}

/// The binaries' directory: `HUBSYNC_BENCH_BINARY_DIR`, else the release target directory
/// (`CARGO_TARGET_DIR` or the workspace's `target/`).
fn release_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("HUBSYNC_BENCH_BINARY_DIR") {
        return PathBuf::from(dir);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("release")
}

/// A table, the six queues, the app secret and the token key on moto, as template.yaml's stack has them;
/// returns the environment every function gets (template.yaml's `Globals` and
/// `HUBSYNC_WEBHOOK_*`), and what points the AWS SDK at moto.
async fn deployment_on_moto() -> Vec<(String, String)> {
    let aws = aws_config().await;
    let table = unique_name("hubsync-cold-start");
    DynamoStore::create_table(&DynamoClient::new(&aws), &table).await.expect("create the table on moto");
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let mut environment = Vec::new();
    for variable in [
        "HUBSYNC_PUSH_QUEUE_URL",
        "HUBSYNC_PUSH_DLQ_URL",
        "HUBSYNC_INBOUND_QUEUE_URL",
        "HUBSYNC_INBOUND_DLQ_URL",
        "HUBSYNC_BULK_QUEUE_URL",
        "HUBSYNC_BULK_DLQ_URL",
    ] {
        // Named as the tests' moto matches template.yaml's queues: `hubsync-<id>-push(-dlq)`.
        let role = variable.trim_start_matches("HUBSYNC_").trim_end_matches("_URL").to_ascii_lowercase();
        let role = role.replace("_queue", "").replace('_', "-");
        let name = format!("{}-{role}", unique_name("hubsync"));
        let created = sqs.create_queue().queue_name(name).send().await.expect("create a queue on moto");
        environment.push((variable.to_string(), created.queue_url().expect("a queue URL").to_string()));
    }
    let secret_id = unique_name("hubsync/app");
    let secret = json!({
        "client_id": "cold-start-client", "client_secret": "cold-start-secret",
        "delivery_signing_secret": "cold-start-delivery-secret",
    });
    let token_key = aws_sdk_kms::Client::new(&aws)
        .create_key()
        .send()
        .await
        .expect("create the token key on moto")
        .key_metadata
        .and_then(|key| key.arn)
        .expect("a key ARN");
    aws_sdk_secretsmanager::Client::new(&aws)
        .create_secret()
        .name(&secret_id)
        .secret_string(secret.to_string())
        .send()
        .await
        .expect("create the app secret on moto");
    let fixed = [
        ("HUBSYNC_TABLE", table.as_str()),
        ("HUBSYNC_APP_SECRET_ID", secret_id.as_str()),
        ("HUBSYNC_TOKEN_KEY_ID", token_key.as_str()),
        ("HUBSYNC_OAUTH_REDIRECT_URI", "https://sync.example.com/oauth/callback"),
        ("HUBSYNC_ALLOWED_RETURN_ORIGINS", "https://console.example.com"),
        ("HUBSYNC_ALLOW_SHARED_PORTALS", "false"),
        ("HUBSYNC_WEBHOOK_URL", "https://sync.example.com/webhooks/hubspot"),
        ("HUBSYNC_WEBHOOK_LEGACY_SIGNATURES", "false"),
        ("AWS_ENDPOINT_URL", aws_endpoint()),
        ("AWS_REGION", "us-east-1"),
    ];
    environment.extend(fixed.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    environment
}

/// Starts the binary as Lambda would, waits for its first request for work, has it serve one
/// invocation, and kills it. Returns the time to ready, the invocation's time, and its answer.
async fn cold_start(
    function: &'static str,
    binary: &Path,
    deployment: &[(String, String)],
) -> (Duration, Duration, String) {
    let runtime = RuntimeApi::start().await;
    // Signed as the function's role: its template.yaml policy, as moto enforces it.
    let principal = Function::ALL.into_iter().find(|f| f.binary() == function).expect("a template function");
    let (key_id, secret) = access_key(principal.logical_id());
    // The runner's words, then the binary: `qemu-aarch64 -L <sysroot> <binary>`, say.
    let runner = std::env::var("HUBSYNC_BENCH_RUNNER").unwrap_or_default();
    let mut words: Vec<String> = runner.split_whitespace().map(str::to_string).collect();
    words.push(binary.display().to_string());
    let spawned = Instant::now();
    let child = Command::new(&words[0])
        .args(&words[1..])
        .env_clear()
        .envs(deployment.iter().map(|(k, v)| (k, v)))
        .env("AWS_ACCESS_KEY_ID", key_id)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_LAMBDA_RUNTIME_API", runtime.address())
        .env("AWS_LAMBDA_FUNCTION_NAME", function)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", MEMORY_MB)
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{function}"))
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "cold-start")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{function}: could not start {}: {e}", binary.display()));
    let mut process = Process(child);
    let Some(ready) = runtime.ready(READY_TIMEOUT).await else {
        panic!("{function} did not ask for an invocation within {READY_TIMEOUT:?}: {}", process.end(&runtime));
    };
    let ready = ready.duration_since(spawned);

    let invoked = Instant::now();
    let request_id = runtime.invoke(&event(function));
    let outcome = runtime.outcome(&request_id, INVOCATION_TIMEOUT).await;
    let invocation = invoked.elapsed();
    let answer = match outcome {
        Some(Outcome::Response(body)) => describe(&body),
        Some(Outcome::Error(error)) => panic!("{function} failed its first invocation: {error}"),
        None => panic!("{function} did not answer within {INVOCATION_TIMEOUT:?}: {}", process.end(&runtime)),
    };
    process.end(&runtime);
    (ready, invocation, answer)
}

/// A function process, killed when dropped (a panicking benchmark leaves none behind).
struct Process(Child);

impl Process {
    /// Kills the process; returns how it had ended, with what it wrote to stderr.
    fn end(&mut self, runtime: &RuntimeApi) -> String {
        let exited = self.0.try_wait().ok().flatten();
        let _ = self.0.kill();
        let _ = self.0.wait();
        let mut stderr = String::new();
        if let Some(mut pipe) = self.0.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
        }
        let init_error = runtime.init_error().map(|e| format!("init error {e}; ")).unwrap_or_default();
        let exited = exited.map(|s| format!("exited with {s}; ")).unwrap_or_default();
        format!("{init_error}{exited}stderr: {}", stderr.trim())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An invocation each function serves with what it reads at AWS: an unknown console key
/// (DynamoDB), a badly signed webhook (Secrets Manager), an unreadable queue message (parked on
/// SQS), a schedule (DynamoDB).
fn event(function: &str) -> Value {
    let unknown_key = "hsk_unknown_key";
    let http = match function {
        "oauth-callback" => {
            Some(Event::get("/oauth/install?return_to=https://console.example.com/").bearer(unknown_key))
        }
        "console-api" => Some(Event::get("/connections").bearer(unknown_key)),
        "webhook-receiver" => Some(
            Event::new("POST", "/webhooks/hubspot")
                .header("x-hubspot-signature-v3", "bm90IGEgc2lnbmF0dXJl")
                .header("x-hubspot-request-timestamp", &now_ms().to_string())
                .raw_body("application/json", "[]"),
        ),
        _ => None,
    };
    if let Some(request) = http {
        return serde_json::from_str(&request.to_json()).expect("an API Gateway event is JSON");
    }
    match function {
        "push-worker" | "inbound-worker" | "bulk-worker" => serde_json::from_str(SQS_EVENT).expect("fixture is JSON"),
        _ => json!({
            "version": "0", "id": "cold-start", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-01-01T00:00:00Z", "region": "us-east-1",
            "resources": [format!("arn:aws:events:us-east-1:123456789012:rule/{function}")], "detail": {}
        }),
    }
}

/// A short account of a function's answer: the HTTP status, the batch's failures, or the body.
fn describe(body: &str) -> String {
    let answer: Value = serde_json::from_str(body).unwrap_or(Value::String(body.to_string()));
    if let Some(status) = answer["statusCode"].as_u64() {
        format!("HTTP {status}")
    } else if let Some(failures) = answer["batchItemFailures"].as_array() {
        format!("{} batch item failures", failures.len())
    } else {
        answer.to_string().chars().take(80).collect()
    }
}

fn now_ms() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
}

/// The nearest-rank percentile (`p` in 0..=1).
fn percentile(durations: &[Duration], p: f64) -> Duration {
    if durations.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = durations.to_vec();
    sorted.sort();
    sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
