//! The console API through its Lambda handler (API Gateway v2 events), on moto and the simulator.

use axum::http::StatusCode;
use hubsync::domain::{ConnectionId, ConnectionStatus, ObjectType};
use hubsync_tests::Function;
use hubsync_tests::lambda::{Event, Reply, invoke};
use hubsync_tests::oauth::install;
use hubsync_tests::world::{CLIENT_ID, World};
use serde_json::{Value, json};

async fn call(world: &World, event: Event) -> Reply {
    invoke(&console_api::router(world.function(Function::ConsoleApi).await), event).await
}

fn contacts_config(version: u64, fields: Value) -> Value {
    json!({
        "version": version,
        "config": {
            "objects": {
                "contacts": { "match_key": { "kind": "email" }, "write_mode": "upsert", "fields": fields }
            }
        }
    })
}

fn field(platform_field: &str, property: &str, platform_type: &str) -> Value {
    json!({ "platform_field": platform_field, "hubspot_property": property, "direction": "out", "platform_type": platform_type })
}

#[tokio::test]
async fn a_tenant_sees_and_changes_only_its_own_connections() {
    let world = World::new().await;
    let acme = world.tenant("acme").await;
    let globex = world.tenant("globex").await;
    let acme_conn = install(&world, acme.expose()).await;

    let listed = call(&world, Event::get("/connections").bearer(acme.expose())).await.json();
    assert_eq!(listed["connections"].as_array().unwrap().len(), 1);
    assert_eq!(listed["connections"][0]["id"], acme_conn.as_str());
    let listed = call(&world, Event::get("/connections").bearer(globex.expose())).await.json();
    assert_eq!(listed["connections"], json!([]));

    // Every per-connection route, with the other tenant's key: indistinguishable from "no such connection".
    let body = contacts_config(0, json!([field("first_name", "firstname", "string")]));
    let routes = [
        Event::get(&format!("/connections/{acme_conn}")),
        Event::new("DELETE", &format!("/connections/{acme_conn}")),
        Event::get(&format!("/connections/{acme_conn}/config")),
        Event::new("PUT", &format!("/connections/{acme_conn}/config")).json_body(&body),
        Event::new("POST", &format!("/connections/{acme_conn}/config/validate")).json_body(&body["config"]),
        Event::get(&format!("/connections/{acme_conn}/schema")),
        Event::new("POST", &format!("/connections/{acme_conn}/schema/refresh")),
    ];
    for route in routes {
        let reply = call(&world, route.bearer(globex.expose())).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
        assert_eq!(reply.json()["error"]["code"], "not_found");
    }
    let untouched = world.deps.store.get_connection(&ConnectionId::new(&acme_conn)).await.unwrap().unwrap();
    assert_eq!(untouched.status, ConnectionStatus::Active);
    assert!(world.deps.store.get_config(&ConnectionId::new(&acme_conn)).await.unwrap().is_none());
}

#[tokio::test]
async fn every_route_refuses_a_missing_or_wrong_key() {
    let world = World::new().await;
    let acme = world.tenant("acme").await;
    let conn = install(&world, acme.expose()).await;
    for (method, path) in [
        ("GET", "/connections".to_string()),
        ("POST", "/connections".to_string()),
        ("GET", "/catalogue".to_string()),
        ("GET", format!("/connections/{conn}")),
        ("DELETE", format!("/connections/{conn}")),
        ("GET", format!("/connections/{conn}/config")),
        ("PUT", format!("/connections/{conn}/config")),
        ("POST", format!("/connections/{conn}/config/validate")),
        ("GET", format!("/connections/{conn}/schema")),
        ("POST", format!("/connections/{conn}/schema/refresh")),
    ] {
        for key in [None, Some("hsk_wrong"), Some(&acme.expose()[..acme.expose().len() - 1])] {
            let event = Event::new(method, &path).json_body(&json!({}));
            let event = match key {
                Some(key) => event.bearer(key),
                None => event,
            };
            let reply = call(&world, event).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{method} {path} with {key:?}");
            assert_eq!(reply.json()["error"]["code"], "unauthorized");
        }
    }
}

