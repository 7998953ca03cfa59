//! Shared helpers: a started simulator, a token for its default portal, JSON calls, and a
//! webhook receiver (`receiver`).

#![allow(dead_code)]

pub mod receiver;

use hubspot_sim::{ALL_SCOPES, DEFAULT_CLIENT_ID, DEFAULT_PORTAL, RunningSimulator, SimConfig};
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub const REDIRECT_URI: &str = "https://app.example.com/oauth/callback";

pub struct Sim {
    pub sim: RunningSimulator,
    pub token: String,
    pub http: reqwest::Client,
}

pub async fn sim() -> Sim {
    sim_with(SimConfig::default()).await
}

pub async fn sim_with(config: SimConfig) -> Sim {
    let sim = hubspot_sim::start(config).await.expect("simulator starts");
    let token = sim.issue_tokens(DEFAULT_PORTAL, DEFAULT_CLIENT_ID, ALL_SCOPES).access_token;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    Sim { sim, token, http }
}

/// An answer: status, headers and the JSON body (`Null` when empty).
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Sim {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    pub async fn call_as(&self, token: &str, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut request = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        reply(request.send().await.expect("the simulator answers")).await
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call_as(&self.token, method, path, body).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn form(&self, path: &str, form: &[(&str, &str)]) -> Reply {
        reply(self.http.post(self.url(path)).form(form).send().await.expect("the simulator answers")).await
    }

    /// Runs the authorize step and returns the redirect's query parameters.
    pub async fn authorize(&self, query: &str) -> (StatusCode, Vec<(String, String)>) {
        let response = self.http.get(self.url(&format!("/oauth/authorize?{query}"))).send().await.unwrap();
        let status = response.status();
        let pairs = response
            .headers()
            .get("location")
            .map(|l| reqwest::Url::parse(l.to_str().unwrap()).unwrap().query_pairs().into_owned().collect())
            .unwrap_or_default();
        (status, pairs)
    }
}

pub async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(if text.is_empty() { Value::Null } else { Value::String(text) });
    Reply { status, headers, body }
}

pub fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}
