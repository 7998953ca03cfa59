//! The app's webhook subscriptions, kept in line with the configs: what every connection's
//! config needs (`domain::subscriptions`), against what the app has at HubSpot, and the calls
//! that put the missing ones in place (created active, paused ones activated). Nothing is
//! removed: a subscription no config needs is only reported, as another deployment of the same
//! app may still use it.
//!
//! Concurrent callers may both find a subscription missing and both create it: HubSpot refuses
//! the second (409), which counts as done here.

use std::collections::BTreeSet;

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::deps::Deps;
use crate::domain::subscriptions::{NeededSubscription, needed_by};
use crate::domain::{ConnectionConfig, Secret};
use crate::http::ApiError;
use crate::hubspot::{AppSubscription, AppWebhookSettings, HubSpotError};
use crate::ports::StoreError;

/// Configs read at once when the needs of every connection are gathered.
const CONFIG_READS_IN_FLIGHT: usize = 8;
/// HubSpot's default concurrency for an app's webhook POSTs.
const MAX_CONCURRENT_REQUESTS: u32 = 10;

#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    #[error(
        "the app secret has no developer_api_key: add the HubSpot developer account's API key to manage the app's \
         webhook subscriptions"
    )]
    NoDeveloperKey,
    #[error(
        "the HubSpot app's id is not known yet: set the stack's HubSpotAppId (HUBSYNC_HUBSPOT_APP_ID), or install \
         the app once"
    )]
    NoAppId,
    #[error("HubSpot's webhooks API refused: {0}")]
    HubSpot(#[from] HubSpotError),
    #[error("the store is unavailable: {0}")]
    Store(#[from] StoreError),
    #[error("the app secret is unavailable: {0}")]
    Secrets(String),
}

impl From<SubscriptionError> for ApiError {
    fn from(err: SubscriptionError) -> Self {
        match err {
            SubscriptionError::NoDeveloperKey | SubscriptionError::NoAppId => ApiError::Conflict(err.to_string()),
            SubscriptionError::HubSpot(_) => ApiError::HubSpot(err.to_string()),
            SubscriptionError::Store(_) | SubscriptionError::Secrets(_) => ApiError::Internal(err.to_string()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionState {
    Active,
    /// At HubSpot but paused: it sends nothing.
    Paused,
    Missing,
}

#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionStatus {
    #[serde(flatten)]
    pub subscription: NeededSubscription,
    pub state: SubscriptionState,
    /// HubSpot's id, when the app has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// What the configs need against what the app has.
#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionReport {
    pub app_id: u64,
    /// Where HubSpot sends the app's webhooks (`None`: no target set, nothing is sent).
    pub target_url: Option<String>,
    /// Where this deployment receives them, when it knows (the app's target should be this).
    pub expected_target_url: Option<String>,
    pub needed: Vec<SubscriptionStatus>,
    /// At HubSpot, but needed by no config.
    pub unused: Vec<AppSubscription>,
}

/// What every active connection's config needs, together.
pub async fn needed_by_all(deps: &Deps) -> Result<BTreeSet<NeededSubscription>, SubscriptionError> {
    let connections = deps.store.active_connections().await?;
    let configs: Vec<Option<ConnectionConfig>> = futures::stream::iter(connections)
        .map(|connection| async move { deps.store.get_config(&connection.id).await.map(|c| c.map(|c| c.config)) })
        .buffer_unordered(CONFIG_READS_IN_FLIGHT)
        .try_collect()
        .await?;
    Ok(configs.iter().flatten().flat_map(needed_by).collect())
}

/// The app's id and its developer key.
async fn credentials(deps: &Deps) -> Result<(u64, Secret), SubscriptionError> {
    let secrets = deps.secrets.app_secrets().await.map_err(|e| SubscriptionError::Secrets(e.to_string()))?;
    let key = secrets.developer_api_key.clone().ok_or(SubscriptionError::NoDeveloperKey)?;
    if let Some(app_id) = deps.settings.hubspot_app_id {
        return Ok((app_id, key));
    }
    let installed = deps.store.active_connections().await?.into_iter().find_map(|c| c.app_id);
    Ok((installed.ok_or(SubscriptionError::NoAppId)?, key))
}

/// `needed` against the app's subscriptions and target.
pub async fn report(
    deps: &Deps,
    needed: &BTreeSet<NeededSubscription>,
) -> Result<SubscriptionReport, SubscriptionError> {
    let (app_id, key) = credentials(deps).await?;
    let app = deps.hubspot.app_webhooks(app_id, &key);
    let present = app.subscriptions().await?;
    let settings = app.settings().await?;
    Ok(compare(app_id, needed, present, settings, deps.settings.webhook_url.clone()))
}

/// Puts what `needed` lacks in place: the target URL when the deployment knows it and the app
/// has another, each missing subscription created active, each paused one activated. Two
/// reads when everything is in line already (the target, the subscriptions).
pub async fn put_in_place(deps: &Deps, needed: &BTreeSet<NeededSubscription>) -> Result<(), SubscriptionError> {
    let (app_id, key) = credentials(deps).await?;
    let app = deps.hubspot.app_webhooks(app_id, &key);
    let settings = app.settings().await?;
    if let Some(url) = &deps.settings.webhook_url
        && settings.as_ref().map(|s| &s.target_url) != Some(url)
    {
        let max_concurrent_requests = settings.as_ref().map_or(MAX_CONCURRENT_REQUESTS, |s| s.max_concurrent_requests);
        app.put_settings(&AppWebhookSettings { target_url: url.clone(), max_concurrent_requests }).await?;
        tracing::info!(app_id, "set the app's webhook target URL");
    }
    let present = app.subscriptions().await?;
    let before = compare(app_id, needed, present, None, None);
    let mut paused = Vec::new();
    for status in &before.needed {
        match status.state {
            SubscriptionState::Active => {}
            SubscriptionState::Paused => paused.extend(status.id.clone()),
            SubscriptionState::Missing => {
                let wanted = &status.subscription;
                match app.create(&wanted.event_type, wanted.property_name.as_deref()).await {
                    Ok(_) | Err(HubSpotError::Conflict(_)) => {}
                    Err(err) => return Err(err.into()),
                }
                tracing::info!(app_id, event_type = %wanted.event_type, property = ?wanted.property_name, "webhook subscription created");
            }
        }
    }
    app.activate(&paused).await?;
    Ok(())
}

/// What one config needs, put in place after it was saved: a failure is logged, not the
/// save's (the admin API reports and repairs what is missing).
pub async fn keep_in_line_with(deps: &Deps, config: &ConnectionConfig) {
    if !deps.settings.keep_webhook_subscriptions {
        return;
    }
    let needed = needed_by(config);
    if needed.is_empty() {
        return;
    }
    if let Err(err) = put_in_place(deps, &needed).await {
        tracing::warn!(error = %err, "could not put the config's webhook subscriptions in place");
    }
}

/// Pure: each needed subscription's state, and the app's subscriptions nobody needs.
fn compare(
    app_id: u64,
    needed: &BTreeSet<NeededSubscription>,
    present: Vec<AppSubscription>,
    settings: Option<AppWebhookSettings>,
    expected_target_url: Option<String>,
) -> SubscriptionReport {
    let same = |p: &AppSubscription, n: &NeededSubscription| {
        p.event_type == n.event_type && p.property_name.as_deref() == n.property_name.as_deref()
    };
    let statuses = needed
        .iter()
        .map(|n| {
            // An active duplicate wins over a paused one.
            let found = present.iter().filter(|p| same(p, n)).max_by_key(|p| p.active);
            SubscriptionStatus {
                subscription: n.clone(),
                state: match found {
                    Some(p) if p.active => SubscriptionState::Active,
                    Some(_) => SubscriptionState::Paused,
                    None => SubscriptionState::Missing,
                },
                id: found.map(|p| p.id.clone()),
            }
        })
        .collect();
    let unused = present.into_iter().filter(|p| !needed.iter().any(|n| same(p, n))).collect();
    SubscriptionReport {
        app_id,
        target_url: settings.map(|s| s.target_url),
        expected_target_url,
        needed: statuses,
        unused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn present(id: &str, event_type: &str, property: Option<&str>, active: bool) -> AppSubscription {
        AppSubscription {
            id: id.into(),
            event_type: event_type.into(),
            property_name: property.map(str::to_string),
            active,
        }
    }

    fn needed(event_type: &str, property: Option<&str>) -> NeededSubscription {
        NeededSubscription { event_type: event_type.into(), property_name: property.map(str::to_string) }
    }

    #[test]
    fn each_need_is_active_paused_or_missing_and_the_rest_is_unused() {
        let needs = BTreeSet::from([
            needed("contact.propertyChange", Some("email")),
            needed("contact.propertyChange", Some("didomi_changed")),
            needed("contact.creation", None),
        ]);
        let report = compare(
            7,
            &needs,
            vec![
                present("1", "contact.propertyChange", Some("email"), true),
                present("2", "contact.creation", None, false),
                present("3", "deal.creation", None, true),
            ],
            None,
            Some("https://hooks.example.com/webhooks/hubspot".into()),
        );
        let states: Vec<_> = report.needed.iter().map(|s| (s.subscription.property_name.clone(), s.state)).collect();
        assert_eq!(
            states,
            [
                (None, SubscriptionState::Paused),
                (Some("didomi_changed".into()), SubscriptionState::Missing),
                (Some("email".into()), SubscriptionState::Active),
            ]
        );
        assert_eq!(report.unused.len(), 1);
        assert_eq!(report.unused[0].event_type, "deal.creation");
        assert_eq!(report.target_url, None, "no target set yet");
        assert_eq!(report.expected_target_url.as_deref(), Some("https://hooks.example.com/webhooks/hubspot"));
    }
}
