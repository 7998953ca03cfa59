//! Forged, tampered, replayed and malformed input is refused and crashes nothing: the webhook
//! receiver (through its Lambda handler, and its verification and parsing over the fuzz seed
//! corpus), the console API, and the OAuth install. Each test also shows that the genuine input
//! gets through, so every refusal is the code's doing and not a broken request.

use std::collections::BTreeSet;

use axum::body::to_bytes;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hubsync::deps::{Deps, Queues};
use hubsync::domain::{ConnectionId, InboundMessage, ObjectType, Secret, TenantId};
use hubsync::http::Url;
use hubsync::ports::{Clock, IdSource, OutgoingMessage, RandomIds};
use hubsync::webhooks::signature::{v1_signature, v2_signature, v3_signature};
use hubsync_tests::Function;
use hubsync_tests::lambda::{Event, Reply, invoke};
use hubsync_tests::oauth::{callback, consent, install, query, start};
use hubsync_tests::push::{PushSetup, take_all};
use hubsync_tests::world::{CLIENT_SECRET, CONSOLE, World};
use serde_json::{Value, json};
use tower::ServiceExt;

/// The fuzz target's input format and rules, shared so the seed corpus runs here on stable.
#[path = "../fuzz/src/lib.rs"]
mod webhook_fuzz;

// ---------------------------------------------------------------------------------------------
// Webhooks
// ---------------------------------------------------------------------------------------------

const HOST: &str = "sync.example.com";
const WEBHOOK_URL: &str = "https://sync.example.com/webhooks/hubspot";
const SIGNATURE: &str = "x-hubspot-signature-v3";
const TIMESTAMP: &str = "x-hubspot-request-timestamp";
const FIVE_MINUTES_MS: i64 = 5 * 60 * 1000;

/// A contacts config that takes first names in by webhook: any change accepted is queued.
fn inbound_config() -> Value {
    json!({
        "objects": { "contacts": {
            "match_key": { "kind": "email" }, "write_mode": "upsert",
            "fields": [ { "platform_field": "first_name", "hubspot_property": "firstname", "direction": "both", "platform_type": "string" } ] } },
        "options": { "webhooks_enabled": true, "data_in_enabled": true, "ingest_url": "https://platform.example.com/ingest" }
    })
}

/// HubSpot's event for a change to contact 501's first name: one the connection takes in.
fn change(now_ms: i64) -> Value {
    json!({
        "eventId": 1, "subscriptionId": 7, "portalId": hubsync_tests::push::PORTAL, "appId": 54321,
        "occurredAt": now_ms, "subscriptionType": "contact.propertyChange", "attemptNumber": 0, "objectId": 501,
        "propertyName": "firstname", "propertyValue": "Ada", "changeSource": "CRM_UI", "sourceId": "userId:7"
    })
}

fn now_ms(world: &World) -> i64 {
    (world.clock.now().unix_timestamp_nanos() / 1_000_000) as i64
}

fn sign_v3(method: &str, url: &str, body: &[u8], timestamp: &str, secret: &str) -> String {
    v3_signature(method, url, body, timestamp, &Secret::new(secret))
}

/// A webhook request as API Gateway hands it to the receiver's Lambda.
#[derive(Clone)]
struct WebhookRequest {
    method: &'static str,
    path_and_query: &'static str,
    /// A value is a string, or an array for a header that came more than once (a multi-value
    /// event; API Gateway's HTTP API joins repeats with commas into one string instead).
    headers: Vec<(&'static str, Value)>,
    body: Vec<u8>,
}

impl WebhookRequest {
    /// Signed (v3) as HubSpot signs: the method, the URL it called, the body and the timestamp.
    fn signed(body: impl Into<Vec<u8>>, timestamp: impl ToString) -> WebhookRequest {
        let (body, timestamp) = (body.into(), timestamp.to_string());
        let signature = sign_v3("POST", WEBHOOK_URL, &body, &timestamp, CLIENT_SECRET);
        WebhookRequest {
            method: "POST",
            path_and_query: "/webhooks/hubspot",
            headers: vec![
                ("host", json!(HOST)),
                ("content-type", json!("application/json")),
                (SIGNATURE, json!(signature)),
                (TIMESTAMP, json!(timestamp)),
            ],
            body,
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<Value>) -> WebhookRequest {
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value.into()));
        self
    }

    fn without(mut self, name: &str) -> WebhookRequest {
        self.headers.retain(|(n, _)| *n != name);
        self
    }

    fn body(mut self, body: impl Into<Vec<u8>>) -> WebhookRequest {
        self.body = body.into();
        self
    }

