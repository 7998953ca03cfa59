//! The skeleton every queue worker shares. A queue batch is read into items, grouped by
//! connection and object; each group's connection is looked up and checked once; the groups
//! run concurrently, each until the invocation's deadline; every item ends in one
//! [`Outcome`], counted into the group's run; and each message gets the verdict of its items.
//!
//! A job (the push job, the inbound job, the pull job) supplies only what is its own: how to
//! read a message, and how to work one group.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::join_all;

use crate::deps::{Deps, QueuePair};
use crate::domain::{
    ConnectionConfig, ConnectionId, ConnectionStatus, ObjectType, RunCounts, RunKind, RunStatus, SyncRun,
};
use crate::ports::ReceivedMessage;
use crate::work::deadline::Deadline;
use crate::work::gateway::{NEEDS_REAUTH, Target};
use crate::work::outcome::{Outcome, Verdict};
use crate::work::parking::{Disposition, settle};
use crate::work::sqs::QueueWorker;

/// Kept free at the end of an invocation: what it takes to settle the batch's messages.
const SETTLE_TIME: Duration = Duration::from_secs(3);

/// A batch's items (with their message indexes) by connection and object.
type Groups<T> = BTreeMap<(ConnectionId, ObjectType), Vec<(usize, T)>>;

/// One item of a message, and the connection and object it is for.
pub struct Routed<T> {
    pub connection_id: ConnectionId,
    pub object: ObjectType,
    pub item: T,
}

/// A group's connection, checked: active, configured, with the time the invocation has left.
pub struct Group {
    pub target: Target,
    pub config: ConnectionConfig,
    pub object: ObjectType,
}

/// What became of some of a group's items (their message indexes): one outcome, and how many
/// more items were folded into the one that carries it.
#[derive(Debug)]
pub struct Settled {
    pub indexes: Vec<usize>,
    pub outcome: Outcome,
    pub folded: usize,
}

impl Settled {
    pub fn new(indexes: Vec<usize>, outcome: Outcome) -> Settled {
        let folded = indexes.len().saturating_sub(1);
        Settled { indexes, outcome, folded }
    }
}

/// What a job makes of one group: each item's outcome, and any counts of its own.
#[derive(Debug, Default)]
pub struct GroupResult {
    pub settled: Vec<Settled>,
    pub counts: RunCounts,
}

#[async_trait]
pub trait Job: Send + Sync {
    type Item: Send + Sync;
    /// The queue its messages come from, and where they are parked.
    fn queues<'a>(&self, deps: &'a Deps) -> &'a QueuePair;
    /// The kind of run each group is recorded as; `None` for a job that records its own runs.
    fn run_kind(&self) -> Option<RunKind>;
    /// Why an item folded into a newer one of the same record counts as skipped.
    fn folded_reason(&self) -> &'static str;
    /// Reads one message into its items; `Err` parks it as unreadable, with the reason.
    fn read(&self, body: &str) -> Result<Vec<Routed<Self::Item>>, String>;
    /// Works one group's items (with their message indexes) before the group's deadline.
    async fn run(&self, group: &Group, items: Vec<(usize, Self::Item)>) -> GroupResult;
    /// Told when a group's connection cannot be worked (gone, disabled, awaiting
    /// reauthorisation) and every item ends with `outcome`: for a job that keeps its own runs.
    async fn not_connected(&self, _items: &[(usize, Self::Item)], _outcome: &Outcome) {}
}

/// A job run as a queue worker.
pub struct Pipeline<J> {
    deps: Deps,
    job: J,
}

impl<J: Job> Pipeline<J> {
    pub fn new(deps: Deps, job: J) -> Self {
        Pipeline { deps, job }
    }

    pub fn job(&self) -> &J {
        &self.job
    }

    /// Processes one queue batch; the answer has one disposition per message, in order.
    pub async fn process_batch(&self, batch: &[ReceivedMessage], deadline: Deadline) -> Vec<Disposition> {
        let mut verdicts = vec![Verdict::Done; batch.len()];
        let mut groups: Groups<J::Item> = BTreeMap::new();
        for (index, message) in batch.iter().enumerate() {
            match self.job.read(&message.body) {
                Ok(items) => {
                    for Routed { connection_id, object, item } in items {
                        groups.entry((connection_id, object)).or_default().push((index, item));
                    }
                }
                Err(reason) => verdicts[index] = Verdict::Park(format!("unreadable message: {reason}")),
            }
        }
        // Groups run side by side: one slow tenant does not hold up the others.
        let runs = groups.into_iter().map(|((id, object), items)| self.run_group(id, object, items, deadline));
        for settled in join_all(runs).await.into_iter().flatten() {
            let verdict = settled.outcome.verdict();
            for index in settled.indexes {
                verdicts[index] = std::mem::replace(&mut verdicts[index], Verdict::Done).combine(verdict.clone());
            }
        }
        let parked = &*self.job.queues(&self.deps).parked;
        let mut dispositions = Vec::with_capacity(batch.len());
        for (message, verdict) in batch.iter().zip(verdicts) {
            dispositions.push(settle(parked, message, verdict, self.deps.clock.now()).await);
        }
        dispositions
    }

