//! The scheduled planners (enrichment every 8 hours, catch-up daily): a pull per active
//! connection that takes data in, per object it takes fields in for. Connections are planned
//! side by side, each on its own: one connection's broken config or a store error on it is
//! reported and never stops the others.

use futures::stream::{self, StreamExt};
use serde::Serialize;

use crate::deps::Deps;
use crate::domain::{Connection, SyncFlow};
use crate::inbound::pull::{StartError, start_pull};
use crate::ports::StoreError;

/// How far back a catch-up looks: a day of webhooks, and an hour's margin.
pub const CATCH_UP_SPAN: time::Duration = time::Duration::hours(25);
/// Connections planned at once.
const CONCURRENT_CONNECTIONS: usize = 16;

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct PlanReport {
    /// Pulls started (one per connection and object).
    pub started: usize,
    /// Pulls not started because the same pull of the connection's object still runs.
    pub still_running: usize,
    /// Connections that could not be planned, each with the reason.
    pub failed: Vec<String>,
}

/// Starts a pull of `flow` for every active connection with data-in enabled and an ingest URL,
/// per object it takes fields in for, unless that pull is still running.
pub async fn plan_pulls(deps: &Deps, flow: SyncFlow) -> Result<PlanReport, StoreError> {
    let connections = deps.store.active_connections().await?;
    let plans = stream::iter(connections)
        .map(|connection| async move {
            let result = plan_connection(deps, &connection, flow).await;
            (connection, result)
        })
        .buffered(CONCURRENT_CONNECTIONS)
        .collect::<Vec<_>>()
        .await;
    let mut report = PlanReport::default();
    for (connection, result) in plans {
        match result {
            Ok(planned) => {
                report.started += planned.started;
                report.still_running += planned.still_running;
            }
            Err(err) => {
                tracing::error!(connection = %connection.id, error = %err, "could not plan the connection's pulls");
                report.failed.push(format!("{}: {err}", connection.id));
            }
        }
    }
    tracing::info!(
        ?flow,
        started = report.started,
        still_running = report.still_running,
        failed = report.failed.len(),
        "pulls planned"
    );
    Ok(report)
}

async fn plan_connection(deps: &Deps, connection: &Connection, flow: SyncFlow) -> Result<PlanReport, StoreError> {
    let mut report = PlanReport::default();
    let Some(config) = deps.store.get_config(&connection.id).await?.map(|c| c.config) else { return Ok(report) };
    if !config.options.data_in_enabled || config.options.ingest_url.is_none() {
        return Ok(report);
    }
    let since = (flow == SyncFlow::CatchUp).then(|| deps.clock.now() - CATCH_UP_SPAN);
    for (object, object_config) in &config.objects {
        if !object_config.fields.iter().any(|f| f.direction.comes_in()) {
            continue;
        }
        match start_pull(deps, connection, *object, flow, since).await {
            Ok(_) => report.started += 1,
            Err(StartError::AlreadyRunning { .. }) => report.still_running += 1,
            Err(StartError::Store(err)) => return Err(err),
        }
    }
    Ok(report)
}
