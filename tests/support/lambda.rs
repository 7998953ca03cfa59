//! Invokes a function's handler the way Lambda does: from API Gateway HTTP API (v2) event JSON.

use axum::Router;
use axum::body::to_bytes;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

/// A real API Gateway v2 event (from aws_lambda_events' fixtures), to be filled in per request.
const EVENT_TEMPLATE: &str = include_str!("../fixtures/apigw-v2-request.json");

pub struct Event {
    json: Value,
}

impl Event {
    pub fn new(method: &str, path_and_query: &str) -> Event {
        let mut json: Value = serde_json::from_str(EVENT_TEMPLATE).expect("fixture is JSON");
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        json["rawPath"] = path.into();
        json["rawQueryString"] = query.into();
        json["requestContext"]["http"]["method"] = method.into();
        json["requestContext"]["http"]["path"] = path.into();
        Event { json }
    }

    pub fn get(path_and_query: &str) -> Event {
        Event::new("GET", path_and_query)
    }

    pub fn header(mut self, name: &str, value: &str) -> Event {
        self.json["headers"][name.to_ascii_lowercase()] = value.into();
        self
    }

    pub fn bearer(self, key: &str) -> Event {
        self.header("authorization", &format!("Bearer {key}"))
    }

    pub fn json_body(mut self, body: &Value) -> Event {
        let text = body.to_string();
        self.json["headers"]["content-type"] = "application/json".into();
        self.json["headers"]["content-length"] = text.len().to_string().into();
        self.json["body"] = text.into();
        self
    }

    pub fn raw_body(mut self, content_type: &str, body: &str) -> Event {
        self.json["headers"]["content-type"] = content_type.into();
        self.json["headers"]["content-length"] = body.len().to_string().into();
        self.json["body"] = body.into();
        self
    }

    pub fn to_json(&self) -> String {
        self.json.to_string()
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn location(&self) -> &str {
        self.headers.get("location").and_then(|v| v.to_str().ok()).expect("a Location header")
    }
}

/// Parses the event with lambda_http (as the Lambda runtime does) and runs the handler on it.
pub async fn invoke(handler: &Router, event: Event) -> Reply {
    let request = lambda_http::request::from_str(&event.to_json()).expect("a valid API Gateway v2 event");
    let (parts, body) = request.into_parts();
    let request = axum::http::Request::from_parts(parts, axum::body::Body::from(body.to_vec()));
    let response = handler.clone().oneshot(request).await.expect("routers are infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = to_bytes(response.into_body(), 16 * 1024 * 1024).await.expect("response body");
    Reply { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
}