#[tokio::test]
async fn a_config_is_checked_saved_and_locked_by_version() {
    let world = World::new().await;
    let key = world.tenant("acme").await;
    let conn = install(&world, key.expose()).await;
    let path = format!("/connections/{conn}/config");

    let empty = call(&world, Event::get(&path).bearer(key.expose())).await.json();
    assert_eq!(empty["version"], 0);

    let good = contacts_config(
        0,
        json!([field("first_name", "firstname", "string"), field("seats", "num_employees", "number")]),
    );
    let saved = call(&world, Event::new("PUT", &path).bearer(key.expose()).json_body(&good)).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    assert_eq!(saved.json()["version"], 1);

    // A second editor who also read version 0.
    let stale = call(&world, Event::new("PUT", &path).bearer(key.expose()).json_body(&good)).await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert!(stale.json()["error"]["message"].as_str().unwrap().contains("reload"));

    let bad =
        contacts_config(1, json!([field("seats", "firstname", "number"), field("signup", "createdate", "datetime")]));
    let refused = call(&world, Event::new("PUT", &path).bearer(key.expose()).json_body(&bad)).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.body);
    let problems = refused.json()["error"]["problems"].clone();
    let rules: Vec<&str> = problems.as_array().unwrap().iter().map(|p| p["rule"].as_str().unwrap()).collect();
    assert_eq!(rules, vec!["type_mismatch", "read_only_target"]);
    assert!(problems[0]["fix"].as_str().unwrap().contains("number property"));

    let stored = call(&world, Event::get(&path).bearer(key.expose())).await.json();
    assert_eq!(stored["version"], 1, "nothing was saved by the refused request");
    assert_eq!(stored["config"]["objects"]["contacts"]["fields"][0]["hubspot_property"], "firstname");
}

