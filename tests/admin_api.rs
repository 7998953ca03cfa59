//! The platform team's admin API through the console-api Lambda handler (API Gateway v2
//! events), on moto (IAM enforced, the console's role) and the simulator: a stack onboards a
//! tenant with it alone.

use std::sync::Arc;

use axum::http::StatusCode;
use hubspot_sim::SimConfig;
use hubsync::adapters::StaticSecrets;
use hubsync::domain::{ApiKeyRecord, ConnectionId, ConnectionStatus, TenantId};
use hubsync::ports::AppSecrets;
use hubsync_tests::Function;
use hubsync_tests::lambda::{Event, Reply, invoke};
use hubsync_tests::oauth::install;
use hubsync_tests::world::{ADMIN_API_KEY, CLIENT_ID, CLIENT_SECRET, DEVELOPER_API_KEY, World};
use serde_json::{Value, json};

/// Every route of the admin API, as the OpenAPI document names it.
const ADMIN_ROUTES: [(&str, &str); 14] = [
    ("GET", "/admin/tenants"),
    ("POST", "/admin/tenants"),
    ("GET", "/admin/tenants/{tenant_id}/keys"),
    ("POST", "/admin/tenants/{tenant_id}/keys"),
    ("DELETE", "/admin/tenants/{tenant_id}/keys/{key_id}"),
    ("POST", "/admin/tenants/{tenant_id}/keys/{key_id}/rotate"),
    ("GET", "/admin/catalogue"),
    ("PUT", "/admin/catalogue"),
    ("GET", "/admin/tenants/{tenant_id}/catalogue"),
    ("PUT", "/admin/tenants/{tenant_id}/catalogue"),
    ("GET", "/admin/connections"),
    ("POST", "/admin/connections/{connection_id}/redrive"),
    ("GET", "/admin/webhook-subscriptions"),
    ("POST", "/admin/webhook-subscriptions"),
];

#[test]
fn the_admin_route_table_is_the_documents_admin_api() {
    let document: Value = serde_json::from_str(console_api::OPENAPI).unwrap();
    let mut documented = std::collections::BTreeSet::new();
    for (path, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap().iter().filter(|(m, _)| m.as_str() != "parameters") {
            let tags = operation["tags"].as_array().cloned().unwrap_or_default();
            if tags.contains(&json!("admin")) {
                assert!(path.starts_with("/admin/"), "{path}: admin operations live under /admin");
                assert_eq!(operation["security"], json!([{ "adminKey": [] }]), "{method} {path}");
                documented.insert((method.to_uppercase(), path.clone()));
            } else {
                assert!(!path.starts_with("/admin/"), "{method} {path} is under /admin but not tagged admin");
            }
        }
    }
    let tabled = ADMIN_ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(documented, tabled);
}

async fn call(world: &World, event: Event) -> Reply {
    invoke(&console_api::router(world.function(Function::ConsoleApi).await), event).await
}

async fn admin(world: &World, method: &str, path: &str, body: Value) -> Reply {
    call(world, Event::new(method, path).json_body(&body).bearer(ADMIN_API_KEY)).await
}

#[tokio::test]
async fn every_admin_route_refuses_a_missing_key_a_wrong_one_and_a_tenants() {
    let world = World::new().await;
    let tenant_key = world.tenant("acme").await;
    let conn = install(&world, tenant_key.expose()).await;
    let almost = &ADMIN_API_KEY[..ADMIN_API_KEY.len() - 1];
    for (method, route) in ADMIN_ROUTES {
        let path = route.replace("{tenant_id}", "acme").replace("{key_id}", "k1").replace("{connection_id}", &conn);
        for key in [None, Some(tenant_key.expose()), Some(almost)] {
            let event = Event::new(method, &path).json_body(&json!({ "id": "intruder" }));
            let event = match key {
                Some(key) => event.bearer(key),
                None => event,
            };
            let reply = call(&world, event).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{method} {path} with {key:?}: {}", reply.body);
            assert_eq!(reply.json()["error"]["code"], "unauthorized");
        }
    }
    assert!(world.deps.store.get_tenant(&TenantId::new("intruder")).await.unwrap().is_none());
}

