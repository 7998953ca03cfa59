//! Every connection's health across tenants, for the platform team: what a support engineer
//! looks at first (is it connected, when did it last work, what is parked and why).

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt, stream};
use serde::Serialize;
use time::OffsetDateTime;

use crate::deps::Deps;
use crate::domain::{Connection, ConnectionStatus, RunKind, RunStatus, SyncRun, TenantId};
use crate::http::ApiError;

/// Runs looked at per connection for the last successes and the parked reasons.
pub const RECENT_RUNS: usize = 100;

#[derive(Debug, Serialize)]
pub struct ConnectionHealth {
    pub tenant_id: TenantId,
    pub connection: Connection,
    /// HubSpot refused the refresh token: the tenant must install the app again.
    pub needs_reauth: bool,
    /// When a push run (platform to HubSpot) last finished without a failure.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_push_at: Option<OffsetDateTime>,
    /// When a pull (enrichment, catch-up, full sync or backfill) last finished without a failure.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_pull_at: Option<OffsetDateTime>,
    /// Records parked in a dead-letter queue over the recent runs, by reason.
    pub parked_by_reason: BTreeMap<String, u64>,
    /// How many runs the figures above come from (at most [`RECENT_RUNS`]).
    pub runs_considered: usize,
}

/// Store reads in flight at once while the figures are gathered: a deployment with thousands
/// of connections answers in seconds without a burst on the table.
const READS_IN_FLIGHT: usize = 16;

/// Health of every tenant's connections, tenant by tenant (in the store's order).
pub async fn all_connections(deps: &Deps) -> Result<Vec<ConnectionHealth>, ApiError> {
    let tenants = deps.store.list_tenants().await?;
    let connections: Vec<Vec<Connection>> = stream::iter(tenants)
        .map(|tenant| async move { deps.store.list_connections(&tenant.id).await })
        .buffered(READS_IN_FLIGHT)
        .try_collect()
        .await?;
    let health = stream::iter(connections.into_iter().flatten())
        .map(|connection| async move {
            let runs = deps.store.list_runs(&connection.id, RECENT_RUNS).await?;
            Ok::<_, ApiError>(of_connection(connection, &runs))
        })
        .buffered(READS_IN_FLIGHT)
        .try_collect()
        .await?;
    Ok(health)
}

/// One connection's health from its recent runs (pure: the figures follow from the runs).
pub fn of_connection(connection: Connection, runs: &[SyncRun]) -> ConnectionHealth {
    let last_success = |is_kind: fn(RunKind) -> bool| {
        runs.iter()
            .filter(|run| is_kind(run.kind) && run.status == RunStatus::Succeeded && run.counts.failed.is_empty())
            .filter_map(|run| run.finished_at)
            .max()
    };
    let mut parked_by_reason = BTreeMap::new();
    for run in runs {
        for (reason, records) in &run.counts.failed {
            *parked_by_reason.entry(reason.clone()).or_insert(0) += records;
        }
    }
    ConnectionHealth {
        tenant_id: connection.tenant_id.clone(),
        needs_reauth: connection.status == ConnectionStatus::NeedsReauth,
        last_push_at: last_success(|kind| kind == RunKind::Push),
        last_pull_at: last_success(|kind| {
            matches!(kind, RunKind::Enrichment | RunKind::CatchUp | RunKind::FullSync | RunKind::Backfill)
        }),
        parked_by_reason,
        runs_considered: runs.len(),
        connection,
    }
}
