//! Didomi's HubSpot integration, as Didomi documents it (developers.didomi.io, third-party
//! integrations, "Hubspot"; support.didomi.io, "How to configure Didomi-Hubspot integration"):
//! its configuration shape posted to `POST /connections`, its type rules, its bidirectional flow,
//! and an install with its four contact scopes.

use axum::http::StatusCode;
use hubspot_sim::SimConfig;
use hubsync::domain::{ConnectionStatus, FieldCatalogue, ObjectType, TenantId};
use hubsync_tests::Function;
use hubsync_tests::lambda::{Event, Reply, invoke};
use hubsync_tests::oauth::{callback, consent, query, start};
use hubsync_tests::world::{CLIENT_ID, World};
use serde_json::json;

const INGEST: &str = "http://127.0.0.1:9/didomi/ingest";

async fn call(world: &World, event: Event) -> Reply {
    invoke(&console_api::router(world.function(Function::ConsoleApi).await), event).await
}

/// A deployment for Didomi: its catalogue for the tenant, an ingest endpoint for the
/// bidirectional flow, and contact properties of each kind Didomi's rules speak of.
async fn didomi_world() -> (World, hubsync::domain::Secret) {
    let world = World::with(SimConfig::default(), |s| s.default_ingest_url = Some(INGEST.into())).await;
    let key = world.tenant("didomi-customer").await;
    let catalogue: FieldCatalogue =
        serde_json::from_str(include_str!("fixtures/catalogues/didomi.json")).expect("the Didomi catalogue");
    world.deps.store.put_catalogue(Some(&TenantId::new("didomi-customer")), &catalogue).await.unwrap();

    let token = world.sim.issue_tokens(1000, CLIENT_ID, &["crm.schemas.contacts.write"]).access_token;
    let http = reqwest::Client::new();
    for (name, kind, field_type, options) in [
        ("hubspot_email_enabled", "bool", "booleancheckbox", json!([])),
        (
            "analytics_consent",
            "enumeration",
            "radio",
            json!([{"label":"Yes","value":"true"},{"label":"No","value":"false"}]),
        ),
        ("newsletter_note", "string", "text", json!([])),
        ("topics", "string", "textarea", json!([])),
    ] {
        let created = http
            .post(format!("{}/crm/v3/properties/contacts", world.sim.base_url()))
            .bearer_auth(&token)
            .json(&json!({ "name": name, "label": name, "type": kind, "fieldType": field_type,
                           "groupName": "contactinformation", "options": options }))
            .send()
            .await
            .unwrap();
        assert!(created.status().is_success(), "{name}: {}", created.text().await.unwrap());
    }
    (world, key)
}

async fn fresh_code(world: &World, key: &str) -> String {
    query(&format!("http://x/?{}", consent(&start(world, key).await).await))["code"].clone()
}

async fn connections(world: &World) -> Vec<hubsync::domain::Connection> {
    world.deps.store.list_connections(&TenantId::new("didomi-customer")).await.unwrap()
}

