//! The webhook receiver's work: verify, parse, de-duplicate, route to connections, filter and
//! enqueue — answering only once everything taken is stored, so HubSpot retries the rest.

use std::collections::BTreeMap;

use serde::Serialize;
use time::Duration;
use tokio::task::JoinSet;

use crate::deps::Deps;
use crate::domain::inbound::{BadBatch, Ignored, select_event};
use crate::domain::{
    Connection, ConnectionStatus, DedupKey, INBOUND_MESSAGE_VERSION, InboundMessage, PortalId, Secret, WebhookEvent,
    parse_webhook_batch,
};
use crate::ports::{OutgoingMessage, StoreError};
use crate::webhooks::signature::{SignatureError, SignedRequest, verify};

/// HubSpot retries a delivery for up to 24 hours; its events are remembered a little longer.
const DEDUP_TTL: Duration = Duration::hours(25);

#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error(transparent)]
    Unverified(#[from] SignatureError),
    #[error(transparent)]
    BadBatch(#[from] BadBatch),
    /// Nothing was acknowledged: HubSpot will deliver the request again.
    #[error("the webhook could not be stored; HubSpot will retry: {0}")]
    Unavailable(String),
}

impl From<StoreError> for ReceiveError {
    fn from(err: StoreError) -> Self {
        ReceiveError::Unavailable(err.to_string())
    }
}

/// What became of a request's events.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Receipt {
    pub events: usize,
    /// Seen before (a HubSpot retry): not processed again.
    pub duplicates: usize,
    /// Passed on to connections (an event can go to several).
    pub enqueued: usize,
    /// Written by hubsync itself.
    pub echoes: usize,
    /// Not wanted by any connection (unknown portal, inactive connection, unmapped property...).
    pub ignored: usize,
}

/// Handles one webhook request. The signature is checked before anything else is read.
pub async fn receive(deps: &Deps, request: &SignedRequest<'_>) -> Result<Receipt, ReceiveError> {
    let secrets = deps.secrets.app_secrets().await.map_err(|e| ReceiveError::Unavailable(e.to_string()))?;
    let now = deps.clock.now();
    let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    let events =
        verify_and_parse(request, &secrets.client_secret, now_ms, deps.settings.accept_legacy_webhook_signatures)?;
    let mut receipt = Receipt { events: events.len(), ..Receipt::default() };

    let fresh = claim_fresh(deps, events, now).await?;
    receipt.duplicates = receipt.events - fresh.len();

    let mut by_portal: BTreeMap<PortalId, Vec<(WebhookEvent, String)>> = BTreeMap::new();
    let mut claimed = Vec::new();
    for (event, key) in fresh {
        if event.is_own_write() {
            receipt.echoes += 1;
            // Nothing to queue: its claim stands, so a retry of it is a duplicate.
            continue;
        }
        claimed.push(key.clone());
        by_portal.entry(event.portal_id).or_default().push((event, key));
    }
    // Every event this request claimed is either queued or released: a failure on any portal
    // releases them all, so HubSpot's retry of the request is processed in full.
    match route(deps, by_portal, &mut receipt).await {
        Ok(messages) if messages.is_empty() => Ok(receipt),
        Ok(messages) => match deps.inbound.work.send(messages).await {
            Ok(()) => Ok(receipt),
            Err(err) => Err(release(deps, claimed, ReceiveError::Unavailable(err.to_string())).await),
        },
        Err(err) => Err(release(deps, claimed, err).await),
    }
}

