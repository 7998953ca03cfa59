//! Each function runs under its own role: the tests' moto enforces IAM, with each function's
//! policy rendered from template.yaml (support/moto_server.py). These tests prove the enforcement
//! is real: what a role does not allow is refused, and removing a statement from the template
//! breaks the code that needs it.

use hubsync::deps::{AwsResources, Deps, QueueUrls};
use hubsync::domain::ConnectionId;
use hubsync::hubspot::HubSpotClient;
use hubsync::ports::{OutgoingMessage, SystemClock};
use hubsync_tests::world::{World, settings};
use hubsync_tests::{Function, TEMPLATE, aws_config_on, start_moto_with};
use std::sync::Arc;

fn refused(err: impl std::fmt::Display) -> bool {
    err.to_string().contains("AccessDenied")
}

#[tokio::test]
async fn a_function_is_refused_what_its_role_does_not_allow() {
    let world = World::new().await;
    let receiver = world.function(Function::WebhookReceiver).await;
    let change = || vec![OutgoingMessage::new(r#"{"version":1}"#)];

    receiver.inbound.work.send(change()).await.expect("the receiver queues HubSpot's changes");
    let err = receiver.push.work.send(change()).await.expect_err("the receiver has no business on the push queue");
    assert!(refused(&err), "{err}");
    let err = receiver.inbound.parked.receive(1, std::time::Duration::ZERO).await.expect_err("nor in a DLQ");
    assert!(refused(&err), "{err}");

    let planner = world.function(Function::Enrichment).await;
    let err = planner.push.work.send(change()).await.expect_err("the planners only queue pulls");
    assert!(refused(&err), "{err}");
    let err = planner.bulk.parked.receive(1, std::time::Duration::ZERO).await.expect_err("and redrive nothing");
    assert!(refused(&err), "{err}");
}

/// The OAuth callback's one queue statement: a reinstall asks for the parked work's redrive.
const CALLBACK_STATEMENT: &str = "        - Statement:
            # A reinstall asks the bulk worker to redrive the connection's parked work.
            - Effect: Allow
              Action: sqs:SendMessage
              Resource: !GetAtt BulkQueue.Arn
";

/// The callback's deps on the moto at `endpoint`, with a bulk queue named as the template's.
async fn callback_on(endpoint: &str) -> Deps {
    let admin = aws_sdk_sqs::Client::new(&aws_config_on(endpoint, "HubsyncTestAdmin").await);
    let name = format!("{}-bulk", hubsync_tests::unique_name("hubsync"));
    let url = admin.create_queue().queue_name(name).send().await.unwrap().queue_url().unwrap().to_string();
    let urls = QueueUrls { work: url.clone(), parked: url };
    let resources = AwsResources {
        table: "unused".into(),
        app_secret_id: "unused".into(),
        token_key_id: "unused".into(),
        push: urls.clone(),
        inbound: urls.clone(),
        bulk: urls,
    };
    let aws = aws_config_on(endpoint, Function::OAuthCallback.logical_id()).await;
    let hubspot = HubSpotClient::new("https://api.hubapi.com", "https://app.hubspot.com").unwrap();
    Deps::on_aws(&aws, &resources, hubspot, settings("https://api.hubapi.com"), Arc::new(SystemClock))
}

#[tokio::test]
async fn removing_a_statement_from_a_functions_policy_breaks_the_code_that_needs_it() {
    let template = std::fs::read_to_string(TEMPLATE).unwrap();
    assert!(template.contains(CALLBACK_STATEMENT), "template.yaml no longer has the callback's statement");
    let connection = ConnectionId::new("conn_1");

    let deployed = callback_on(hubsync_tests::aws_endpoint()).await;
    hubsync::work::queue_redrive(&deployed, &connection).await.expect("the template's role may ask for a redrive");

    let trimmed = std::env::temp_dir().join(format!("{}.yaml", hubsync_tests::unique_name("template")));
    std::fs::write(&trimmed, template.replace(CALLBACK_STATEMENT, "")).unwrap();
    let without = callback_on(&start_moto_with(trimmed.to_str().unwrap())).await;
    let err = hubsync::work::queue_redrive(&without, &connection).await.expect_err("refused without the statement");
    assert!(refused(&err), "{err}");
    std::fs::remove_file(trimmed).ok();
}

#[tokio::test]
async fn the_webhook_receiver_cannot_read_a_token_though_it_reads_the_table() {
    let world = World::new().await;
    let key = world.tenant("acme").await;
    let id = ConnectionId::new(hubsync_tests::oauth::install(&world, key.expose()).await);
    let stored = world.deps.store.get_tokens(&id).await.unwrap().expect("tokens are stored");
    assert!(stored.sealed.starts_with("v2:"), "encrypted under a KMS data key: {}", stored.sealed);

    let worker = world.function(Function::PushWorker).await;
    worker.tokens.access_token(&id).await.expect("a worker reads the token");
    let receiver = world.function(Function::WebhookReceiver).await;
    assert!(receiver.store.get_connection(&id).await.unwrap().is_some(), "the receiver routes by the table");
    let err = receiver.tokens.access_token(&id).await.expect_err("but may not decrypt a token");
    assert!(refused(&err), "{err}");
}
