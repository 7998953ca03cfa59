//! The webhooks API for an app's settings and subscriptions, as HubSpot's specification has it:
//! statuses, shapes, the developer key, and that only active subscriptions send events.

use hubspot_sim::{DEFAULT_CLIENT_ID, SimConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let url = format!("{}/webhooks/v3/54321{path}", self.base);
        let mut request = self.http.request(method, url).query(&[("hapikey", &self.key)]);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
    }
}

#[tokio::test]
async fn subscriptions_are_created_paused_unless_active_and_batch_updates_report_unknown_ids() {
    let sim = hubspot_sim::start(SimConfig::default()).await.unwrap();
    let api = Api { http: reqwest::Client::new(), base: sim.base_url(), key: sim.developer_api_key(DEFAULT_CLIENT_ID) };
    use reqwest::Method;

    let (status, body) = api.call(Method::GET, "/settings", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no settings yet: {body}");
    let settings =
        json!({ "targetUrl": "https://hooks.example.com/hubspot", "throttling": { "maxConcurrentRequests": 10 } });
    let (status, body) = api.call(Method::PUT, "/settings", Some(settings)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["targetUrl"], "https://hooks.example.com/hubspot");
    assert_eq!(body["throttling"]["maxConcurrentRequests"], 10);

    let (status, paused) =
        api.call(Method::POST, "/subscriptions", Some(json!({ "eventType": "contact.creation" }))).await;
    assert_eq!(status, StatusCode::CREATED, "{paused}");
    assert_eq!(paused["active"], false, "v3 creates a subscription paused unless asked");
    assert!(paused["id"].is_string(), "ids are strings in answers");
    let create = json!({ "eventType": "contact.propertyChange", "propertyName": "firstname", "active": true });
    let (status, active) = api.call(Method::POST, "/subscriptions", Some(create.clone())).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!((active["active"].clone(), active["propertyName"].clone()), (json!(true), json!("firstname")));
    let (status, _) = api.call(Method::POST, "/subscriptions", Some(create)).await;
    assert_eq!(status, StatusCode::CONFLICT, "the same subscription twice");
    let (status, body) =
        api.call(Method::POST, "/subscriptions", Some(json!({ "eventType": "contact.propertyChange" }))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "propertyChange needs a property: {body}");

    let paused_id: u64 = paused["id"].as_str().unwrap().parse().unwrap();
    let batch = json!({ "inputs": [ { "id": paused_id, "active": true }, { "id": 4567, "active": true } ] });
    let (status, body) = api.call(Method::POST, "/subscriptions/batch/update", Some(batch)).await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    assert_eq!(body["status"], "COMPLETE");
    assert_eq!(body["results"][0]["active"], true);
    assert_eq!(body["errors"][0]["category"], "SUBSCRIPTION_ID_NOT_FOUND");
    assert_eq!(body["errors"][0]["context"]["subscriptionIds"], json!(["4567"]));

    let (status, list) = api.call(Method::GET, "/subscriptions", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["results"].as_array().unwrap().len(), 2);
    let (status, body) =
        api.call(Method::PATCH, &format!("/subscriptions/{paused_id}"), Some(json!({ "active": false }))).await;
    assert_eq!((status, body["active"].clone()), (StatusCode::OK, json!(false)));
    let (status, _) = api.call(Method::DELETE, &format!("/subscriptions/{paused_id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api.call(Method::GET, &format!("/subscriptions/{paused_id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api.call(Method::DELETE, "/settings", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api.call(Method::GET, "/settings", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "deleted settings leave the subscriptions paused");
    let (_, list) = api.call(Method::GET, "/subscriptions", None).await;
    assert_eq!(list["results"].as_array().unwrap().len(), 1, "subscriptions stay");
}

#[tokio::test]
async fn the_developer_key_is_required_and_dated_paths_serve_the_same_api() {
    let sim = hubspot_sim::start(SimConfig::default()).await.unwrap();
    let http = reqwest::Client::new();
    let base = sim.base_url();
    let key = sim.developer_api_key(DEFAULT_CLIENT_ID);

    let none = http.get(format!("{base}/webhooks/v3/54321/subscriptions")).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    let wrong = http.get(format!("{base}/webhooks/v3/54321/subscriptions?hapikey=nope")).send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["category"], "INVALID_AUTHENTICATION");
    let other_app = http.get(format!("{base}/webhooks/v3/999/subscriptions?hapikey={key}")).send().await.unwrap();
    assert_eq!(other_app.status(), StatusCode::NOT_FOUND);
    for prefix in ["/webhooks/2026-03", "/app-webhooks/2026-09"] {
        let listed = http.get(format!("{base}{prefix}/54321/subscriptions?hapikey={key}")).send().await.unwrap();
        assert_eq!(listed.status(), StatusCode::OK, "{prefix}");
    }
}