#[tokio::test]
async fn didomis_documented_example_is_accepted_and_turns_the_bidirectional_flow_on() {
    let (world, key) = didomi_world().await;
    // The documentation's example, with a real code and account id in its placeholders.
    let example = r#"{ "type_id": "hubspot", "authentication": { "code": "AUTH_CODE" }, "properties": {},
      "mappings": [ { "id": "hubspot_email_enabled", "value": "consents_preferences_newsletter_enabled" } ],
      "upsert_mode": true, "app_id": "YOUR_PORTAL_ID", "enable_webhooks": true }"#;
    let body = example.replace("AUTH_CODE", &fresh_code(&world, key.expose()).await).replace("YOUR_PORTAL_ID", "1000");
    let reply =
        call(&world, Event::new("POST", "/connections").bearer(key.expose()).raw_body("application/json", &body)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let result = reply.json();
    assert_eq!(result["connection"]["portal_id"], 1000);
    let config = &result["config"]["config"];
    let contacts = &config["objects"]["contacts"];
    assert_eq!(contacts["write_mode"], "upsert");
    assert_eq!(contacts["match_key"]["kind"], "email", "organization_user_id is the contact's email");
    let field = &contacts["fields"][0];
    assert_eq!(field["hubspot_property"], "hubspot_email_enabled", "`id` is the HubSpot property");
    assert_eq!(field["platform_field"], "consents_preferences_newsletter_enabled", "`value` is Didomi's attribute");
    assert_eq!(field["platform_type"], "boolean", "from the catalogue");
    assert_eq!(field["direction"], "both");
    assert_eq!(config["options"]["webhooks_enabled"], true);
    assert_eq!(config["options"]["data_in_enabled"], true);
    assert_eq!(config["options"]["bidirectional_counter_property"], "acme_changed");
    assert_eq!(config["options"]["ingest_url"], INGEST);

    // The "<Platform> Changed" property now exists in the portal.
    let id = hubsync::domain::ConnectionId::new(result["connection"]["id"].as_str().unwrap());
    let schema = world.deps.store.get_schema(&id, ObjectType::Contacts).await.unwrap().expect("a schema");
    let counter = schema.properties.iter().find(|p| p.name == "acme_changed").expect("the counter property");
    assert_eq!((counter.label.as_str(), counter.value_type.as_str()), ("Acme Changed", "number"));
}

#[tokio::test]
async fn didomis_type_rules_refuse_a_purpose_on_text_and_a_preference_on_a_checkbox() {
    let (world, key) = didomi_world().await;
    let request = json!({
        "type_id": "hubspot",
        "authentication": { "code": fresh_code(&world, key.expose()).await },
        "mappings": [
            { "id": "newsletter_note", "value": "consents_purposes_marketing_enabled" },
            { "id": "hubspot_email_enabled", "value": "consents_preferences_topics" },
            { "id": "analytics_consent", "value": "consents_purposes_analytics_enabled" }
        ]
    });
    let reply = call(&world, Event::new("POST", "/connections").bearer(key.expose()).json_body(&request)).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.body);
    let problems = reply.json()["error"]["problems"].as_array().unwrap().clone();
    let refused: Vec<(&str, &str)> =
        problems.iter().map(|p| (p["rule"].as_str().unwrap(), p["hubspot_property"].as_str().unwrap())).collect();
    assert_eq!(refused, [("type_mismatch", "newsletter_note"), ("type_mismatch", "hubspot_email_enabled")]);
    assert!(problems[0]["fix"].as_str().unwrap().contains("enumeration whose options are exactly true and false"));
    assert!(problems[1]["fix"].as_str().unwrap().contains("single-line or multi-line text"));
    // Nothing half-installed: the portal this call connected is disconnected again.
    let left = connections(&world).await;
    assert_eq!(left.len(), 1, "the call connected the portal before the config was refused");
    assert_eq!(left[0].status, ConnectionStatus::Disabled);

    // The same mappings, corrected, with Didomi's defaults: update only, one way.
    let request = json!({
        "type_id": "hubspot",
        "authentication": { "code": fresh_code(&world, key.expose()).await },
        "mappings": [
            { "id": "analytics_consent", "value": "consents_purposes_analytics_enabled" },
            { "id": "topics", "value": "consents_preferences_topics" }
        ]
    });
    let reply = call(&world, Event::new("POST", "/connections").bearer(key.expose()).json_body(&request)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let config = &reply.json()["config"]["config"];
    assert_eq!(config["objects"]["contacts"]["write_mode"], "update_only", "upsert_mode defaults to false");
    assert_eq!(config["objects"]["contacts"]["fields"][1]["direction"], "out");
    assert_eq!(config["options"]["webhooks_enabled"], false);
    assert!(config["options"]["bidirectional_counter_property"].is_null());
}