#[tokio::test]
async fn validation_is_a_dry_run_that_lists_every_problem() {
    let world = World::new().await;
    let key = world.tenant("acme").await;
    let conn = install(&world, key.expose()).await;
    let config = contacts_config(
        0,
        json!([
            field("a", "firstname", "string"),
            field("b", "firstname", "string"),
            field("c", "no_such_property", "string"),
        ]),
    )["config"]
        .clone();
    let reply = call(
        &world,
        Event::new("POST", &format!("/connections/{conn}/config/validate")).bearer(key.expose()).json_body(&config),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let verdict = reply.json();
    assert_eq!(verdict["valid"], false);
    let rules: Vec<&str> =
        verdict["problems"].as_array().unwrap().iter().map(|p| p["rule"].as_str().unwrap()).collect();
    assert_eq!(rules, vec!["property_mapped_twice", "property_missing"]);
    assert!(world.deps.store.get_config(&ConnectionId::new(&conn)).await.unwrap().is_none());
}

#[tokio::test]
async fn malformed_bodies_get_a_clear_error() {
    let world = World::new().await;
    let key = world.tenant("acme").await;
    let conn = install(&world, key.expose()).await;
    let path = format!("/connections/{conn}/config");
    let reply =
        call(&world, Event::new("PUT", &path).bearer(key.expose()).raw_body("application/json", "{not json")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"]["code"], "bad_request");

    let wrong_enum = json!({"version": 0, "config": {"objects": {"contacts": {"match_key": {"kind": "email"}, "write_mode": "sometimes", "fields": []}}}});
    let reply = call(&world, Event::new("PUT", &path).bearer(key.expose()).json_body(&wrong_enum)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.json()["error"]["message"].as_str().unwrap().contains("sometimes"), "{}", reply.body);

    let huge = json!({"version": 0, "config": {"objects": {}}, "padding": "x".repeat(300 * 1024)});
    let reply = call(&world, Event::new("PUT", &path).bearer(key.expose()).json_body(&huge)).await;
    assert!(
        reply.status == StatusCode::PAYLOAD_TOO_LARGE || reply.status == StatusCode::BAD_REQUEST,
        "{}",
        reply.status
    );
}

#[tokio::test]
async fn enabling_the_bidirectional_flow_creates_the_counter_property() {
    let world = World::new().await;
    let key = world.tenant("acme").await;
    let conn = install(&world, key.expose()).await;
    let mut config = contacts_config(0, json!([field("first_name", "firstname", "string")]));
    config["config"]["options"] =
        json!({"webhooks_enabled": true, "data_in_enabled": true, "bidirectional_counter_property": "acme_changed"});
    let reply =
        call(&world, Event::new("PUT", &format!("/connections/{conn}/config")).bearer(key.expose()).json_body(&config))
            .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);

    let schema = call(&world, Event::get(&format!("/connections/{conn}/schema")).bearer(key.expose())).await.json();
    let contacts = schema["schemas"]["contacts"]["properties"].as_array().unwrap();
    let counter = contacts.iter().find(|p| p["name"] == "acme_changed").expect("counter property created");
    assert_eq!(counter["value_type"], "number");
    assert_eq!(counter["label"], "Acme Changed");

    // Saving again does not try to create it twice.
    config["version"] = json!(1);
    let again =
        call(&world, Event::new("PUT", &format!("/connections/{conn}/config")).bearer(key.expose()).json_body(&config))
            .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
}

#[tokio::test]
async fn refreshing_the_schema_picks_up_new_properties() {
    let world = World::new().await;
    let key = world.tenant("acme").await;
    let conn = install(&world, key.expose()).await;
    let path = format!("/connections/{conn}/config/validate");
    let config = contacts_config(0, json!([field("tier", "customer_tier", "string")]))["config"].clone();
    let verdict = call(&world, Event::new("POST", &path).bearer(key.expose()).json_body(&config)).await.json();
    assert_eq!(verdict["problems"][0]["rule"], "property_missing");

    // Someone adds the property in HubSpot, then clicks "Update attributes".
    let token = world.deps.tokens.access_token(&ConnectionId::new(&conn)).await.unwrap();
    let property = hubsync::hubspot::PropertyCreate {
        name: "customer_tier".into(),
        label: "Customer tier".into(),
        property_type: "string".into(),
        field_type: "text".into(),
        group_name: "contactinformation".into(),
        description: None,
        options: vec![],
        has_unique_value: false,
    };
    world.deps.hubspot.create_property(&token, ObjectType::Contacts, &property).await.unwrap();
    let refreshed =
        call(&world, Event::new("POST", &format!("/connections/{conn}/schema/refresh")).bearer(key.expose())).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    let verdict = call(&world, Event::new("POST", &path).bearer(key.expose()).json_body(&config)).await.json();
    assert_eq!(verdict["valid"], true, "{verdict}");
}

#[tokio::test]
async fn uninstall_stops_the_connection_revokes_and_deletes_its_tokens() {
    let world = World::new().await;
    let key = world.tenant("acme").await;
    let conn = install(&world, key.expose()).await;
    let id = ConnectionId::new(&conn);
    let refresh = world.deps.tokens.refresh_token(&id).await.unwrap();

    let reply = call(&world, Event::new("DELETE", &format!("/connections/{conn}")).bearer(key.expose())).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.json()["status"], "disabled");
    assert_eq!(world.deps.store.get_connection(&id).await.unwrap().unwrap().status, ConnectionStatus::Disabled);
    assert!(world.deps.store.get_tokens(&id).await.unwrap().is_none());
    let refused = world.deps.hubspot.refresh_token(CLIENT_ID, &"sim-client-secret".into(), &refresh).await;
    assert!(refused.is_err(), "HubSpot no longer accepts the refresh token");
}

#[tokio::test]
async fn the_openapi_document_is_served_and_names_every_route() {
    let world = World::new().await;
    let reply = call(&world, Event::get("/openapi.json")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let doc = reply.json();
    assert_eq!(doc["openapi"], "3.0.3");
    for path in [
        "/connections",
        "/connections/{connection_id}",
        "/connections/{connection_id}/config",
        "/connections/{connection_id}/config/validate",
        "/connections/{connection_id}/schema",
        "/connections/{connection_id}/schema/refresh",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
}