    fn value(&self, name: &str) -> String {
        let (_, value) = self.headers.iter().find(|(n, _)| *n == name).expect("the header is set");
        value.as_str().expect("a single value").to_string()
    }
}

/// Runs the receiver's handler on the request as Lambda does: from API Gateway v2 event JSON,
/// parsed by lambda_http. A body that is not UTF-8 travels base64-encoded, as API Gateway sends it.
async fn post(deps: &Deps, request: &WebhookRequest) -> Reply {
    let mut event: Value = serde_json::from_str(&Event::new(request.method, request.path_and_query).to_json()).unwrap();
    for (name, value) in &request.headers {
        event["headers"][*name] = value.clone();
    }
    event["headers"]["content-length"] = json!(request.body.len().to_string());
    match std::str::from_utf8(&request.body) {
        Ok(text) => event["body"] = json!(text),
        Err(_) => {
            event["body"] = json!(BASE64.encode(&request.body));
            event["isBase64Encoded"] = json!(true);
        }
    }
    let http = lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway v2 event");
    let (parts, body) = http.into_parts();
    let http = axum::http::Request::from_parts(parts, axum::body::Body::from(body.to_vec()));
    // A panic in the handler fails the test here: "the handler answers" is part of every case.
    let response = webhook_receiver::router(deps.clone()).oneshot(http).await.expect("routers are infallible");
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = to_bytes(response.into_body(), 16 * 1024 * 1024).await.expect("response body");
    Reply { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
}

/// Everything on the inbound queue (taken off it).
async fn inbound_messages(deps: &Deps) -> Vec<InboundMessage> {
    let bodies = take_all(deps.inbound.work.as_ref()).await;
    bodies.iter().map(|body| serde_json::from_str(body).unwrap()).collect()
}

#[tokio::test]
async fn forged_tampered_stale_and_malformed_webhooks_are_refused_and_nothing_is_queued() {
    let setup = PushSetup::new(inbound_config()).await;
    let deps = &setup.world.deps;
    let receiver = setup.world.function(Function::WebhookReceiver).await;
    let now = now_ms(&setup.world);
    let body = json!([change(now)]).to_string();
    let genuine = WebhookRequest::signed(body.as_str(), now);
    let (signature, timestamp) = (genuine.value(SIGNATURE), genuine.value(TIMESTAMP));
    let mut altered_signature = signature.clone().into_bytes();
    altered_signature[0] = if altered_signature[0] == b'A' { b'B' } else { b'A' };
    let legacy = |signature: String, version: &str| {
        genuine
            .clone()
            .without(SIGNATURE)
            .without(TIMESTAMP)
            .header("x-hubspot-signature", signature)
            .header("x-hubspot-signature-version", version)
    };
    let legacy_v1 = legacy(v1_signature(body.as_bytes(), &CLIENT_SECRET.into()), "v1");
    let legacy_v2 = legacy(v2_signature("POST", WEBHOOK_URL, body.as_bytes(), &CLIENT_SECRET.into()), "v2");
    let too_many = Value::Array(vec![change(now); hubsync::domain::inbound::MAX_WEBHOOK_EVENTS + 1]).to_string();
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let not_utf8 = [&b"[{\"eventId\":1,\"propertyValue\":\""[..], &[0xff, 0xfe], &b"\"}]"[..]].concat();

    use StatusCode as S;
    let cases: Vec<(&str, WebhookRequest, StatusCode)> = vec![
        // Forged or tampered after signing: the signature no longer holds.
        (
            "signed with another secret",
            genuine.clone().header(SIGNATURE, sign_v3("POST", WEBHOOK_URL, body.as_bytes(), &timestamp, "guess")),
            S::UNAUTHORIZED,
        ),
        (
            "signature altered",
            genuine.clone().header(SIGNATURE, String::from_utf8(altered_signature).unwrap()),
            S::UNAUTHORIZED,
        ),
        ("body altered", genuine.clone().body(body.replace("Ada", "Eve")), S::UNAUTHORIZED),
        ("body extended", genuine.clone().body(format!("{body} ")), S::UNAUTHORIZED),
        (
            "method altered (signed as PUT)",
            genuine.clone().header(SIGNATURE, sign_v3("PUT", WEBHOOK_URL, body.as_bytes(), &timestamp, CLIENT_SECRET)),
            S::UNAUTHORIZED,
        ),
        ("sent as PUT", WebhookRequest { method: "PUT", ..genuine.clone() }, S::METHOD_NOT_ALLOWED),
        (
            "query added",
            WebhookRequest { path_and_query: "/webhooks/hubspot?portalId=1", ..genuine.clone() },
            S::UNAUTHORIZED,
        ),
        ("sent to another host", genuine.clone().header("host", "other.example.com"), S::UNAUTHORIZED),
        ("forwarded host added", genuine.clone().header("x-forwarded-host", "evil.example.com"), S::UNAUTHORIZED),
        ("timestamp altered", genuine.clone().header(TIMESTAMP, (now + 1).to_string()), S::UNAUTHORIZED),
        // Signed with the secret, at the wrong time.
        ("stale", WebhookRequest::signed(body.as_str(), now - FIVE_MINUTES_MS - 1), S::UNAUTHORIZED),
        ("a day old", WebhookRequest::signed(body.as_str(), now - 24 * 3_600_000), S::UNAUTHORIZED),
        // A minute past the window: the clock moves on while the cases run.
        ("future-dated", WebhookRequest::signed(body.as_str(), now + FIVE_MINUTES_MS + 60_000), S::UNAUTHORIZED),
        ("timestamp i64::MIN", WebhookRequest::signed(body.as_str(), i64::MIN), S::UNAUTHORIZED),
        ("timestamp i64::MAX", WebhookRequest::signed(body.as_str(), i64::MAX), S::UNAUTHORIZED),
        ("timestamp in seconds", WebhookRequest::signed(body.as_str(), now / 1000), S::UNAUTHORIZED),
        ("timestamp not a number", WebhookRequest::signed(body.as_str(), "yesterday"), S::UNAUTHORIZED),
        // Missing, repeated, or in another version.
        ("unsigned", genuine.clone().without(SIGNATURE).without(TIMESTAMP), S::UNAUTHORIZED),
        ("no timestamp", genuine.clone().without(TIMESTAMP), S::UNAUTHORIZED),
        ("no signature", genuine.clone().without(SIGNATURE), S::UNAUTHORIZED),
        ("empty signature", genuine.clone().header(SIGNATURE, ""), S::UNAUTHORIZED),
        (
            "signature twice, joined",
            genuine.clone().header(SIGNATURE, format!("{signature},{signature}")),
            S::UNAUTHORIZED,
        ),
        (
            "timestamp twice, joined",
            genuine.clone().header(TIMESTAMP, format!("{timestamp},{timestamp}")),
            S::UNAUTHORIZED,
        ),
        (
            "signature twice, multi-value",
            genuine.clone().header(SIGNATURE, json!([signature, signature])),
            S::UNAUTHORIZED,
        ),
        (
            "timestamp twice, multi-value",
            genuine.clone().header(TIMESTAMP, json!([timestamp, timestamp])),
            S::UNAUTHORIZED,
        ),
        (
            "signature with a version prefix",
            genuine.clone().header(SIGNATURE, format!("v3={signature}")),
            S::UNAUTHORIZED,
        ),
        ("v3 signature as a legacy one", legacy(signature.clone(), "v3"), S::UNAUTHORIZED),
        ("legacy v1, not accepted here", legacy_v1.clone(), S::UNAUTHORIZED),
        ("legacy v2, not accepted here", legacy_v2.clone(), S::UNAUTHORIZED),
        ("unknown version", legacy(v1_signature(body.as_bytes(), &CLIENT_SECRET.into()), "v4"), S::UNAUTHORIZED),
        // Signed with the secret, but not a batch of events.
        ("not JSON", WebhookRequest::signed("eventId=1&portalId=1000", now), S::BAD_REQUEST),
        ("an object, not an array", WebhookRequest::signed(change(now).to_string(), now), S::BAD_REQUEST),
        (
            "wrong field type",
            WebhookRequest::signed(body.replace("\"objectId\":501", "\"objectId\":\"501\""), now),
            S::BAD_REQUEST,
        ),
        ("missing fields", WebhookRequest::signed(r#"[{"eventId":1}]"#, now), S::BAD_REQUEST),
        ("trailing garbage", WebhookRequest::signed(format!("{body}]"), now), S::BAD_REQUEST),
        ("not UTF-8", WebhookRequest::signed(not_utf8, now), S::BAD_REQUEST),
        ("empty body", WebhookRequest::signed("", now), S::BAD_REQUEST),
        ("nested 100,000 deep", WebhookRequest::signed(deep, now), S::BAD_REQUEST),
        ("too many events", WebhookRequest::signed(too_many, now), S::BAD_REQUEST),
        ("over 512 KiB", WebhookRequest::signed(format!("[{}]", " ".repeat(600 * 1024)), now), S::PAYLOAD_TOO_LARGE),
    ];
    for (case, request, status) in &cases {
        let reply = post(&receiver, request).await;
        assert_eq!(reply.status, *status, "{case}: {}", reply.body);
        if *status == S::UNAUTHORIZED {
            assert_eq!(reply.json()["error"]["code"], "bad_signature", "{case}");
        }
    }
    assert!(inbound_messages(deps).await.is_empty(), "nothing refused was queued");

    // The genuine request, sent last, is taken: so none of the above claimed its event either.
    let reply = post(&receiver, &genuine).await;
    assert_eq!((reply.status, reply.json()["enqueued"].clone()), (S::OK, json!(1)), "{}", reply.body);
    let queued = inbound_messages(deps).await;
    assert_eq!(queued.len(), 1);
    assert_eq!((queued[0].connection_id.clone(), queued[0].events[0].object_id), (setup.connection.id.clone(), 501));

    // The legacy signatures refused above are genuine: a receiver set to accept them does.
    let mut settings = (*receiver.settings).clone();
    settings.accept_legacy_webhook_signatures = true;
    let queues = Queues { push: receiver.push.clone(), inbound: receiver.inbound.clone(), bulk: receiver.bulk.clone() };
    let lenient = Deps::new(
        receiver.store.clone(),
        receiver.secrets.clone(),
        receiver.hubspot.clone(),
        settings,
        setup.world.clock.clone(),
        queues,
    );
    for request in [&legacy_v1, &legacy_v2] {
        let reply = post(&lenient, request).await;
        assert_eq!(reply.status, S::OK, "{}", reply.body);
    }
}

#[tokio::test]
async fn a_replayed_webhook_is_passed_on_once_and_refused_once_stale() {
    let setup = PushSetup::new(inbound_config()).await;
    let now = now_ms(&setup.world);
    let request = WebhookRequest::signed(json!([change(now)]).to_string(), now);

    // The same signed request twice at once, then again through another Lambda instance.
    let receiver = setup.world.function(Function::WebhookReceiver).await;
    let (first, second) = tokio::join!(post(&receiver, &request), post(&receiver, &request));
    let again = post(&setup.world.function(Function::WebhookReceiver).await, &request).await;
    let mut enqueued = 0;
    for reply in [&first, &second, &again] {
        assert_eq!(reply.status, StatusCode::OK, "a replay is acknowledged, so HubSpot stops: {}", reply.body);
        enqueued += reply.json()["enqueued"].as_u64().unwrap();
    }
    assert_eq!(enqueued, 1);
    assert_eq!(inbound_messages(&setup.world.deps).await.len(), 1, "passed on once");

    setup.world.clock.advance(time::Duration::minutes(6));
    let late = post(&receiver, &request).await;
    assert_eq!(late.status, StatusCode::UNAUTHORIZED, "{}", late.body);
    assert!(inbound_messages(&setup.world.deps).await.is_empty());
}

#[test]
fn every_seed_of_the_webhook_fuzz_corpus_replays_with_its_expected_outcome() {
    let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/webhook_request");
    let mut seeds: Vec<_> = std::fs::read_dir(corpus).unwrap().map(|entry| entry.unwrap().path()).collect();
    seeds.sort();
    let (mut accepted, mut legacy, mut refused) = (0, 0, 0);
    for seed in &seeds {
        let name = seed.file_name().unwrap().to_string_lossy();
        // `check` panics on any broken rule; a name's prefix says what the seed must come to.
        let outcome = webhook_fuzz::check(&std::fs::read(seed).unwrap());
        if name.starts_with("accepted-") {
            assert!(outcome.strict.is_ok(), "{name}: {:?}", outcome.strict.err());
            accepted += 1;
        } else if name.starts_with("legacy-") {
            assert!(outcome.strict.is_err() && outcome.lenient.is_ok(), "{name}: {:?}", outcome.lenient.err());
            legacy += 1;
        } else if name.starts_with("refused-") {
            assert!(outcome.strict.is_err() && outcome.lenient.is_err(), "{name} was accepted");
            refused += 1;
        }
    }
    assert!(accepted >= 5 && legacy >= 2 && refused >= 20, "the corpus is there: {accepted}/{legacy}/{refused}");
}

// ---------------------------------------------------------------------------------------------
// Console API
// ---------------------------------------------------------------------------------------------

/// The routes that name no connection.
const TENANT_ROUTES: [(&str, &str); 3] = [("GET", "/connections"), ("POST", "/connections"), ("GET", "/catalogue")];

/// Every console route that names a connection, with a body its owner could send: through a
/// missing ownership check, each would read or change the connection.
fn connection_routes(id: &str, config_version: u64) -> Vec<(&'static str, String, Option<Value>)> {
    let mut config = inbound_config();
    config["options"]["ingest_url"] = json!("https://evil.example.com/ingest");
    let change = json!({ "version": 1, "object": "contact", "record_key": "eve@example.com", "fields": { "first_name": "Eve" } });
    vec![
        ("GET", format!("/connections/{id}"), None),
        ("DELETE", format!("/connections/{id}"), None),
        ("GET", format!("/connections/{id}/config"), None),
        ("PUT", format!("/connections/{id}/config"), Some(json!({ "version": config_version, "config": config }))),
        ("POST", format!("/connections/{id}/config/validate"), Some(config)),
        ("GET", format!("/connections/{id}/schema"), None),
        ("POST", format!("/connections/{id}/schema/refresh"), None),
        ("POST", format!("/connections/{id}/sync"), Some(change)),
        ("GET", format!("/connections/{id}/runs"), None),
        ("POST", format!("/connections/{id}/redrive"), None),
        ("POST", format!("/connections/{id}/full-sync"), Some(json!({}))),
    ]
}

fn console_request(method: &str, path: &str, body: Option<&Value>, authorization: Option<&str>) -> Event {
    let mut event = Event::new(method, path);
    if let Some(body) = body {
        event = event.json_body(body);
    }
    if let Some(authorization) = authorization {
        event = event.header("authorization", authorization);
    }
    event
}

async fn call(world: &World, event: Event) -> Reply {
    invoke(&console_api::router(world.function(Function::ConsoleApi).await), event).await
}

/// Two tenants, each with a connection to its own portal, a saved config, a run and a parked change.
struct TwoTenants {
    world: World,
    acme: Secret,
    acme_connection: String,
    globex: Secret,
    globex_connection: String,
}

async fn two_tenants() -> TwoTenants {
    let world = World::new().await;
    let acme = world.tenant("acme").await;
    let globex = world.tenant("globex").await;
    let acme_connection = install(&world, acme.expose()).await;
    world.sim.add_portal(2000, hubspot_sim::ALL_SCOPES); // the next install lands on portal 2000
    let globex_connection = install(&world, globex.expose()).await;
    for (key, id) in [(&acme, &acme_connection), (&globex, &globex_connection)] {
        let config = json!({ "version": 0, "config": inbound_config() });
        let saved = call(
            &world,
            console_request("PUT", &format!("/connections/{id}/config"), Some(&config), None).bearer(key.expose()),
        )
        .await;
        assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
        let started =
            call(&world, Event::new("POST", &format!("/connections/{id}/full-sync")).bearer(key.expose())).await;
        assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
        let parked = json!({ "version": 1, "connection_id": id, "object": "contact", "record_key": "parked@example.com",
            "fields": { "first_name": "Parked" }, "changed_at": "2026-01-01T12:00:00Z" });
        world.deps.push.parked.send(vec![OutgoingMessage::new(parked.to_string())]).await.unwrap();
    }
    TwoTenants { world, acme, acme_connection, globex, globex_connection }
}

/// What the store holds about a connection: whatever a console route could change.
async fn stored_state(world: &World, id: &str) -> Value {
    let (store, id) = (&world.deps.store, ConnectionId::new(id));
    let mut schemas = Vec::new();
    for object in ObjectType::ALL {
        schemas.push(store.get_schema(&id, object).await.unwrap());
    }
    json!({
        "connection": store.get_connection(&id).await.unwrap(),
        "config": store.get_config(&id).await.unwrap(),
        "runs": store.list_runs(&id, 100).await.unwrap(),
        "tokens": store.get_tokens(&id).await.unwrap(),
        "schemas": schemas,
    })
}

/// The connection ids of the messages on a queue (taken off it).
async fn queued_connections(queue: &dyn hubsync::ports::Queue) -> Vec<String> {
    let mut found: Vec<String> = take_all(queue)
        .await
        .iter()
        .map(|body| {
            serde_json::from_str::<Value>(body).unwrap()["connection_id"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    found.sort();
    found
}

/// The tenant's routes of the OpenAPI document: all but the admin API's (tagged `admin`, with a
/// table of its own in `tests/admin_api.rs`).
#[test]
fn the_route_table_names_every_route_of_the_openapi_document() {
    let document: Value = serde_json::from_str(console_api::OPENAPI).unwrap();
    let documented: BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, operations)| {
            let operations = operations.as_object().unwrap().iter().filter(|(m, _)| m.as_str() != "parameters");
            let tenants =
                operations.filter(|(_, op)| !op["tags"].as_array().is_some_and(|t| t.contains(&json!("admin"))));
            tenants.map(|(m, _)| (m.to_uppercase(), path.clone())).collect::<Vec<_>>()
        })
        .collect();
    let tabled: BTreeSet<(String, String)> = TENANT_ROUTES
        .iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .chain(connection_routes("{connection_id}", 0).into_iter().map(|(method, path, _)| (method.to_string(), path)))
        .collect();
    assert_eq!(tabled, documented);
}

#[tokio::test]
async fn every_console_route_refuses_a_missing_malformed_or_wrong_key_alike_for_any_id() {
    let tenants = two_tenants().await;
    let world = &tenants.world;
    let (key, id) = (tenants.acme.expose(), tenants.acme_connection.as_str());
    let nobody = ConnectionId::generate(&RandomIds.new_id()).to_string();
    let before = stored_state(world, id).await;

    let authorizations: Vec<Option<String>> = vec![
        None,
        Some(String::new()),
        Some("Bearer".into()),
        Some("Bearer ".into()),
        Some(key.to_string()),
        Some(format!("Basic {}", BASE64.encode(format!("acme:{key}")))),
        Some(format!("Token {key}")),
        Some("Bearer hsk_wrong".into()),
        Some(format!("Bearer {}", &key[..key.len() - 1])),
        Some(format!("Bearer {key}x")),
        Some(format!("Bearer {}", key.to_uppercase())),
        Some(format!("Bearer {key},Bearer {key}")),
        Some(format!("Bearer {}", "k".repeat(10_000))),
    ];
    for authorization in &authorizations {
        let authorization = authorization.as_deref();
        for (method, path) in TENANT_ROUTES {
            let reply = call(world, console_request(method, path, Some(&json!({})), authorization)).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{method} {path} with {authorization:?}");
            assert_eq!(reply.json()["error"]["code"], "unauthorized");
        }
        let routes = connection_routes(id, 1).into_iter().zip(connection_routes(&nobody, 1));
        for ((method, path, body), (_, missing_path, missing_body)) in routes {
            let existing = call(world, console_request(method, &path, body.as_ref(), authorization)).await;
            let missing =
                call(world, console_request(method, &missing_path, missing_body.as_ref(), authorization)).await;
            assert_eq!(existing.status, StatusCode::UNAUTHORIZED, "{method} {path} with {authorization:?}");
            assert_eq!(existing.json()["error"]["code"], "unauthorized");
            assert_eq!((existing.status, &existing.body), (missing.status, &missing.body), "{method} {path}");
        }
    }

    assert_eq!(stored_state(world, id).await, before, "nothing changed");
    assert!(queued_connections(world.deps.push.work.as_ref()).await.is_empty(), "nothing was pushed");
    let parked = queued_connections(world.deps.push.parked.as_ref()).await;
    assert_eq!(parked.len(), 2, "the parked changes stayed parked: {parked:?}");
}

#[tokio::test]
async fn a_tenant_cannot_tell_another_tenants_connections_from_missing_ones_nor_change_them() {
    let tenants = two_tenants().await;
    let world = &tenants.world;
    // A minute on, whatever a route would refresh or start carries a new time.
    world.clock.advance(time::Duration::minutes(1));
    let acme_before = stored_state(world, &tenants.acme_connection).await;
    let globex_before = stored_state(world, &tenants.globex_connection).await;

    let pairs = [(&tenants.globex, &tenants.acme_connection), (&tenants.acme, &tenants.globex_connection)];
    for (caller, theirs) in pairs {
        let bearer = format!("Bearer {}", caller.expose());
        let nobody = ConnectionId::generate(&RandomIds.new_id()).to_string();
        let routes = connection_routes(theirs, 1).into_iter().zip(connection_routes(&nobody, 1));
        for ((method, path, body), (_, missing_path, missing_body)) in routes {
            let other = call(world, console_request(method, &path, body.as_ref(), Some(&bearer))).await;
            let missing =
                call(world, console_request(method, &missing_path, missing_body.as_ref(), Some(&bearer))).await;
            assert_eq!(other.status, StatusCode::NOT_FOUND, "{method} {path}: {}", other.body);
            assert_eq!(
                (other.status, other.body.replace(theirs.as_str(), "{id}")),
                (missing.status, missing.body.replace(&nobody, "{id}")),
                "{method} {path}: another tenant's connection answers as a missing one"
            );
        }
        let listed = call(world, Event::get("/connections").header("authorization", &bearer)).await.json();
        let ids: Vec<&str> =
            listed["connections"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
        assert!(!ids.contains(&theirs.as_str()), "{ids:?}");
        assert_eq!(ids.len(), 1, "only its own: {ids:?}");
    }

    assert_eq!(stored_state(world, &tenants.acme_connection).await, acme_before);
    assert_eq!(stored_state(world, &tenants.globex_connection).await, globex_before);
    assert!(queued_connections(world.deps.push.work.as_ref()).await.is_empty(), "nothing was pushed or redriven");
    let mut owners = vec![tenants.acme_connection.clone(), tenants.globex_connection.clone()];
    owners.sort();
    assert_eq!(queued_connections(world.deps.push.parked.as_ref()).await, owners, "the parked changes stayed parked");

    // The same requests from the owner do what they say: the refusals above were about ownership.
    let (method, path, body) = connection_routes(&tenants.acme_connection, 1).swap_remove(3);
    let saved = call(world, console_request(method, &path, body.as_ref(), None).bearer(tenants.acme.expose())).await;
    assert_eq!((method, saved.status), ("PUT", StatusCode::OK), "{}", saved.body);
}

// ---------------------------------------------------------------------------------------------
// OAuth install
// ---------------------------------------------------------------------------------------------

fn install_with_query(query: &str) -> Event {
    Event::get(&format!("/oauth/install?{query}"))
}

/// `return_to=<target>`, encoded so that the handler reads exactly `target`.
fn return_to(target: &str) -> String {
    let mut url = Url::parse("https://hubsync.example.com/oauth/install").unwrap();
    url.query_pairs_mut().append_pair("return_to", target);
    url.query().unwrap().to_string()
}

#[tokio::test]
async fn install_refuses_every_return_address_off_the_allowed_origins() {
    let world = World::new().await;
    let key = world.tenant("acme").await;
    let handler = oauth_callback::router(world.function(Function::OAuthCallback).await);
    let targets = [
        "https://evil.example.com/hubspot",
        "https://console.example.com.evil.com/hubspot",
        "https://console.example.com@evil.com/hubspot",
        "https://console.example.com:443@evil.com/hubspot",
        "https://console.example.com%40evil.com/hubspot",
        "https://evil.com\\@console.example.com/hubspot",
        "https://evil.com#@console.example.com/hubspot",
        "https://evil.com?@console.example.com/hubspot",
        "https://console.example.com\n.evil.com/hubspot",
        "https://console.example.com./hubspot",
        "https://console.example.com:8443/hubspot",
        "https://с\u{43e}nsole.example.com/hubspot",
        "http://console.example.com/hubspot",
        "ftp://console.example.com/hubspot",
        "javascript:alert(document.domain)//https://console.example.com",
        "data:text/html,<script>location='https://evil.com'</script>",
        "//evil.com/hubspot",
        "///evil.com/hubspot",
        "/\\evil.com/hubspot",
        "\\\\evil.com/hubspot",
        "/hubspot",
        "https:evil.com/hubspot",
        "https%3A%2F%2Fevil.com%2Fhubspot",
        " https://evil.com/hubspot",
        "",
    ];
    let mut queries: Vec<String> = targets.iter().map(|target| return_to(target)).collect();
    // Sent as is: the query's own decoding must not make an allowed address of them either.
    queries.extend(
        [
            "return_to=https%3A%2F%2Fevil.com%2Fhubspot",
            "return_to=https%3A%2F%2Fconsole.example.com%40evil.com%2F",
            "return_to=https%253A%252F%252Fconsole.example.com%252F",
            "return_to=https://console.example.com/hubspot&return_to=https://evil.com/",
            "return_to=https://evil.com/&return_to=https://console.example.com/hubspot",
            "tenant=acme",
        ]
        .map(String::from),
    );
    for query in &queries {
        let reply = invoke(&handler, install_with_query(query).bearer(key.expose())).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}: {}", reply.body);
        assert!(reply.headers.get("location").is_none(), "{query}");
        assert!(!reply.body.contains(&world.sim.base_url()), "no authorize URL for {query}");
    }

    // The allowed origin itself gets the consent page: the refusals above were about the address.
    let reply =
        invoke(&handler, install_with_query(&return_to(&format!("{CONSOLE}/hubspot"))).bearer(key.expose())).await;
    assert_eq!(reply.status, StatusCode::FOUND, "{}", reply.body);
    assert!(world.deps.store.list_connections(&TenantId::new("acme")).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_callback_returns_only_to_the_address_its_state_was_issued_for() {
    let world = World::new().await;
    let key = world.tenant("acme").await;
    let hubspot_reply = consent(&start(&world, key.expose()).await).await;
    let injected = format!("{hubspot_reply}&{}&redirect_uri=https%3A%2F%2Fevil.com%2F", return_to("https://evil.com/"));
    let back = callback(&world, &injected).await;
    assert_eq!(back.status, StatusCode::FOUND, "{}", back.body);
    let location = Url::parse(back.location()).unwrap();
    assert_eq!(location.origin().ascii_serialization(), CONSOLE);
    assert_eq!(query(back.location())["hubsync_status"], "connected");
}

#[tokio::test]
async fn forged_altered_and_expired_states_are_refused_before_the_code_is_spent() {
    let world = World::new().await;
    let key = world.tenant("acme").await;
    let hubspot_reply = consent(&start(&world, key.expose()).await).await;
    let params = query(&format!("https://x/?{hubspot_reply}"));
    let (code, state) = (params["code"].as_str(), params["state"].as_str());
    let mut altered = state.to_string().into_bytes();
    altered[0] = if altered[0] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    let tokens_before = world.token_calls();

    let forged = [
        format!("code={code}&state=forged"),
        format!("code={code}&state={altered}"),
        format!("code={code}&state={}", &state[..state.len() - 1]),
        format!("code={code}&state={state}A"),
        format!("code={code}&state={state}%00"),
        format!("code={code}&state=%20{state}"),
        format!("code={code}&state="),
        format!("code={code}"),
        format!("code={code}&state=forged&state={state}"),
        format!("code={code}&state={state}&state=forged"),
    ];
    for query in &forged {
        let reply = callback(&world, query).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}: {}", reply.body);
        assert!(reply.headers.get("location").is_none(), "{query}");
    }
    assert_eq!(world.token_calls(), tokens_before, "no code was exchanged");
    assert!(world.deps.store.list_connections(&TenantId::new("acme")).await.unwrap().is_empty());

    // The genuine state and code still work: the forgeries spent neither.
    let back = callback(&world, &hubspot_reply).await;
    assert_eq!(query(back.location())["hubsync_status"], "connected");

    // An expired state neither redirects nor exchanges its code.
    let globex = world.tenant("globex").await;
    let late_reply = consent(&start(&world, globex.expose()).await).await;
    world.clock.advance(time::Duration::minutes(11));
    let tokens_before = world.token_calls();
    let late = callback(&world, &late_reply).await;
    assert_eq!(late.status, StatusCode::BAD_REQUEST);
    assert!(late.headers.get("location").is_none());
    assert_eq!(world.token_calls(), tokens_before);
    assert!(world.deps.store.list_connections(&TenantId::new("globex")).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_state_is_spent_by_its_first_use_even_at_the_same_time_or_when_the_install_failed() {
    let world = World::new().await;
    let key = world.tenant("acme").await;
    let hubspot_reply = consent(&start(&world, key.expose()).await).await;
    let (first, second) = tokio::join!(callback(&world, &hubspot_reply), callback(&world, &hubspot_reply));
    let mut statuses = [first.status, second.status];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::FOUND, StatusCode::BAD_REQUEST], "{} / {}", first.body, second.body);
    let won = if first.status == StatusCode::FOUND { &first } else { &second };
    assert_eq!(query(won.location())["hubsync_status"], "connected");
    assert_eq!(world.deps.store.list_connections(&TenantId::new("acme")).await.unwrap().len(), 1);

    // A state whose install was denied cannot be used again with a code.
    let hubspot_reply = consent(&start(&world, key.expose()).await).await;
    let params = query(&format!("https://x/?{hubspot_reply}"));
    let denied = callback(&world, &format!("error=access_denied&state={}", params["state"])).await;
    assert_eq!(query(denied.location())["hubsync_error"], "access_denied");
    let tokens_before = world.token_calls();
    let reused = callback(&world, &hubspot_reply).await;
    assert_eq!(reused.status, StatusCode::BAD_REQUEST, "{}", reused.body);
    assert!(reused.headers.get("location").is_none());
    assert_eq!(world.token_calls(), tokens_before, "the code was not exchanged");
}

#[tokio::test]
async fn a_spent_code_connects_nobody_else() {
    // Shared portals allowed, so the spent code is all that stops the second tenant.
    let world = World::with(hubspot_sim::SimConfig::default(), |s| s.allow_shared_portals = true).await;
    let acme = world.tenant("acme").await;
    let globex = world.tenant("globex").await;
    let acme_reply = consent(&start(&world, acme.expose()).await).await;
    assert_eq!(query(callback(&world, &acme_reply).await.location())["hubsync_status"], "connected");
    let acme_connections = world.deps.store.list_connections(&TenantId::new("acme")).await.unwrap();

    let code = query(&format!("https://x/?{acme_reply}"))["code"].clone();
    let globex_state = query(&start(&world, globex.expose()).await)["state"].clone();
    let back = callback(&world, &format!("code={code}&state={globex_state}")).await;
    let outcome = query(back.location());
    assert_eq!(outcome["hubsync_error"], "code_rejected", "{outcome:?}");
    assert!(world.deps.store.list_connections(&TenantId::new("globex")).await.unwrap().is_empty());
    assert_eq!(world.deps.store.list_connections(&TenantId::new("acme")).await.unwrap(), acme_connections);
}
