//! The per-record write protocol under the interleavings that broke it: each test runs a
//! deployment in one process on a simulated clock ([`hubsync_tests::simulation`]) many times,
//! one seed each, so that the store's and the network's seeded latencies order the workers'
//! steps differently every time, and checks what must hold whatever the order.

use std::sync::Arc;
use std::time::Duration;

use hubspot_sim::{ALL_SCOPES, Fault, FaultKind};
use hubsync::console::configs;
use hubsync::deps::Deps;
use hubsync::domain::{
    ConnectionId, EventKind, INBOUND_MESSAGE_VERSION, InboundEvent, InboundMessage, ObjectType, VersionedConfig,
};
use hubsync::ports::ReceivedMessage;
use hubsync::work::{Deadline, Disposition, QueueWorker};
use hubsync_tests::convergence::Platform;
use hubsync_tests::simulation::{Conditions, Deployment, PLATFORM_HOST};
use hubsync_tests::world::DELIVERY_SIGNING_SECRET;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

const PORTAL: u64 = 1000;
const ADA: &str = "ada@example.com";

/// Runs `body` on a fresh single-threaded runtime with paused time, once per seed.
fn for_seeds(seeds: u64, body: impl AsyncFn(u64)) {
    for seed in 0..seeds {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        runtime.block_on(body(seed));
    }
}

/// A deployment with the platform served in-process and one connection on `portal` with `config`.
async fn deployment(seed: u64, config: Value) -> (Deployment, Arc<Platform>, ConnectionId) {
    let conditions = Conditions { store_latency_ms: 0..=15, network_latency_ms: 1..=60 };
    let deployment = Deployment::start(seed, conditions);
    let platform = Platform::new(DELIVERY_SIGNING_SECRET, deployment.dice.clone());
    deployment.network.serve(PLATFORM_HOST, platform.router());
    let connection = connect(&deployment, "acme", PORTAL, config).await;
    (deployment, platform, connection)
}

async fn connect(deployment: &Deployment, tenant: &str, portal: u64, config: Value) -> ConnectionId {
    deployment.sim.add_portal(portal, ALL_SCOPES);
    let key = deployment.tenant(tenant).await;
    let connection = deployment.install(&key, portal).await;
    let stored = deployment.deps.store.get_connection(&connection).await.unwrap().unwrap();
    let update: VersionedConfig = serde_json::from_value(json!({ "version": 0, "config": config })).unwrap();
    configs::save(&deployment.deps, &stored, &update).await.expect("the config is valid");
    connection
}

fn contacts(fields: Value) -> Value {
    json!({ "objects": { "contacts": { "match_key": { "kind": "email" }, "write_mode": "upsert", "fields": fields } },
            "options": { "webhooks_enabled": true, "data_in_enabled": true,
                         "ingest_url": format!("https://{PLATFORM_HOST}/ingest") } })
}

fn message(body: Value) -> ReceivedMessage {
    ReceivedMessage { message_id: "m".into(), receipt_handle: "r".into(), body: body.to_string(), receive_count: 1 }
}

fn push(connection: &ConnectionId, fields: Value, changed_at_ms: i64) -> ReceivedMessage {
    push_to(connection, ADA, fields, changed_at_ms)
}

fn push_to(connection: &ConnectionId, email: &str, fields: Value, changed_at_ms: i64) -> ReceivedMessage {
    let changed_at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(changed_at_ms) * 1_000_000).unwrap();
    message(json!({
        "version": 1, "connection_id": connection, "object": "contact", "record_key": email,
        "fields": fields, "changed_at": changed_at.format(&Rfc3339).unwrap()
    }))
}

/// Works one message with `worker` as Lambda would, taking it again after a deferral (the
/// record held by another worker) until it is done; panics if it is retried or parked.
async fn work(deps: &Deps, worker: &dyn QueueWorker, message: ReceivedMessage) {
    for _ in 0..100 {
        let deadline = Deadline::after(deps.clock.now(), Duration::from_secs(60));
        match worker.process(std::slice::from_ref(&message), deadline).await[0] {
            Disposition::Done => return,
            Disposition::Requeue(after) => tokio::time::sleep(after.max(Duration::from_millis(1))).await,
            Disposition::RetryAfter(_) => panic!("the message was retried: {}", message.body),
        }
    }
    panic!("the message was deferred for ever: {}", message.body);
}

fn hubspot(deployment: &Deployment, property: &str) -> Option<String> {
    hubspot_of(deployment, ADA, property)
}

fn hubspot_of(deployment: &Deployment, email: &str, property: &str) -> Option<String> {
    let contacts = deployment.sim.records(PORTAL, "contacts");
    let contact = contacts.iter().find(|c| c["properties"]["email"] == email)?;
    contact["properties"][property].as_str().map(str::to_string)
}