#[tokio::test]
async fn without_an_admin_key_in_the_app_secret_every_admin_route_is_refused() {
    let world = World::new().await;
    let mut deps = world.function(Function::ConsoleApi).await;
    deps.secrets = Arc::new(StaticSecrets::new(AppSecrets {
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        delivery_signing_secret: "delivery".into(),
        token_encryption_key: None,
        admin_api_key: None,
        developer_api_key: None,
    }));
    let router = console_api::router(deps);
    for (method, route) in ADMIN_ROUTES {
        let path = route.replace("{tenant_id}", "acme").replace("{key_id}", "k1").replace("{connection_id}", "c1");
        let event = Event::new(method, &path).json_body(&json!({ "id": "intruder" })).bearer(ADMIN_API_KEY);
        let reply = invoke(&router, event).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{method} {path}: {}", reply.body);
    }
    assert!(world.deps.store.get_tenant(&TenantId::new("intruder")).await.unwrap().is_none());
}

#[tokio::test]
async fn a_tenant_is_onboarded_with_the_admin_api_alone() {
    let world = World::new().await;
    let created = admin(&world, "POST", "/admin/tenants", json!({ "id": "globex", "name": "Globex Corp" })).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.json()["name"], "Globex Corp");
    let again = admin(&world, "POST", "/admin/tenants", json!({ "id": "globex" })).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "one tenant per id: {}", again.body);
    let bad = admin(&world, "POST", "/admin/tenants", json!({ "id": "not ok/../x" })).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.json()["error"]["message"].as_str().unwrap().contains("letters, digits"), "{}", bad.body);

    let listed = admin(&world, "GET", "/admin/tenants", json!({})).await.json();
    assert!(listed["tenants"].as_array().unwrap().iter().any(|t| t["id"] == "globex"), "{listed}");

    // The key is shown once; listed, only its prefix is.
    let issued = admin(&world, "POST", "/admin/tenants/globex/keys", json!({ "label": "console embed" })).await;
    assert_eq!(issued.status, StatusCode::CREATED, "{}", issued.body);
    let issued = issued.json();
    let key = issued["key"].as_str().unwrap().to_string();
    world.secrets.register(hubsync_tests::logs::SecretKind::ConsoleApiKey, &key);
    assert!(key.starts_with(issued["prefix"].as_str().unwrap()));
    let console = call(&world, Event::get("/connections").bearer(&key)).await;
    assert_eq!(console.status, StatusCode::OK, "the new key opens the tenant's console: {}", console.body);
    assert_eq!(console.json()["connections"], json!([]));
    let keys = admin(&world, "GET", "/admin/tenants/globex/keys", json!({})).await;
    assert!(!keys.body.contains(&key), "a listed key never shows itself");
    assert_eq!(keys.json()["keys"][0]["label"], "console embed");
    assert_eq!(keys.json()["keys"][0]["prefix"], issued["prefix"]);

    // Rotated: the old key stops at once, the new one works.
    let key_id = issued["key_id"].as_str().unwrap();
    let rotated = admin(&world, "POST", &format!("/admin/tenants/globex/keys/{key_id}/rotate"), json!({})).await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.body);
    let new_key = rotated.json()["key"].as_str().unwrap().to_string();
    world.secrets.register(hubsync_tests::logs::SecretKind::ConsoleApiKey, &new_key);
    assert_eq!(rotated.json()["label"], "console embed");
    assert_eq!(call(&world, Event::get("/connections").bearer(&key)).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(call(&world, Event::get("/connections").bearer(&new_key)).await.status, StatusCode::OK);

    // Revoked: refused from the next request on.
    let new_id = rotated.json()["key_id"].as_str().unwrap().to_string();
    let revoked = admin(&world, "DELETE", &format!("/admin/tenants/globex/keys/{new_id}"), json!({})).await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    assert_eq!(call(&world, Event::get("/connections").bearer(&new_key)).await.status, StatusCode::UNAUTHORIZED);
    let gone = admin(&world, "DELETE", &format!("/admin/tenants/globex/keys/{new_id}"), json!({})).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let nobody = admin(&world, "POST", "/admin/tenants/nobody/keys", json!({})).await;
    assert_eq!(nobody.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_key_past_its_expiry_is_refused() {
    let world = World::new().await;
    admin(&world, "POST", "/admin/tenants", json!({ "id": "initech" })).await;
    let past =
        admin(&world, "POST", "/admin/tenants/initech/keys", json!({ "expires_at": "2020-01-01T00:00:00Z" })).await;
    assert_eq!(past.status, StatusCode::BAD_REQUEST, "an expiry must be ahead: {}", past.body);

    let now = time::OffsetDateTime::now_utc();
    let (key, mut record) = ApiKeyRecord::generate(TenantId::new("initech"), "short-lived".into(), now);
    record.expires_at = Some(now + time::Duration::hours(1));
    world.deps.store.put_api_key(&record).await.unwrap();
    assert_eq!(call(&world, Event::get("/connections").bearer(key.expose())).await.status, StatusCode::OK);
    record.expires_at = Some(now - time::Duration::seconds(1));
    world.deps.store.put_api_key(&record).await.unwrap();
    assert_eq!(call(&world, Event::get("/connections").bearer(key.expose())).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_platform_team_sees_every_connections_health_and_redrives_any() {
    let world = World::new().await;
    let acme = world.tenant("acme").await;
    let globex = world.tenant("globex").await;
    let acme_conn = install(&world, acme.expose()).await;
    // The next install lands on the portal added last: globex has a portal of its own.
    world.sim.add_portal(2000, hubspot_sim::ALL_SCOPES);
    let globex_conn = install(&world, globex.expose()).await;
    let id = ConnectionId::new(&globex_conn);
    let mut connection = world.deps.store.get_connection(&id).await.unwrap().unwrap();
    connection.status = ConnectionStatus::NeedsReauth;
    world.deps.store.put_connection(&connection).await.unwrap();

    let health = admin(&world, "GET", "/admin/connections", json!({})).await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.body);
    let health = health.json();
    let of = |conn: &str| {
        health["connections"].as_array().unwrap().iter().find(|h| h["connection"]["id"] == conn).cloned().unwrap()
    };
    assert_eq!(
        (of(&acme_conn)["tenant_id"].as_str(), of(&acme_conn)["needs_reauth"].as_bool()),
        (Some("acme"), Some(false))
    );
    assert_eq!(of(&globex_conn)["needs_reauth"], true);
    assert_eq!(of(&globex_conn)["connection"]["status"], "needs_reauth");
    assert!(!health.to_string().contains("sealed"), "no token material in the health view");

    let redriven =
        admin(&world, "POST", &format!("/admin/connections/{acme_conn}/redrive?queue=push"), json!({})).await;
    assert_eq!(redriven.status, StatusCode::OK, "{}", redriven.body);
    assert_eq!(redriven.json()["replayed"], 0);
    let unknown = admin(&world, "POST", "/admin/connections/conn_nope/redrive", json!({})).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/fixtures/catalogues/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[test]
fn each_platforms_fields_are_expressible_as_a_catalogue() {
    for platform in ["didomi", "gitmesh", "jimo", "impact"] {
        let catalogue: hubsync::domain::FieldCatalogue =
            serde_json::from_value(fixture(platform)).unwrap_or_else(|e| panic!("{platform}: {e}"));
        assert_eq!(catalogue.problems(), Vec::<String>::new(), "{platform}");
        assert!(catalogue.fields.iter().any(|f| f.identifies.is_some()), "{platform} identifies its records");
    }
}

#[tokio::test]
async fn mappings_are_checked_against_the_platforms_catalogue() {
    let world = World::new().await;
    let acme = world.tenant("acme").await;
    let conn = install(&world, acme.expose()).await;
    let no_catalogue = call(&world, Event::get("/catalogue").bearer(acme.expose())).await.json();
    assert_eq!(
        (no_catalogue["source"].as_str(), no_catalogue["fields"].as_array().map(Vec::len)),
        (Some("none"), Some(0))
    );

    let declared = admin(&world, "PUT", "/admin/catalogue", fixture("gitmesh")).await;
    assert_eq!(declared.status, StatusCode::OK, "{}", declared.body);
    let served = call(&world, Event::get("/catalogue").bearer(acme.expose())).await.json();
    assert_eq!(served["source"], "deployment");
    assert!(served["fields"].as_array().unwrap().iter().any(|f| f["name"] == "score" && f["computed"] == true));

    let field = |name: &str, property: &str, direction: &str, platform_type: &str| json!({ "platform_field": name, "hubspot_property": property, "direction": direction, "platform_type": platform_type });
    let config = json!({ "objects": { "contacts": { "match_key": { "kind": "email" }, "write_mode": "upsert", "fields": [
        field("displayName", "firstname", "out", "string"),
        field("nickname", "lastname", "out", "string"),
        field("score", "hs_lead_status", "both", "number"),
        field("joinedAt", "company", "out", "string"),
    ] } } });
    let checked = call(
        &world,
        Event::new("POST", &format!("/connections/{conn}/config/validate")).json_body(&config).bearer(acme.expose()),
    )
    .await;
    assert_eq!(checked.status, StatusCode::OK, "{}", checked.body);
    let problems = checked.json()["problems"].as_array().unwrap().clone();
    let rule_of = |field: &str| -> Vec<String> {
        problems
            .iter()
            .filter(|p| p["platform_field"] == field)
            .map(|p| p["rule"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(rule_of("displayName").is_empty(), "{problems:?}");
    assert!(rule_of("nickname").contains(&"field_not_in_catalogue".to_string()), "{problems:?}");
    assert!(rule_of("score").contains(&"computed_field_inbound".to_string()), "{problems:?}");
    assert!(rule_of("joinedAt").contains(&"platform_type_mismatch".to_string()), "{problems:?}");
    let fix = problems.iter().find(|p| p["rule"] == "platform_type_mismatch").unwrap()["fix"].clone();
    assert_eq!(fix, "set `platform_type` to date");

    // A tenant's own catalogue replaces the deployment's for that tenant only.
    let own = admin(&world, "PUT", "/admin/tenants/acme/catalogue", fixture("didomi")).await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.body);
    let served = call(&world, Event::get("/catalogue").bearer(acme.expose())).await.json();
    assert_eq!(served["source"], "tenant");
    assert!(served["fields"].as_array().unwrap().iter().any(|f| f["name"] == "consents_purposes_marketing_enabled"));
    let other = world.tenant("globex").await;
    assert_eq!(call(&world, Event::get("/catalogue").bearer(other.expose())).await.json()["source"], "deployment");
}

#[tokio::test]
async fn a_catalogue_that_contradicts_itself_is_refused_with_each_problem() {
    let world = World::new().await;
    let bad = json!({ "fields": [
        { "object": "contacts", "name": "plan", "label": "Plan", "type": "enumeration" },
        { "object": "contacts", "name": "plan", "label": "Plan again", "type": "string" },
    ] });
    let refused = admin(&world, "PUT", "/admin/catalogue", bad).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let message = refused.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("enumeration without `values`") && message.contains("declared twice"), "{message}");
    let unknown_type = admin(
        &world,
        "PUT",
        "/admin/catalogue",
        json!({ "fields": [
        { "object": "contacts", "name": "x", "label": "X", "type": "currency" } ] }),
    )
    .await;
    assert_eq!(unknown_type.status, StatusCode::BAD_REQUEST, "{}", unknown_type.body);
    assert_eq!(admin(&world, "GET", "/admin/catalogue", json!({})).await.json()["fields"], json!([]), "nothing saved");
}

#[tokio::test]
async fn the_webhook_subscriptions_the_configs_need_are_reported_and_put_in_place() {
    let world = World::with(SimConfig::default(), |s| {
        s.webhook_url = Some("https://hooks.example.com/webhooks/hubspot".into())
    })
    .await;
    let unknown = admin(&world, "GET", "/admin/webhook-subscriptions", json!({})).await;
    assert_eq!(unknown.status, StatusCode::CONFLICT, "no install yet, no app id: {}", unknown.body);
    assert!(unknown.json()["error"]["message"].as_str().unwrap().contains("HubSpotAppId"));

    let key = world.tenant("acme").await;
    let conn = install(&world, key.expose()).await;
    let config = json!({ "version": 0, "config": {
        "objects": { "contacts": { "match_key": { "kind": "email" }, "write_mode": "upsert",
            "fields": [ { "platform_field": "first_name", "hubspot_property": "firstname", "direction": "both", "platform_type": "string" } ] } },
        "options": { "webhooks_enabled": true, "data_in_enabled": true, "bidirectional_counter_property": "acme_changed",
                     "ingest_url": "http://127.0.0.1:9/ingest", "rate_limit_per_10s": null,
                     "inbound_events": { "creations": true, "deletions": false, "merges": false, "restores": false } } } });
    let saved =
        call(&world, Event::new("PUT", &format!("/connections/{conn}/config")).bearer(key.expose()).json_body(&config))
            .await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);

    // The app has one of them already, paused, and one nobody needs.
    let api = world.sim.base_url() + "/webhooks/v3/54321/subscriptions?hapikey=" + DEVELOPER_API_KEY;
    let http = reqwest::Client::new();
    for body in [json!({ "eventType": "contact.creation" }), json!({ "eventType": "deal.deletion", "active": true })] {
        assert_eq!(http.post(&api).json(&body).send().await.unwrap().status(), StatusCode::CREATED);
    }

    let report = admin(&world, "GET", "/admin/webhook-subscriptions", json!({})).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.body);
    let report = report.json();
    assert_eq!(report["app_id"], 54321);
    assert!(report["target_url"].is_null(), "no target set yet");
    let states = |report: &Value| -> Vec<String> {
        report["needed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                format!(
                    "{}:{}={}",
                    s["event_type"].as_str().unwrap(),
                    s["property_name"].as_str().unwrap_or(""),
                    s["state"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(
        states(&report),
        [
            "contact.creation:=paused",
            "contact.propertyChange:acme_changed=missing",
            "contact.propertyChange:email=missing",
            "contact.propertyChange:firstname=missing",
        ]
    );
    assert_eq!(report["unused"][0]["eventType"], "deal.deletion");

    let applied = admin(&world, "POST", "/admin/webhook-subscriptions", json!({})).await;
    assert_eq!(applied.status, StatusCode::OK, "{}", applied.body);
    let applied = applied.json();
    assert!(states(&applied).iter().all(|s| s.ends_with("=active")), "{applied}");
    assert_eq!(applied["target_url"], "https://hooks.example.com/webhooks/hubspot");
    assert_eq!(applied["unused"][0]["eventType"], "deal.deletion", "nothing is deleted");

    // HubSpot's own list agrees.
    let listed: Value = http.get(&api).send().await.unwrap().json().await.unwrap();
    let active: Vec<&Value> = listed["results"].as_array().unwrap().iter().filter(|s| s["active"] == true).collect();
    assert_eq!(active.len(), 5, "{listed}");
    assert!(world.secrets.leaks().is_empty(), "the developer key stays out of the logs");
}
