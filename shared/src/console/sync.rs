//! The console's controls of the sync: "Sync with HubSpot" for one record, a full sync to the
//! platform, the run history, and replaying parked work after a fix.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;

use crate::deps::Deps;
use crate::domain::{Connection, ObjectType, PushMessage, SyncRun};
use crate::http::ApiError;
use crate::ports::{OutgoingMessage, QueueError};
use crate::work::{RedriveReport, redrive};

/// Runs shown per request unless asked otherwise, and at most.
pub const DEFAULT_RUNS: usize = 50;
pub const MAX_RUNS: usize = 500;

#[derive(Debug, Serialize)]
pub struct Queued {
    pub queued: bool,
    pub object: ObjectType,
    pub record_key: String,
}

/// Validates a push message for this connection and enqueues it, as the platform would. The
/// body may leave out `connection_id` (it is in the path) and `changed_at` (now).
pub async fn enqueue_change(deps: &Deps, connection: &Connection, body: &str) -> Result<Queued, ApiError> {
    let mut value: Value =
        serde_json::from_str(body).map_err(|e| ApiError::BadRequest(format!("the body is not JSON: {e}")))?;
    let fields = value.as_object_mut().ok_or_else(|| ApiError::BadRequest("the body must be a JSON object".into()))?;
    match fields.get("connection_id") {
        None => {
            fields.insert("connection_id".into(), Value::String(connection.id.to_string()));
        }
        Some(Value::String(id)) if *id == connection.id.to_string() => {}
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "`connection_id` is {other} but the path names {}: leave it out or make them agree",
                connection.id
            )));
        }
    }
    if !fields.contains_key("changed_at") {
        let now = deps.clock.now().format(&Rfc3339).map_err(|e| ApiError::Internal(e.to_string()))?;
        fields.insert("changed_at".into(), Value::String(now));
    }
    let body = value.to_string();
    let (message, object) = PushMessage::parse(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let config = deps.store.get_config(&connection.id).await?;
    if !config.is_some_and(|c| c.config.objects.contains_key(&object)) {
        return Err(ApiError::BadRequest(format!(
            "{object} are not configured for this connection: add them to the config first"
        )));
    }
    deps.push.work.send(vec![OutgoingMessage::new(body)]).await.map_err(queue_error)?;
    Ok(Queued { queued: true, object, record_key: message.record_key })
}

pub async fn runs(deps: &Deps, connection: &Connection, limit: Option<usize>) -> Result<Vec<SyncRun>, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_RUNS).clamp(1, MAX_RUNS);
    Ok(deps.store.list_runs(&connection.id, limit).await?)
}

/// The queues whose parked work the console can send back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParkedWork {
    /// Platform changes on their way to HubSpot.
    Push,
    /// HubSpot changes on their way to the platform (webhooks, and pulled records the
    /// platform refused).
    Inbound,
    /// Pull jobs.
    Bulk,
}

/// What a redrive sent back, in all and per queue.
#[derive(Debug, Default, Serialize)]
pub struct Redriven {
    pub replayed: usize,
    pub left: usize,
    pub queues: BTreeMap<ParkedWork, RedriveReport>,
}

/// Sends this connection's parked work back to its queues: those of `queue`, or all of them.
pub async fn redrive_parked(
    deps: &Deps,
    connection: &Connection,
    queue: Option<ParkedWork>,
) -> Result<Redriven, ApiError> {
    let mut redriven = Redriven::default();
    for (work, pair) in
        [(ParkedWork::Push, &deps.push), (ParkedWork::Inbound, &deps.inbound), (ParkedWork::Bulk, &deps.bulk)]
    {
        if queue.is_some_and(|wanted| wanted != work) {
            continue;
        }
        let report = redrive(&*pair.parked, &*pair.work, Some(&connection.id)).await.map_err(queue_error)?;
        tracing::info!(connection = %connection.id, queue = ?work, replayed = report.replayed, "parked work redriven");
        redriven.replayed += report.replayed;
        redriven.left += report.left;
        redriven.queues.insert(work, report);
    }
    Ok(redriven)
}

fn queue_error(err: QueueError) -> ApiError {
    match err {
        QueueError::MessageTooLarge { .. } => ApiError::BadRequest(err.to_string()),
        other => ApiError::Internal(other.to_string()),
    }
}

/// Starts a full sync of the given objects (all configured ones when none are named).
pub async fn full_sync(
    deps: &Deps,
    connection: &Connection,
    objects: Option<Vec<ObjectType>>,
) -> Result<Vec<SyncRun>, ApiError> {
    let config = deps.store.get_config(&connection.id).await?.map(|c| c.config).unwrap_or_default();
    if config.options.ingest_url.is_none() {
        return Err(ApiError::BadRequest("the config has no `ingest_url` to deliver to: set it first".into()));
    }
    let objects = objects.unwrap_or_else(|| config.objects.keys().copied().collect());
    let mut runs = Vec::new();
    for object in objects {
        if !config.objects.contains_key(&object) {
            return Err(ApiError::BadRequest(format!("{object} are not configured for this connection")));
        }
        runs.push(crate::inbound::start_full_sync(deps, connection, object, None).await?);
    }
    Ok(runs)
}