#[test]
fn two_workers_racing_on_one_record_write_hubspot_in_change_order() {
    // 10 deployments, 100 races each on records of their own: 1,000 interleavings.
    for_seeds(10, async |seed| {
        let fields = json!([ { "platform_field": "last_name", "hubspot_property": "lastname", "direction": "out", "platform_type": "string" } ]);
        let (deployment, _, connection) = deployment(seed, contacts(fields)).await;
        let deps = &deployment.deps;
        let (first, second) =
            (hubsync::outbound::push_worker(deps.clone()), hubsync::outbound::push_worker(deps.clone()));
        for race in 0..100 {
            let email = format!("ada{race}@example.com");
            let now = deployment.clock.now_ms();
            let older = push_to(&connection, &email, json!({ "last_name": "Byron" }), now);
            let newer = push_to(&connection, &email, json!({ "last_name": "Lovelace" }), now + 1);
            // Each worker holds one change; which starts first, and how their steps
            // interleave, is the seed's.
            let (a, b) = if deployment.dice.chance(0.5) { (older, newer) } else { (newer, older) };
            let head_start = deployment.dice.millis(0..=60);
            tokio::join!(work(deps, &first, a), async {
                tokio::time::sleep(head_start).await;
                work(deps, &second, b).await
            });
            let found = hubspot_of(&deployment, &email, "lastname");
            assert_eq!(found.as_deref(), Some("Lovelace"), "seed {seed}, race {race}: the older change won");
            let states = deps
                .store
                .get_record_states(&connection, ObjectType::Contacts, std::slice::from_ref(&email))
                .await
                .unwrap();
            let written = &states[&email].outbound.written["lastname"];
            assert_eq!((written.value.as_str(), written.at_ms), ("Lovelace", now + 1), "seed {seed}, race {race}");
        }
    });
}

#[test]
fn a_push_and_an_inbound_delivery_racing_on_one_record_keep_each_others_state() {
    for_seeds(500, async |seed| {
        let fields = json!([
            { "platform_field": "first_name", "hubspot_property": "firstname", "direction": "both", "platform_type": "string" },
            { "platform_field": "job_title", "hubspot_property": "jobtitle", "direction": "in", "platform_type": "string" }
        ]);
        let (deployment, platform, connection) = deployment(seed, contacts(fields)).await;
        let deps = &deployment.deps;
        let id = deployment.sim.seed(PORTAL, "contacts", json!({ "email": ADA, "firstname": "Ada" }));
        let edited_at = deployment.sim.now_ms();
        deployment.sim.edit_as_user(PORTAL, "contacts", &id, json!({ "jobtitle": "Countess" }));
        let event = InboundEvent {
            object: ObjectType::Contacts,
            object_id: id.parse().unwrap(),
            occurred_at_ms: edited_at,
            kind: EventKind::Changed { property: "jobtitle".into(), value: Some("Countess".into()) },
        };
        let inbound = message(json!(InboundMessage {
            version: INBOUND_MESSAGE_VERSION,
            connection_id: connection.clone(),
            portal_id: PORTAL,
            events: vec![event],
        }));
        tokio::time::sleep(Duration::from_millis(5)).await;
        let changed = push(&connection, json!({ "first_name": "Augusta" }), deployment.clock.now_ms());
        let (pusher, deliverer) =
            (hubsync::outbound::push_worker(deps.clone()), hubsync::inbound::inbound_worker(deps.clone()));
        let head_start = deployment.dice.millis(0..=80);
        tokio::join!(work(deps, &pusher, changed), async {
            tokio::time::sleep(head_start).await;
            work(deps, &deliverer, inbound).await
        });
        let states = deps.store.get_record_states(&connection, ObjectType::Contacts, &[ADA.to_string()]).await.unwrap();
        let state = &states[ADA];
        assert_eq!(state.outbound.written["firstname"].value, "Augusta", "seed {seed}: the push's state survives");
        assert!(state.outbound.writing.is_empty(), "seed {seed}: {state:?}");
        assert_eq!(
            state.inbound.delivered["job_title"].value,
            json!("Countess"),
            "seed {seed}: the delivery's state survives"
        );
        assert_eq!(hubspot(&deployment, "firstname").as_deref(), Some("Augusta"), "seed {seed}");
        assert_eq!(platform.value(connection.as_str(), ADA, "job_title").as_deref(), Some("Countess"), "seed {seed}");
        assert!(platform.echoes().is_empty(), "seed {seed}: hubsync's own write came back: {:?}", platform.echoes());
    });
}