/// The inbound messages for the connections that take these events in, one per connection
/// and portal; counts the events no connection wants.
async fn route(
    deps: &Deps,
    by_portal: BTreeMap<PortalId, Vec<(WebhookEvent, String)>>,
    receipt: &mut Receipt,
) -> Result<Vec<OutgoingMessage>, ReceiveError> {
    let mut messages = Vec::new();
    for (portal, events) in by_portal {
        let connections = deps.store.connections_for_portal(portal).await?;
        let mut wanted = vec![false; events.len()];
        // A connection waiting to be authorised again keeps its events: the inbound worker holds
        // them until it is back, so nothing HubSpot sent in between is lost.
        let receiving = |c: &&Connection| matches!(c.status, ConnectionStatus::Active | ConnectionStatus::NeedsReauth);
        for connection in connections.iter().filter(receiving) {
            let Some(config) = deps.store.get_config(&connection.id).await?.map(|c| c.config) else { continue };
            if !config.options.webhooks_enabled {
                continue;
            }
            let mut selected = Vec::new();
            for (i, (event, _)) in events.iter().enumerate() {
                match select_event(&config, event) {
                    Ok(inbound) => {
                        selected.push(inbound);
                        wanted[i] = true;
                    }
                    Err(Ignored::Echo | Ignored::NotWanted) => {}
                }
            }
            if !selected.is_empty() {
                receipt.enqueued += selected.len();
                let message = InboundMessage {
                    version: INBOUND_MESSAGE_VERSION,
                    connection_id: connection.id.clone(),
                    portal_id: portal,
                    events: selected,
                };
                messages.push(OutgoingMessage::new(serde_json::to_string(&message).expect("serialisable")));
            }
        }
        receipt.ignored += wanted.iter().filter(|w| !**w).count();
    }
    Ok(messages)
}

/// Everything decided from the request alone, before the store is touched: the signature
/// first (with the app's client secret and the receiver's clock, `now_ms`), then the body's
/// events. Pure, so the fuzz target in `fuzz/` runs exactly what the receiver runs.
pub fn verify_and_parse(
    request: &SignedRequest,
    client_secret: &Secret,
    now_ms: i64,
    accept_legacy: bool,
) -> Result<Vec<WebhookEvent>, ReceiveError> {
    verify(request, client_secret, now_ms, accept_legacy)?;
    Ok(parse_webhook_batch(request.body)?)
}

/// Claims each event's de-duplication key (concurrently: one conditional write each) and
/// returns the events seen for the first time, with their keys.
async fn claim_fresh(
    deps: &Deps,
    events: Vec<WebhookEvent>,
    now: time::OffsetDateTime,
) -> Result<Vec<(WebhookEvent, String)>, ReceiveError> {
    let mut claims = JoinSet::new();
    for (index, event) in events.iter().enumerate() {
        let (store, key) = (deps.store.clone(), DedupKey { key: event.dedup_key(), expires_at: now + DEDUP_TTL });
        claims.spawn(async move { (index, store.claim_dedup_key(&key, now).await, key.key) });
    }
    let mut fresh = vec![None; events.len()];
    let mut claimed = Vec::new();
    let mut failure = None;
    while let Some(joined) = claims.join_next().await {
        let (index, result, key) = joined.map_err(|e| ReceiveError::Unavailable(e.to_string()))?;
        match result {
            Ok(true) => {
                fresh[index] = Some(key.clone());
                claimed.push(key);
            }
            Ok(false) => {}
            Err(err) => failure = Some(err),
        }
    }
    if let Some(err) = failure {
        return Err(release(deps, claimed, err.into()).await);
    }
    Ok(events.into_iter().zip(fresh).filter_map(|(event, key)| Some((event, key?))).collect())
}

/// Undoes claims whose events were not stored, so HubSpot's retry is processed; returns `err`.
async fn release(deps: &Deps, keys: Vec<String>, err: ReceiveError) -> ReceiveError {
    for key in keys {
        if let Err(release_err) = deps.store.release_dedup_key(&key).await {
            tracing::error!(error = %release_err, "could not release a webhook de-duplication key");
        }
    }
    err
}

impl From<ReceiveError> for crate::http::ApiError {
    fn from(err: ReceiveError) -> Self {
        use crate::http::ApiError;
        match err {
            ReceiveError::Unverified(reason) => ApiError::Unverified(reason.to_string()),
            ReceiveError::BadBatch(BadBatch::TooLarge) => ApiError::TooLarge(err.to_string()),
            ReceiveError::BadBatch(bad) => ApiError::BadRequest(bad.to_string()),
            ReceiveError::Unavailable(reason) => {
                tracing::error!(%reason, "webhook not stored; HubSpot will retry");
                ApiError::Unavailable("the webhook could not be stored; HubSpot will retry it".into())
            }
        }
    }
}
