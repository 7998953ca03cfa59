//! The platform team's admin API through the console-api Lambda handler (API Gateway v2
//! events), on moto (IAM enforced, the console's role) and the simulator: a stack onboards a
//! tenant with it alone.

use axum::http::StatusCode;
use hubsync::domain::{ApiKeyRecord, ConnectionId, ConnectionStatus, TenantId};
use hubsync_tests::Function;
use hubsync_tests::lambda::{Event, Reply, invoke};
use hubsync_tests::oauth::install;
use hubsync_tests::world::{ADMIN_API_KEY, World};
use serde_json::{Value, json};

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
    for (method, path) in [
        ("GET", "/admin/tenants".to_string()),
        ("POST", "/admin/tenants".to_string()),
        ("GET", "/admin/tenants/acme/keys".to_string()),
        ("POST", "/admin/tenants/acme/keys".to_string()),
        ("DELETE", "/admin/tenants/acme/keys/k1".to_string()),
        ("POST", "/admin/tenants/acme/keys/k1/rotate".to_string()),
        ("GET", "/admin/connections".to_string()),
        ("POST", format!("/admin/connections/{conn}/redrive")),
    ] {
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
