//! Authentication, scopes, the rate limit, injected faults, request counts and the HTTP
//! test controls.

mod common;

use std::time::{Duration, Instant};

use common::{param, sim};
use hubspot_sim::{DEFAULT_CLIENT_ID, Fault, FaultKind};
use reqwest::{Method, StatusCode};
use serde_json::json;

const CONTACTS: &str = "/crm/v3/objects/contacts";

#[tokio::test]
async fn unknown_and_expired_tokens_get_401() {
    let s = sim().await;
    let none = common::reply(s.http.get(s.url(CONTACTS)).send().await.unwrap()).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.body["category"], "INVALID_AUTHENTICATION");
    assert!(none.body["message"].as_str().unwrap().starts_with("Authentication credentials not found."));
    assert_eq!(none.header("x-hubspot-correlation-id"), none.body["correlationId"].as_str());
    assert_eq!(s.call_as("made-up", Method::GET, CONTACTS, None).await.status, StatusCode::UNAUTHORIZED);

    s.sim.expire_access_token(&s.token);
    let expired = s.get(CONTACTS).await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert_eq!(expired.body["category"], "EXPIRED_AUTHENTICATION");
    let message = expired.body["message"].as_str().unwrap();
    assert!(
        message.starts_with("The OAuth token used to make this call expired ") && message.ends_with(" second(s) ago.")
    );
    assert!(expired.body["context"]["expire time"][0].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn missing_scopes_get_403_naming_them() {
    let s = sim().await;
    let token = s.sim.issue_tokens(1000, DEFAULT_CLIENT_ID, &["oauth", "crm.objects.contacts.read"]).access_token;
    assert_eq!(s.call_as(&token, Method::GET, CONTACTS, None).await.status, StatusCode::OK);
    let cases = [
        (Method::POST, CONTACTS, "crm.objects.contacts.write"),
        (Method::GET, "/crm/v3/objects/deals", "crm.objects.deals.read"),
        (Method::POST, "/crm/v3/properties/contacts", "crm.schemas.contacts.write"),
    ];
    for (method, path, scope) in cases {
        let reply = s.call_as(&token, method, path, Some(json!({ "properties": {} }))).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(reply.body["category"], "MISSING_SCOPES");
        let required = reply.body["errors"][0]["context"]["requiredGranularScopes"].as_array().unwrap();
        assert!(required.iter().any(|s| s == scope), "{path}: {required:?}");
        assert!(reply.header("x-hubspot-ratelimit-max").is_some(), "counted against the limit");
    }
    // Reading properties needs the object's read scope or the schema read scope.
    assert_eq!(s.call_as(&token, Method::GET, "/crm/v3/properties/contacts", None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_rate_limit_is_a_rolling_window_per_portal_and_app() {
    let s = sim().await;
    let fresh = s.get(CONTACTS).await;
    assert_eq!(fresh.header("x-hubspot-ratelimit-max"), Some("110"));
    assert_eq!(fresh.header("x-hubspot-ratelimit-remaining"), Some("109"));
    assert_eq!(fresh.header("x-hubspot-ratelimit-interval-milliseconds"), Some("10000"));

    s.sim.set_rate_limit(1000, 3);
    let second = s.get(CONTACTS).await;
    assert_eq!(second.header("x-hubspot-ratelimit-remaining"), Some("1"));
    s.get(CONTACTS).await;
    let limited = s.get(CONTACTS).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.body["status"], "error");
    assert_eq!(limited.body["errorType"], "RATE_LIMIT");
    assert_eq!(limited.body["policyName"], "TEN_SECONDLY_ROLLING");
    assert_eq!(limited.body["message"], "You have reached your ten_secondly_rolling limit.");
    assert!(limited.body["correlationId"].is_string() && limited.body["requestId"].is_string());
    assert_eq!(limited.header("x-hubspot-ratelimit-remaining"), Some("0"));
    assert_eq!(limited.header("x-hubspot-ratelimit-max"), Some("3"));

    // Another app on the same portal has its own window; OAuth is not limited.
    s.sim.add_app("other", "secret");
    let other = s.sim.issue_tokens(1000, "other", &["crm.objects.contacts.read"]).access_token;
    assert_eq!(s.call_as(&other, Method::GET, CONTACTS, None).await.status, StatusCode::OK);
    let refresh = s.sim.issue_tokens(1000, DEFAULT_CLIENT_ID, &["oauth"]).refresh_token;
    for _ in 0..5 {
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", "sim-client-secret"),
            ("refresh_token", refresh.as_str()),
        ];
        assert_eq!(s.form("/oauth/v1/token", &form).await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn faults_fire_by_path_and_count_down() {
    let s = sim().await;
    s.sim.inject_fault(Fault {
        kind: FaultKind::ServerError(503),
        rate: 1.0,
        path_prefix: Some("/crm/v3/objects/deals".into()),
        remaining: Some(2),
    });
    assert_eq!(s.get(CONTACTS).await.status, StatusCode::OK, "other paths are untouched");
    for _ in 0..2 {
        let reply = s.get("/crm/v3/objects/deals").await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(reply.body["status"], "error");
        assert!(reply.header("x-hubspot-correlation-id").is_some());
    }
    assert_eq!(s.get("/crm/v3/objects/deals").await.status, StatusCode::OK, "spent");

    s.sim.inject_fault(Fault { kind: FaultKind::TooManyRequests, rate: 1.0, path_prefix: None, remaining: Some(1) });
    let limited = s.get(CONTACTS).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.body["policyName"], "TEN_SECONDLY_ROLLING");

    s.sim.inject_fault(Fault { kind: FaultKind::ServerError(500), rate: 0.0, path_prefix: None, remaining: None });
    assert_eq!(s.get(CONTACTS).await.status, StatusCode::OK, "rate 0 never fires");
    s.sim.clear_faults();

    s.sim.inject_fault(Fault::always(FaultKind::Latency(Duration::from_millis(300))));
    let started = Instant::now();
    assert_eq!(s.get(CONTACTS).await.status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));
    s.sim.clear_faults();

    s.sim.inject_fault(Fault {
        kind: FaultKind::DropConnection,
        rate: 1.0,
        path_prefix: Some("/crm".into()),
        remaining: Some(1),
    });
    let dropped = s.http.get(s.url(CONTACTS)).bearer_auth(&s.token).send().await;
    let err = dropped.expect_err("no answer");
    assert!(!err.is_timeout() && !err.is_status(), "{err:?}");
    assert_eq!(s.get(CONTACTS).await.status, StatusCode::OK, "the simulator lives on");
}

#[tokio::test]
async fn requests_are_counted_by_route_and_by_path() {
    let s = sim().await;
    s.post(&format!("{CONTACTS}/batch/upsert"), json!({ "inputs": [] })).await;
    s.post("/crm/v3/objects/deals/batch/upsert", json!({ "inputs": [] })).await;
    s.sim.inject_fault(Fault { kind: FaultKind::ServerError(502), rate: 1.0, path_prefix: None, remaining: Some(1) });
    s.get(CONTACTS).await;
    assert_eq!(s.sim.request_count("POST", "/crm/v3/objects/{objectType}/batch/upsert"), 2);
    assert_eq!(s.sim.request_count("POST", "/crm/v3/objects/contacts/batch/upsert"), 1);
    assert_eq!(s.sim.request_count("GET", "/crm/v3/objects/contacts"), 1, "faulted requests count");
    assert_eq!(s.sim.request_count("get", "/crm/v3/objects/{objectType}"), 1);
    assert_eq!(s.sim.request_count("DELETE", "/crm/v3/objects/contacts"), 0);
}

#[tokio::test]
async fn the_http_controls_do_what_the_methods_do() {
    let s = sim().await;
    let admin = |method: Method, path: &str, body: Option<serde_json::Value>| {
        let mut request = s.http.request(method, s.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move { common::reply(request.send().await.unwrap()).await }
    };
    assert_eq!(
        admin(
            Method::POST,
            "/_sim/portals",
            Some(json!({ "hub_id": 5, "scopes": ["crm.objects.contacts.read", "crm.objects.contacts.write"] }))
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    let tokens = admin(Method::POST, "/_sim/tokens", Some(json!({ "hub_id": 5 }))).await;
    let token = tokens.body["access_token"].as_str().unwrap().to_string();
    assert_eq!(tokens.body["expires_in"], 1800);

    let seeded = admin(
        Method::POST,
        "/_sim/portals/5/objects/contacts",
        Some(json!({ "properties": { "email": "h@example.com" } })),
    )
    .await;
    assert_eq!(seeded.status, StatusCode::CREATED);
    let id = seeded.body["id"].as_str().unwrap().to_string();
    let edited = admin(
        Method::PATCH,
        &format!("/_sim/portals/5/objects/contacts/{id}"),
        Some(json!({ "properties": { "firstname": "H" } })),
    )
    .await;
    assert_eq!(edited.body["properties"]["firstname"], "H");
    let bad = admin(
        Method::PATCH,
        &format!("/_sim/portals/5/objects/contacts/{id}"),
        Some(json!({ "properties": { "zzz": "1" } })),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(admin(Method::GET, &format!("/_sim/portals/5/objects/contacts/{id}"), None).await.body["version"], 2);
    assert_eq!(
        admin(Method::GET, "/_sim/portals/5/objects/contacts", None).await.body["results"].as_array().unwrap().len(),
        1
    );

    let listed = s.call_as(&token, Method::GET, CONTACTS, None).await;
    assert_eq!(listed.body["results"][0]["id"], id.as_str(), "portals are separate");
    let counted = admin(Method::GET, "/_sim/requests?method=GET&path=/crm/v3/objects/contacts", None).await;
    assert_eq!(counted.body["count"], 1);

    admin(Method::PUT, "/_sim/portals/5/rate-limit", Some(json!({ "per_10s": 1 }))).await;
    assert_eq!(s.call_as(&token, Method::GET, CONTACTS, None).await.status, StatusCode::TOO_MANY_REQUESTS);

    admin(
        Method::POST,
        "/_sim/faults",
        Some(json!({ "kind": "server_error", "status": 504, "path_prefix": "/crm/v3/objects/deals" })),
    )
    .await;
    assert_eq!(s.get("/crm/v3/objects/deals").await.status, StatusCode::GATEWAY_TIMEOUT);
    admin(Method::DELETE, "/_sim/faults", None).await;
    assert_eq!(s.get("/crm/v3/objects/deals").await.status, StatusCode::OK);

    admin(Method::POST, "/_sim/tokens/expire", Some(json!({ "access_token": s.token }))).await;
    assert_eq!(s.get(CONTACTS).await.body["category"], "EXPIRED_AUTHENTICATION");

    admin(Method::POST, "/_sim/apps", Some(json!({ "client_id": "cli", "client_secret": "sec" }))).await;
    admin(Method::PUT, "/_sim/authorize-denies", Some(json!({ "deny": true }))).await;
    let (_, query) = s
        .authorize("client_id=cli&redirect_uri=http://localhost/cb&scope=crm.objects.contacts.read&state=s&portal=5")
        .await;
    assert_eq!(param(&query, "error"), Some("access_denied"));
}
