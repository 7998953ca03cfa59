//! The app's webhook settings and subscriptions (HubSpot's webhooks API: `/webhooks/v3/{appId}/...`, from
//! version 2026-09 `/app-webhooks/{version}/{appId}/...`),
//! managed with the developer account's API key, sent as the `hapikey` query parameter as
//! HubSpot's reference for legacy public apps documents it. HubSpot sends a property's changes
//! only to an app subscribed to that property, and creates a subscription paused unless it is
//! asked for an active one, so hubsync always creates them active.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::client::{HubSpotClient, Reply};
use super::error::HubSpotError;
use crate::domain::Secret;

/// One of the app's subscriptions, as HubSpot lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppSubscription {
    /// A string of digits in answers, an integer in paths and batch inputs.
    pub id: String,
    /// `contact.propertyChange`, `deal.creation`, ...
    pub event_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property_name: Option<String>,
    pub active: bool,
}

/// Where HubSpot sends the app's webhooks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppWebhookSettings {
    pub target_url: String,
    pub max_concurrent_requests: u32,
}

/// The webhook settings of one app, with its developer account's key.
pub struct AppWebhooks<'a> {
    client: &'a HubSpotClient,
    app_id: String,
    developer_key: &'a Secret,
}

impl HubSpotClient {
    pub fn app_webhooks<'a>(&'a self, app_id: u64, developer_key: &'a Secret) -> AppWebhooks<'a> {
        AppWebhooks { client: self, app_id: app_id.to_string(), developer_key }
    }
}

#[derive(Deserialize)]
struct SubscriptionList {
    results: Vec<AppSubscription>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SettingsReply {
    target_url: String,
    throttling: Throttling,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Throttling {
    max_concurrent_requests: u32,
}

impl AppWebhooks<'_> {
    async fn call(
        &self,
        operation: &str,
        method: Method,
        segments: &[&str],
        body: Option<&Value>,
    ) -> Result<Reply, HubSpotError> {
        let url = self.client.api_url(segments);
        let mut request = self.client.request(method, url).query(&[("hapikey", self.developer_key.expose())]);
        if let Some(body) = body {
            request = request.json(body);
        }
        self.client.execute(operation, request, &[self.developer_key]).await
    }

    /// The target URL and concurrency, or `None` before any was set.
    pub async fn settings(&self) -> Result<Option<AppWebhookSettings>, HubSpotError> {
        let op = "get webhook settings";
        match self.call(op, Method::GET, &self.client.paths.webhook_settings(&self.app_id), None).await {
            Ok(reply) => {
                let settings: SettingsReply = reply.json(op)?;
                Ok(Some(AppWebhookSettings {
                    target_url: settings.target_url,
                    max_concurrent_requests: settings.throttling.max_concurrent_requests,
                }))
            }
            Err(HubSpotError::NotFound(_)) => Ok(None),
            Err(err) => Err(err),
        }
    }

    pub async fn put_settings(&self, settings: &AppWebhookSettings) -> Result<(), HubSpotError> {
        let op = "set webhook settings";
        let body = json!({
            "targetUrl": settings.target_url,
            "throttling": { "maxConcurrentRequests": settings.max_concurrent_requests },
        });
        self.call(op, Method::PUT, &self.client.paths.webhook_settings(&self.app_id), Some(&body)).await?;
        Ok(())
    }

    /// Every subscription of the app, active and paused.
    pub async fn subscriptions(&self) -> Result<Vec<AppSubscription>, HubSpotError> {
        let op = "list webhook subscriptions";
        let list: SubscriptionList =
            self.call(op, Method::GET, &self.client.paths.webhook_subscriptions(&self.app_id), None).await?.json(op)?;
        Ok(list.results)
    }

    /// Creates an active subscription (`property_name` only for `*.propertyChange`).
    pub async fn create(&self, event_type: &str, property_name: Option<&str>) -> Result<AppSubscription, HubSpotError> {
        let op = "create webhook subscription";
        let mut body = json!({ "eventType": event_type, "active": true });
        if let Some(property) = property_name {
            body["propertyName"] = json!(property);
        }
        self.call(op, Method::POST, &self.client.paths.webhook_subscriptions(&self.app_id), Some(&body)).await?.json(op)
    }

    /// Activates paused subscriptions, in one batch call.
    pub async fn activate(&self, ids: &[String]) -> Result<(), HubSpotError> {
        if ids.is_empty() {
            return Ok(());
        }
        let op = "activate webhook subscriptions";
        let inputs: Vec<Value> = ids
            .iter()
            .map(|id| {
                let id: u64 = id.parse().map_err(|_| HubSpotError::InvalidResponse {
                    operation: op.to_string(),
                    reason: format!("subscription id `{id}` is not a number"),
                })?;
                Ok(json!({ "id": id, "active": true }))
            })
            .collect::<Result<_, HubSpotError>>()?;
        let reply = self
            .call(
                op,
                Method::POST,
                &self.client.paths.webhook_subscriptions_batch_update(&self.app_id),
                Some(&json!({ "inputs": inputs })),
            )
            .await?;
        if reply.status == reqwest::StatusCode::MULTI_STATUS {
            let body: Value = reply.json(op)?;
            let message = body.pointer("/errors/0/message").and_then(Value::as_str).unwrap_or("some ids were refused");
            return Err(HubSpotError::InvalidResponse { operation: op.to_string(), reason: message.to_string() });
        }
        Ok(())
    }
}