#[test]
fn a_persons_edit_a_push_overwrote_is_written_back_only_once_the_platform_has_it() {
    for_seeds(20, async |seed| {
        let fields = json!([ { "platform_field": "first_name", "hubspot_property": "firstname", "direction": "both", "platform_type": "string" } ]);
        let (deployment, platform, connection) = deployment(seed, contacts(fields)).await;
        let deps = &deployment.deps;
        let id = deployment.sim.seed(PORTAL, "contacts", json!({ "email": ADA, "firstname": "Ada" }));
        // The push checks HubSpot, then its write is slow to arrive: a person renames the
        // contact in between, and the push's older value lands over the person's newer one.
        deployment.sim.inject_fault(Fault {
            kind: FaultKind::Latency(Duration::from_secs(2)),
            rate: 1.0,
            path_prefix: Some("/crm/objects/2026-09/contacts/batch/upsert".into()),
            remaining: Some(1),
        });
        let pushed = push(&connection, json!({ "first_name": "Augusta" }), deployment.clock.now_ms());
        let pusher = hubsync::outbound::push_worker(deps.clone());
        let (_, edited_at) = tokio::join!(work(deps, &pusher, pushed), async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let at = deployment.sim.now_ms();
            deployment.sim.edit_as_user(PORTAL, "contacts", &id, json!({ "firstname": "Grace" }));
            at
        });
        assert_eq!(hubspot(&deployment, "firstname").as_deref(), Some("Augusta"), "seed {seed}: the push landed last");
        let event = InboundEvent {
            object: ObjectType::Contacts,
            object_id: id.parse().unwrap(),
            occurred_at_ms: edited_at,
            kind: EventKind::Changed { property: "firstname".into(), value: Some("Grace".into()) },
        };
        let edited = message(json!(InboundMessage {
            version: INBOUND_MESSAGE_VERSION,
            connection_id: connection.clone(),
            portal_id: PORTAL,
            events: vec![event],
        }));
        let deliverer = hubsync::inbound::inbound_worker(deps.clone());
        // While the platform is down, the newer edit is neither delivered nor written back:
        // written back first, it would look like hubsync's own write and never be delivered.
        platform.set_down(true);
        let deadline = Deadline::after(deps.clock.now(), Duration::from_secs(60));
        let answer = deliverer.process(std::slice::from_ref(&edited), deadline).await;
        assert!(matches!(answer[0], Disposition::RetryAfter(_)), "seed {seed}: {answer:?}");
        let pushes = || async { deps.push.work.receive(10, Duration::ZERO).await.unwrap() };
        assert!(pushes().await.is_empty(), "seed {seed}: nothing is written back before the platform has it");
        platform.set_down(false);
        work(deps, &deliverer, edited).await;
        assert_eq!(platform.value(connection.as_str(), ADA, "first_name").as_deref(), Some("Grace"), "seed {seed}");
        let queued = pushes().await;
        assert_eq!(queued.len(), 1, "seed {seed}: the edit is written back to HubSpot");
        work(deps, &pusher, queued.into_iter().next().unwrap()).await;
        assert_eq!(hubspot(&deployment, "firstname").as_deref(), Some("Grace"), "seed {seed}");
        assert!(platform.echoes().is_empty(), "seed {seed}: {:?}", platform.echoes());
    });
}

#[test]
fn a_slow_tenant_hands_its_work_back_at_the_deadline_and_never_holds_up_the_others() {
    for_seeds(20, async |seed| {
        let fields = json!([ { "platform_field": "job_title", "hubspot_property": "jobtitle", "direction": "in", "platform_type": "string" } ]);
        let (deployment, platform, fast) = deployment(seed, contacts(fields.clone())).await;
        let slow = connect(&deployment, "slowco", 2000, contacts(fields)).await;
        // The slow tenant's platform answers after 14 s, and it has 400 new contacts: four
        // deliveries, 56 s. The invocation has Lambda's minute, and keeps what a delivery may
        // take (the client's 15 s timeout) to spare.
        platform.set_slow(slow.as_str(), Duration::from_secs(14));
        let created = |portal: u64, count: usize| {
            let events: Vec<InboundEvent> = (0..count)
                .map(|i| {
                    let email = format!("user{i}@example.com");
                    let id = deployment.sim.seed(portal, "contacts", json!({ "email": email, "jobtitle": "Countess" }));
                    let at = deployment.sim.now_ms();
                    InboundEvent {
                        object: ObjectType::Contacts,
                        object_id: id.parse().unwrap(),
                        occurred_at_ms: at,
                        kind: EventKind::Created,
                    }
                })
                .collect();
            events
        };
        let mut batch = Vec::new();
        for (connection, portal, count) in [(&slow, 2000, 400), (&fast, PORTAL, 1)] {
            let body = InboundMessage {
                version: INBOUND_MESSAGE_VERSION,
                connection_id: connection.clone(),
                portal_id: portal,
                events: created(portal, count),
            };
            // On its last attempt: a failure now would park it.
            batch.push(ReceivedMessage { receive_count: hubsync::work::MAX_ATTEMPTS, ..message(json!(body)) });
        }
        let worker = hubsync::inbound::inbound_worker(deployment.deps.clone());
        let deadline = Deadline::after(deployment.deps.clock.now(), Duration::from_secs(60));
        let dispositions = worker.process(&batch, deadline).await;
        assert!(
            matches!(dispositions[0], Disposition::Requeue(_)),
            "seed {seed}: the slow tenant's unfinished work is handed back, not failed: {dispositions:?}"
        );
        assert_eq!(dispositions[1], Disposition::Done, "seed {seed}: the fast tenant's work is done");
        assert_eq!(platform.value(fast.as_str(), "user0@example.com", "job_title").as_deref(), Some("Countess"));
        assert!(deployment.deps.clock.now() <= deadline.instant(), "seed {seed}: the batch ended by its deadline");
        assert_eq!(deployment.queued().1, 0, "seed {seed}: nothing was parked");
    });
}
