use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{ConnectionId, ObjectType};

/// Which pull a cursor belongs to: each advances on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncFlow {
    Enrichment,
    CatchUp,
    FullSync,
}

impl SyncFlow {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncFlow::Enrichment => "enrichment",
            SyncFlow::CatchUp => "catch_up",
            SyncFlow::FullSync => "full_sync",
        }
    }
}

/// A position in HubSpot's change order: last-modified time, then object id for records that
/// share a timestamp. Ordered lexicographically, so "forward" is well defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CursorPosition {
    pub modified_at_ms: i64,
    pub object_id: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncCursor {
    pub connection_id: ConnectionId,
    pub object_type: ObjectType,
    pub flow: SyncFlow,
    pub position: CursorPosition,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    Push,
    Inbound,
    Enrichment,
    CatchUp,
    FullSync,
    Backfill,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
}

/// Counts of what a run did; every record it saw lands in exactly one bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounts {
    pub received: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Deliberately not synced, by reason (e.g. "contact has no email").
    pub skipped: BTreeMap<String, u64>,
    /// Failed, by reason (HubSpot's message for permanent errors); such work is parked.
    pub failed: BTreeMap<String, u64>,
    /// Not finished yet, by reason: retried later, and counted again by the run that retries.
    #[serde(default)]
    pub retried: BTreeMap<String, u64>,
    /// Handed back to the queue without counting an attempt (the record was being written by
    /// another worker, the budget was booked, the invocation's time ran out), by reason.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub deferred: BTreeMap<String, u64>,
    /// Fields the platform sent that no outbound mapping uses, by field name: not written.
    #[serde(default)]
    pub ignored_fields: BTreeMap<String, u64>,
}

impl RunCounts {
    pub fn skip(&mut self, reason: impl Into<String>) {
        *self.skipped.entry(reason.into()).or_default() += 1;
    }

    pub fn fail(&mut self, reason: impl Into<String>) {
        *self.failed.entry(reason.into()).or_default() += 1;
    }
    pub fn retry(&mut self, reason: impl Into<String>) {
        *self.retried.entry(reason.into()).or_default() += 1;
    }

    pub fn defer(&mut self, reason: impl Into<String>) {
        *self.deferred.entry(reason.into()).or_default() += 1;
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &RunCounts) {
        self.received += other.received;
        self.created += other.created;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        for (mine, theirs) in [
            (&mut self.skipped, &other.skipped),
            (&mut self.failed, &other.failed),
            (&mut self.retried, &other.retried),
            (&mut self.deferred, &other.deferred),
            (&mut self.ignored_fields, &other.ignored_fields),
        ] {
            for (reason, n) in theirs {
                *mine.entry(reason.clone()).or_default() += n;
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRun {
    pub connection_id: ConnectionId,
    /// Starts with the start time, so runs sort newest-last by id.
    pub run_id: String,
    pub kind: RunKind,
    pub status: RunStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    pub counts: RunCounts,
    /// For pulls: how far the run has come.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<PullProgress>,
    /// Bumped by every update of a running pull's record (see `Store::update_run`).
    #[serde(default)]
    pub revision: u64,
}

/// A pull's progress, visible while it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullProgress {
    pub pages: u64,
    pub cursor: Option<CursorPosition>,
}

impl SyncRun {
    /// A run started `now`; `unique` (a fresh id, see [`crate::ports::IdSource`]) tells apart
    /// runs started in the same millisecond.
    pub fn start(connection_id: ConnectionId, kind: RunKind, now: OffsetDateTime, unique: &str) -> Self {
        let millis = now.unix_timestamp_nanos() / 1_000_000;
        SyncRun {
            connection_id,
            run_id: format!("{millis:013}-{}", unique.get(..8).unwrap_or(unique)),
            kind,
            status: RunStatus::Running,
            started_at: now,
            finished_at: None,
            counts: RunCounts::default(),
            progress: None,
            revision: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_positions_order_by_time_then_id() {
        let a = CursorPosition { modified_at_ms: 10, object_id: 900 };
        let b = CursorPosition { modified_at_ms: 11, object_id: 1 };
        let c = CursorPosition { modified_at_ms: 11, object_id: 2 };
        assert!(a < b && b < c);
    }

    #[test]
    fn run_ids_sort_by_start_time() {
        let t = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let early = SyncRun::start(ConnectionId::new("c"), RunKind::Push, t, "ffffffff");
        let late = SyncRun::start(ConnectionId::new("c"), RunKind::Push, t + time::Duration::seconds(1), "00000000");
        assert!(early.run_id < late.run_id);
    }
}
