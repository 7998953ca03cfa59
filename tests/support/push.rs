//! A connected portal with a saved config, and the push worker driven as Lambda drives it:
//! messages on moto's SQS, received, wrapped in SQS event JSON and handed to the handler.

use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use hubsync::console::configs;
use hubsync::deps::Deps;
use hubsync::domain::{Connection, ConnectionId, RunCounts, Secret, SyncRun, VersionedConfig};
use hubsync::outbound::{PushWorker, push_worker};
use hubsync::ports::{OutgoingMessage, Queue, ReceivedMessage};
use hubsync::work::{ParkedMessage, QueueWorker};
use serde_json::{Value, json};

use crate::Function;
use crate::oauth::install;
use crate::world::World;

/// The portal every push test writes to (the simulator's default).
pub const PORTAL: u64 = 1000;

pub struct PushSetup {
    pub world: World,
    pub key: Secret,
    pub connection: Connection,
    /// The push worker's dependencies, signed as its role.
    pub push_deps: Deps,
    pub worker: PushWorker,
}

/// A contacts config: upsert by email, first and last name out, lead status as an enumeration.
pub fn contacts_config(write_mode: &str) -> Value {
    json!({ "objects": { "contacts": {
        "match_key": { "kind": "email" },
        "write_mode": write_mode,
        "fields": [
            { "platform_field": "first_name", "hubspot_property": "firstname", "direction": "out", "platform_type": "string" },
            { "platform_field": "last_name", "hubspot_property": "lastname", "direction": "out", "platform_type": "string" },
            { "platform_field": "seats", "hubspot_property": "num_employees", "direction": "out", "platform_type": "number" },
            { "platform_field": "status", "hubspot_property": "hs_lead_status", "direction": "out",
              "platform_type": "enumeration", "values": ["NEW", "OPEN"] }
        ] } } })
}

impl PushSetup {
    pub async fn new(config: Value) -> PushSetup {
        PushSetup::in_world(World::new().await, config).await
    }

    /// Installs the app for tenant `acme` and saves `config` (checked like the console does).
    pub async fn in_world(world: World, config: Value) -> PushSetup {
        let key = world.tenant("acme").await;
        let id = install(&world, key.expose()).await;
        let connection = world.deps.store.get_connection(&ConnectionId::new(&id)).await.unwrap().unwrap();
        let update: VersionedConfig = serde_json::from_value(json!({ "version": 0, "config": config })).unwrap();
        configs::save(&world.function(Function::ConsoleApi).await, &connection, &update)
            .await
            .expect("the config is valid");
        let push_deps = world.function(Function::PushWorker).await;
        let worker = push_worker(push_deps.clone());
        PushSetup { world, key, connection, push_deps, worker }
    }

    /// A version-1 push message for this connection.
    pub fn change(&self, object: &str, record_key: &str, fields: Value, changed_at: &str) -> Value {
        json!({
            "version": 1, "connection_id": self.connection.id, "object": object,
            "record_key": record_key, "fields": fields, "changed_at": changed_at
        })
    }

    pub async fn send(&self, messages: &[Value]) {
        let outgoing = messages.iter().map(|m| OutgoingMessage::new(m.to_string())).collect();
        self.world.deps.push.work.send(outgoing).await.unwrap();
    }

    pub async fn send_raw(&self, body: &str) {
        self.world.deps.push.work.send(vec![OutgoingMessage::new(body)]).await.unwrap();
    }

    /// Receives up to `max` visible messages, as one Lambda batch.
    pub async fn receive(&self, max: usize) -> Vec<ReceivedMessage> {
        let mut batch = Vec::new();
        while batch.len() < max {
            let got = self.world.deps.push.work.receive((max - batch.len()).min(10), Duration::from_millis(300)).await;
            let got = got.unwrap();
            if got.is_empty() {
                break;
            }
            batch.extend(got);
        }
        batch
    }

    /// One Lambda invocation over what is visible (up to 100 messages): returns the batch
    /// response and how many messages it carried.
    pub async fn deliver(&self) -> (SqsBatchResponse, usize) {
        let batch = self.receive(100).await;
        (self.invoke(&self.worker, &batch).await, batch.len())
    }

    /// What Lambda does with a batch: hands it to the handler as SQS event JSON, then deletes
    /// every message the response does not report as failed.
    pub async fn invoke(&self, worker: &PushWorker, batch: &[ReceivedMessage]) -> SqsBatchResponse {
        let queue = &self.push_deps.push.work;
        let response = push_worker::handle(worker, queue.as_ref(), sqs_event(batch), self.world.deadline()).await;
        acknowledge(queue.as_ref(), batch, &response).await;
        response
    }