#[tokio::test]
async fn an_app_id_that_is_not_the_connected_portal_is_refused_and_nothing_stays_connected() {
    let (world, key) = didomi_world().await;
    let request = json!({
        "type_id": "hubspot",
        "authentication": { "code": fresh_code(&world, key.expose()).await },
        "mappings": [ { "id": "hubspot_email_enabled", "value": "consents_preferences_newsletter_enabled" } ],
        "app_id": "4242",
        "enable_webhooks": true
    });
    let reply = call(&world, Event::new("POST", "/connections").bearer(key.expose()).json_body(&request)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    let message = reply.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("app_id is 4242, but the authorization code was granted on HubSpot account 1000"),
        "{message}"
    );
    assert!(connections(&world).await.iter().all(|c| c.status == ConnectionStatus::Disabled));
    assert!(world.deps.store.get_tokens(&connections(&world).await[0].id).await.unwrap().is_none());
}

#[tokio::test]
async fn a_contacts_only_tenant_installs_with_didomis_four_scopes() {
    let (world, key) = didomi_world().await;
    let four = [
        "crm.objects.contacts.read",
        "crm.objects.contacts.write",
        "crm.schemas.contacts.read",
        "crm.schemas.contacts.write",
    ];
    world.sim.add_portal(3000, &four);

    let authorize = start(&world, key.expose()).await;
    let asked = query(&authorize);
    assert_eq!(asked["scope"].split(' ').collect::<Vec<_>>(), four, "required: the four contact scopes");
    assert_eq!(asked["optional_scope"], "crm.lists.read crm.lists.write");
    let back = callback(&world, &consent(&format!("{authorize}&portal=3000")).await).await;
    let outcome = query(back.location());
    assert_eq!(outcome["hubsync_status"], "connected", "{outcome:?}");
    let connection = connections(&world).await.into_iter().find(|c| c.portal_id == 3000).unwrap();
    assert_eq!(connection.scopes, four);

    // A config that adds contacts to a list needs the lists scopes: refused, with the way back.
    let config = json!({ "version": 0, "config": { "objects": { "contacts": {
        "match_key": { "kind": "email" }, "write_mode": "update_only", "lists": ["42"],
        "fields": [ { "platform_field": "consents_purposes_analytics_enabled", "hubspot_property": "analytics_consent",
                      "direction": "out", "platform_type": "boolean" } ] } } } });
    let path = format!("/connections/{}/config/validate", connection.id.as_str());
    let reply = call(&world, Event::new("POST", &path).bearer(key.expose()).json_body(&config["config"])).await;
    let body = reply.json();
    let problems = body["problems"].as_array().or(body["error"]["problems"].as_array()).expect("problems").clone();
    let missing = problems.iter().find(|p| p["rule"] == "missing_scopes").expect("missing scopes reported");
    assert!(missing["message"].as_str().unwrap().contains("crm.lists.read, crm.lists.write"), "{missing}");
    let fix = missing["fix"].as_str().unwrap();
    assert!(fix.contains("/oauth/install?scope=crm.lists.read+crm.lists.write&return_to="), "{fix}");

    // Following it asks HubSpot for the lists scopes as required ones.
    let handler = oauth_callback::router(world.function(Function::OAuthCallback).await);
    let reconnect =
        format!("/oauth/install?scope=crm.lists.read+crm.lists.write&return_to={}/x", hubsync_tests::world::CONSOLE);
    let reply = invoke(&handler, Event::get(&reconnect).bearer(key.expose())).await;
    assert_eq!(reply.status, StatusCode::FOUND, "{}", reply.body);
    assert!(query(reply.location())["scope"].contains("crm.lists.write"));
    let unknown = format!("/oauth/install?scope=crm.everything&return_to={}/x", hubsync_tests::world::CONSOLE);
    let reply = invoke(&handler, Event::get(&unknown).bearer(key.expose())).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.body.contains("hubsync does not use the scope(s) crm.everything"), "{}", reply.body);
}