    async fn run_group(
        &self,
        connection_id: ConnectionId,
        object: ObjectType,
        items: Vec<(usize, J::Item)>,
        deadline: Deadline,
    ) -> Vec<Settled> {
        let started = self.deps.clock.now();
        let received = items.len() as u64;
        let indexes: Vec<usize> = items.iter().map(|(index, _)| *index).collect();
        let each = |outcome: Outcome| indexes.iter().map(|&i| Settled::new(vec![i], outcome.clone())).collect();
        let result = match self.connect(&connection_id, object, deadline).await {
            Err(outcome) => {
                self.job.not_connected(&items, &outcome).await;
                GroupResult { settled: each(outcome), counts: RunCounts::default() }
            }
            Ok(group) => {
                // The job watches the deadline itself; this is the backstop if it overruns.
                let time = deadline.remaining(self.deps.clock.now()).saturating_sub(SETTLE_TIME);
                match tokio::time::timeout(time, self.job.run(&group, items)).await {
                    Ok(result) => result,
                    Err(_) => {
                        tracing::warn!(connection = %connection_id, %object, "the group overran the invocation's deadline");
                        GroupResult {
                            settled: each(crate::work::deadline::out_of_time()),
                            counts: RunCounts::default(),
                        }
                    }
                }
            }
        };
        if let Some(kind) = self.job.run_kind() {
            self.record_run(&connection_id, object, kind, started, received, &result).await;
        }
        result.settled
    }

    /// The group's connection and config, or what becomes of every item when work for the
    /// connection cannot go on.
    async fn connect(&self, id: &ConnectionId, object: ObjectType, deadline: Deadline) -> Result<Group, Outcome> {
        let store = &self.deps.store;
        let connection = match store.get_connection(id).await {
            Ok(Some(connection)) => connection,
            Ok(None) => return Err(Outcome::Skipped(format!("connection {id} does not exist (uninstalled)"))),
            Err(err) => return Err(Outcome::Retry(err.to_string())),
        };
        match connection.status {
            ConnectionStatus::Active => {}
            ConnectionStatus::Disabled => return Err(Outcome::Skipped("connection is disabled".into())),
            ConnectionStatus::NeedsReauth | ConnectionStatus::Pending => {
                return Err(Outcome::Retry(NEEDS_REAUTH.into()));
            }
        }
        let config = match store.get_config(id).await {
            Ok(Some(config)) => config.config,
            Ok(None) => return Err(Outcome::Skipped("the connection has no config".into())),
            Err(err) => return Err(Outcome::Retry(err.to_string())),
        };
        let target = Target { connection, limit_per_10s: config.options.rate_limit_per_10s, deadline };
        Ok(Group { target, config, object })
    }

    async fn record_run(
        &self,
        id: &ConnectionId,
        object: ObjectType,
        kind: RunKind,
        started: time::OffsetDateTime,
        received: u64,
        result: &GroupResult,
    ) {
        let mut run = SyncRun::start(id.clone(), kind, started, &self.deps.ids.new_id());
        run.counts = result.counts.clone();
        run.counts.received = received;
        for settled in &result.settled {
            settled.outcome.count(&mut run.counts, settled.folded, self.job.folded_reason());
        }
        run.status = if run.counts.failed.is_empty() { RunStatus::Succeeded } else { RunStatus::Failed };
        run.finished_at = Some(self.deps.clock.now());
        tracing::info!(connection = %id, %object, ?kind, counts = ?run.counts, "run");
        crate::telemetry::emit_run_metrics(kind, &run.counts);
        if let Err(err) = self.deps.store.put_run(&run).await {
            tracing::warn!(connection = %id, error = %err, "could not record a run");
        }
    }
}

#[async_trait]
impl<J: Job> QueueWorker for Pipeline<J> {
    async fn process(&self, batch: &[ReceivedMessage], deadline: Deadline) -> Vec<Disposition> {
        self.process_batch(batch, deadline).await
    }
}