    /// Invokes until nothing is visible; returns the failures reported on the way.
    pub async fn drain(&self) -> Vec<String> {
        let mut failures = Vec::new();
        loop {
            let (response, delivered) = self.deliver().await;
            if delivered == 0 {
                return failures;
            }
            failures.extend(response.batch_item_failures.into_iter().map(|f| f.item_identifier));
        }
    }

    /// Runs bulk jobs (pulls, redrives) as Lambda would until the bulk queue is empty; returns
    /// how many ran. Panics if one fails.
    pub async fn drain_bulk(&self, worker: &dyn QueueWorker) -> usize {
        // Lambda's poller receives and deletes; the handler backs off as the worker's role.
        let queue = &self.world.deps.bulk.work;
        let as_worker = self.world.function(Function::BulkWorker).await.bulk.work;
        let mut jobs = 0;
        loop {
            let batch = queue.receive(10, Duration::from_millis(300)).await.unwrap();
            if batch.is_empty() {
                return jobs;
            }
            jobs += batch.len();
            let response =
                bulk_worker::handle(worker, as_worker.as_ref(), sqs_event(&batch), self.world.deadline()).await;
            if acknowledge(queue.as_ref(), &batch, &response).await > 0 {
                let latest = self.runs().await.pop().map(|run| run.counts);
                panic!("a bulk job failed; the latest run counted {latest:?}");
            }
        }
    }

    /// Everything in the dead-letter queue (taken out of it).
    pub async fn parked(&self) -> Vec<ParkedMessage> {
        take_all(self.world.deps.push.parked.as_ref()).await.iter().map(|body| ParkedMessage::read(body)).collect()
    }

    pub async fn runs(&self) -> Vec<SyncRun> {
        self.world.deps.store.list_runs(&self.connection.id, 100).await.unwrap()
    }

    /// Every run's counts added up.
    pub async fn counts(&self) -> RunCounts {
        let mut sum = RunCounts::default();
        self.runs().await.iter().for_each(|run| sum.add(&run.counts));
        sum
    }

    /// HubSpot's contacts, as email → properties.
    pub fn contact(&self, email: &str) -> Option<Value> {
        self.world
            .sim
            .records(PORTAL, "contacts")
            .into_iter()
            .find(|r| r["properties"]["email"] == email)
            .map(|r| r["properties"].clone())
    }

    pub fn hubspot_writes(&self, object: &str) -> u64 {
        ["upsert", "create", "update"]
            .iter()
            .map(|action| {
                self.world.sim.request_count("POST", &format!("/crm/objects/2026-09/{object}/batch/{action}"))
            })
            .sum()
    }
}

/// What Lambda does once a handler returns: deletes every message of the batch the response
/// does not report as failed. Returns how many it reports failed.
pub async fn acknowledge(queue: &dyn Queue, batch: &[ReceivedMessage], response: &SqsBatchResponse) -> usize {
    let mut failed = 0;
    for message in batch {
        if response.batch_item_failures.iter().any(|f| f.item_identifier == message.message_id) {
            failed += 1;
        } else {
            queue.delete(&message.receipt_handle).await.unwrap();
        }
    }
    failed
}

/// The bodies of every message visible on `queue`, taken off it.
pub async fn take_all(queue: &dyn Queue) -> Vec<String> {
    let mut bodies = Vec::new();
    loop {
        let batch = queue.receive(10, Duration::from_millis(300)).await.unwrap();
        if batch.is_empty() {
            return bodies;
        }
        for message in batch {
            queue.delete(&message.receipt_handle).await.unwrap();
            bodies.push(message.body);
        }
    }
}

/// The SQS event Lambda would send for these messages, from a recorded event's shape.
pub fn sqs_event(messages: &[ReceivedMessage]) -> SqsEvent {
    let recorded: Value = serde_json::from_str(include_str!("../fixtures/sqs-event.json")).unwrap();
    let template = &recorded["Records"][0];
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let mut record = template.clone();
            record["messageId"] = json!(m.message_id);
            record["receiptHandle"] = json!(m.receipt_handle);
            record["body"] = json!(m.body);
            record["attributes"]["ApproximateReceiveCount"] = json!(m.receive_count.to_string());
            record
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).expect("SQS event JSON")
}
