//! Scheduled pulls (enrichment, catch-up, full sync, backfill): jobs on the bulk queue that walk
//! HubSpot's records (see [`crate::domain::pull`]) and deliver what is news like webhook changes.
//!
//! A job handles a bounded number of pages, then enqueues its continuation, so a pull of any
//! size fits Lambda's time limit; the cursor moves after each delivered page, so a crash
//! resumes from the last one. A record the platform refuses is parked on its own, with the
//! platform's reason, and the pull moves on; a delivery that fails as a whole (the platform
//! down) replays the page later.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::deps::{Deps, QueuePair};
use crate::domain::pull::{PullQuery, bounded, first_query, step};
use crate::domain::{
    Connection, ConnectionId, CursorPosition, EventKind, INBOUND_MESSAGE_VERSION, InboundEvent, InboundMessage,
    ObjectConfig, ObjectType, PullProgress, RunKind, RunStatus, SyncCursor, SyncFlow, SyncRun,
};
use crate::hubspot::CrmObject;
use crate::inbound::deliver::Delivering;
use crate::inbound::read::Reader;
use crate::inbound::record::InboundRecord;
use crate::ports::{OutgoingMessage, StoreError};
use crate::work::gateway::{CALL_BUDGET, HubSpotGateway};
use crate::work::parking::{ParkNote, park};
use crate::work::{Group, GroupResult, Job, Outcome, Routed, Settled, Target};

pub const PULL_JOB_VERSION: u32 = 1;
/// Pages one job walks before handing over to its continuation: 20 searches at 5 a second
/// take a few seconds, far inside Lambda's limit even when the platform is slow.
pub const PAGES_PER_JOB: usize = 20;
/// Enrichment starts this far before its cursor: search's index lags writes.
pub const ENRICHMENT_OVERLAP_MS: i64 = 5 * 60 * 1000;
/// A pull marked running for longer than this is taken as abandoned (its job parked or lost),
/// so it does not block its connection's pulls for ever.
pub const STALE_PULL: time::Duration = time::Duration::hours(24);
/// What one page may take: its HubSpot reads and a delivery to the platform.
const PAGE_BUDGET: Duration = Duration::from_secs(60);

/// A bulk queue message: the next page range of one run's pull.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullJob {
    pub version: u32,
    pub connection_id: ConnectionId,
    pub object: ObjectType,
    pub flow: SyncFlow,
    pub run_id: String,
    /// The run's start: nothing modified later is pulled, and the cursor never passes it.
    pub until_ms: i64,
    pub walk: Walk,
    /// For a backfill: deliver only these platform fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_fields: Option<Vec<String>>,
}

/// How a pull walks HubSpot's records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "walk", rename_all = "snake_case")]
pub enum Walk {
    /// Changes, by search from a cursor (enrichment, catch-up).
    Changes { query: PullQuery },
    /// Every record, by the list endpoint's own cursor, which has no 10,000 cap (full sync,
    /// backfill). `after` is the next page's cursor; `None` starts at the beginning.
    Everything { after: Option<String> },
}

pub fn run_kind(flow: SyncFlow) -> RunKind {
    match flow {
        SyncFlow::Enrichment => RunKind::Enrichment,
        SyncFlow::CatchUp => RunKind::CatchUp,
        SyncFlow::FullSync => RunKind::FullSync,
    }
}

/// What one page of a walk gives.
struct Page {
    deliver: Vec<CrmObject>,
    cursor: Option<CursorPosition>,
    next: Option<Walk>,
}

/// Records per list page (HubSpot's maximum for the list endpoint).
const LIST_PAGE: u32 = 100;

fn millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Why a pull did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A pull of the same object and flow is still running for the connection.
    #[error("a {} pull of {object} is still running for this connection", flow.as_str())]
    AlreadyRunning { object: ObjectType, flow: SyncFlow },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Starts a pull of one object for a connection: records the run and queues its first job.
/// Enrichment goes on from the stored cursor; catch-up covers the last `since`.
pub async fn start_pull(
    deps: &Deps,
    connection: &Connection,
    object: ObjectType,
    flow: SyncFlow,
    since: Option<OffsetDateTime>,
) -> Result<SyncRun, StartError> {
    let until_ms = millis(deps.clock.now());
    let query = match since {
        Some(since) => first_query(CursorPosition { modified_at_ms: millis(since), object_id: 0 }, 0, until_ms),
        None => {
            let cursor = deps.store.get_cursor(&connection.id, object, flow).await?.map(|c| c.position);
            let start = cursor.unwrap_or(CursorPosition { modified_at_ms: 0, object_id: 0 });
            first_query(start, ENRICHMENT_OVERLAP_MS, until_ms)
        }
    };
    queue_first_job(deps, connection, object, flow, run_kind(flow), until_ms, Walk::Changes { query }, None).await
}

/// Sends every record of `object` to the platform (a full sync), or, with `only_fields`, just
/// those fields (the backfill of newly mapped ones).
pub async fn start_full_sync(
    deps: &Deps,
    connection: &Connection,
    object: ObjectType,
    only_fields: Option<Vec<String>>,
) -> Result<SyncRun, StartError> {
    let until_ms = millis(deps.clock.now());
    let kind = if only_fields.is_some() { RunKind::Backfill } else { RunKind::FullSync };
    let walk = Walk::Everything { after: None };
    queue_first_job(deps, connection, object, SyncFlow::FullSync, kind, until_ms, walk, only_fields).await
}

/// Marks the pull running (unless one is; a backfill, started by a config save, is never held
/// back), records its run and queues its first job.
#[allow(clippy::too_many_arguments)]
async fn queue_first_job(
    deps: &Deps,
    connection: &Connection,
    object: ObjectType,
    flow: SyncFlow,
    kind: RunKind,
    until_ms: i64,
    walk: Walk,
    only_fields: Option<Vec<String>>,
) -> Result<SyncRun, StartError> {
    let now = deps.clock.now();
    let mut run = SyncRun::start(connection.id.clone(), kind, now, &deps.ids.new_id());
    run.progress = Some(PullProgress::default());
    let marked = only_fields.is_none();
    if marked && !deps.store.begin_pull(&connection.id, object, flow, &run.run_id, now, STALE_PULL).await? {
        return Err(StartError::AlreadyRunning { object, flow });
    }
    let job = PullJob {
        version: PULL_JOB_VERSION,
        connection_id: connection.id.clone(),
        object,
        flow,
        run_id: run.run_id.clone(),
        until_ms,
        walk,
        only_fields,
    };
    let body = serde_json::to_string(&job).expect("a job serialises");
    let queued = async {
        deps.store.put_run(&run).await?;
        deps.bulk.work.send(vec![OutgoingMessage::new(body)]).await.map_err(|e| StoreError::Unavailable(e.to_string()))
    };
    if let Err(err) = queued.await {
        // Not started after all: the next schedule may start it.
        if marked && let Err(cleanup) = deps.store.end_pull(&connection.id, object, flow, &run.run_id).await {
            tracing::warn!(error = %cleanup, "could not clear the mark of a pull that did not start; it ages out");
        }
        return Err(err.into());
    }
    Ok(run)
}

/// The bulk queue's job: walks pull pages, a job message at a time.
pub struct BulkJob {
    deps: Deps,
    gateway: HubSpotGateway,
}

impl From<StartError> for crate::http::ApiError {
    fn from(err: StartError) -> Self {
        match err {
            StartError::AlreadyRunning { .. } => {
                crate::http::ApiError::Conflict(format!("{err}: wait for it to finish"))
            }
            StartError::Store(err) => err.into(),
        }
    }
}

impl BulkJob {
    pub fn new(deps: Deps) -> Self {
        BulkJob { gateway: HubSpotGateway::new(deps.clone()), deps }
    }
}

#[async_trait]
impl Job for BulkJob {
    type Item = PullJob;

    fn queues<'a>(&self, deps: &'a Deps) -> &'a QueuePair {
        &deps.bulk
    }

    /// A pull keeps its own run, page by page.
    fn run_kind(&self) -> Option<RunKind> {
        None
    }

    fn folded_reason(&self) -> &'static str {
        "a copy of the same pull job"
    }

    fn read(&self, body: &str) -> Result<Vec<Routed<PullJob>>, String> {
        let job: PullJob = serde_json::from_str(body).map_err(|e| format!("unreadable pull job: {e}"))?;
        if job.version != PULL_JOB_VERSION {
            return Err(format!("pull job version {} is not supported", job.version));
        }
        Ok(vec![Routed { connection_id: job.connection_id.clone(), object: job.object, item: job }])
    }

    /// A pull whose connection cannot be worked: its run shows why, and ends unless retried.
    async fn not_connected(&self, jobs: &[(usize, PullJob)], outcome: &Outcome) {
        for (_, job) in jobs {
            self.paused(job, outcome.clone()).await;
        }
    }

    async fn run(&self, group: &Group, jobs: Vec<(usize, PullJob)>) -> GroupResult {
        let mut result = GroupResult::default();
        for (index, job) in jobs {
            let outcome = self.run_job(group, &job).await;
            result.settled.push(Settled::new(vec![index], outcome));
        }
        result
    }
}

impl BulkJob {
    /// Walks up to [`PAGES_PER_JOB`] pages of the job's pull, then queues the rest.
    async fn run_job(&self, group: &Group, job: &PullJob) -> Outcome {
        let Some(object_config) = group.config.objects.get(&job.object) else {
            self.finish(job, RunStatus::Succeeded).await;
            return Outcome::Skipped(format!("{} are no longer configured", job.object));
        };
        let Some(ingest_url) = group.config.options.ingest_url.as_deref() else {
            self.finish(job, RunStatus::Failed).await;
            return Outcome::Failed("the config has no `ingest_url` to deliver to: set it, then redrive".into());
        };
        let reader = Reader { deps: &self.deps, gateway: &self.gateway, target: &group.target };
        let delivering = Delivering { reader, claims: None, portal_id: group.target.connection.portal_id, ingest_url };
        let properties = object_config.inbound_properties();
        let mut walk = job.walk.clone();
        for page_number in 0..PAGES_PER_JOB {
            if !group.target.deadline.allows(self.deps.clock.now(), PAGE_BUDGET) {
                if page_number == 0 {
                    return self.paused(job, crate::work::deadline::out_of_time()).await;
                }
                break;
            }
            let page = match self.fetch(&group.target, job, &walk, &properties).await {
                Ok(page) => page,
                Err(outcome) => return self.paused(job, outcome).await,
            };
            let mut records = page_records(job, object_config, &page.deliver);
            delivering.reader.associated_fields(object_config, &mut records).await;
            // A full sync sends every inbound field again; a backfill only the new ones.
            let resend = job.only_fields.is_none() && matches!(walk, Walk::Everything { .. });
            delivering.judge(job.object, object_config, &mut records, &|_| resend, job.only_fields.as_deref()).await;
            delivering.deliver(&mut records).await;
            delivering.release(&records).await;
            if let Some(outcome) = records.iter().find_map(|r| r.outcome.as_ref().filter(|o| replays_page(r, o))) {
                // The page is walked again later; what was applied is not news then.
                return self.paused(job, outcome.clone()).await;
            }
            if let Err(err) = self.park_refused(group, job, &records).await {
                return self.paused(job, Outcome::Retry(format!("could not park a refused record: {err}"))).await;
            }
            if let Some(position) = page.cursor {
                let cursor = SyncCursor {
                    connection_id: job.connection_id.clone(),
                    object_type: job.object,
                    flow: job.flow,
                    position,
                };
                match self.deps.store.advance_cursor(&cursor).await {
                    Ok(()) | Err(StoreError::CursorBehind) => {}
                    Err(err) => return self.paused(job, Outcome::Retry(err.to_string())).await,
                }
            }
            let mut page_counts =
                crate::domain::RunCounts { received: records.len() as u64, ..crate::domain::RunCounts::default() };
            for outcome in records.iter().filter_map(|record| record.outcome.as_ref()) {
                outcome.count(&mut page_counts, 0, "");
            }
            crate::telemetry::emit_run_metrics(run_kind(job.flow), &page_counts);
            self.record(job, |run| {
                run.counts.add(&page_counts);
                let progress = run.progress.get_or_insert_with(PullProgress::default);
                progress.pages += 1;
                progress.cursor = page.cursor.or(progress.cursor);
            })
            .await;
            match page.next {
                Some(next) => walk = next,
                None => {
                    self.finish(job, RunStatus::Succeeded).await;
                    return Outcome::Updated;
                }
            }
        }
        let continuation = PullJob { walk, ..job.clone() };
        let body = serde_json::to_string(&continuation).expect("a job serialises");
        match self.deps.bulk.work.send(vec![OutgoingMessage::new(body)]).await {
            Ok(()) => Outcome::Updated,
            Err(err) => Outcome::Retry(format!("could not queue the pull's next pages: {err}")),
        }
    }

    /// The job stops at its page: the run shows why. A refusal, or a skip of the whole pull
    /// (its connection disabled or gone), ends the run as failed.
    async fn paused(&self, job: &PullJob, outcome: Outcome) -> Outcome {
        match &outcome {
            Outcome::Failed(_) => self.finish(job, RunStatus::Failed).await,
            Outcome::Skipped(reason) => {
                self.record(job, |run| run.counts.skip(reason.clone())).await;
                self.finish(job, RunStatus::Failed).await;
            }
            Outcome::Retry(reason) => self.record(job, |run| run.counts.retry(reason.clone())).await,
            Outcome::Deferred { reason, .. } => self.record(job, |run| run.counts.defer(reason.clone())).await,
            _ => {}
        }
        outcome
    }

    /// Parks each record the platform refused on its own, as an inbound message that reads
    /// and delivers the record again once redriven.
    async fn park_refused(
        &self,
        group: &Group,
        job: &PullJob,
        records: &[InboundRecord],
    ) -> Result<(), crate::ports::QueueError> {
        for record in records.iter().filter(|r| r.refused_by_platform) {
            let reason = match &record.outcome {
                Some(Outcome::Failed(reason) | Outcome::Retry(reason)) => reason.clone(),
                _ => continue,
            };
            let message = InboundMessage {
                version: INBOUND_MESSAGE_VERSION,
                connection_id: job.connection_id.clone(),
                portal_id: group.target.connection.portal_id,
                events: vec![InboundEvent {
                    object: job.object,
                    object_id: record.object_id,
                    occurred_at_ms: record.latest.occurred_at_ms,
                    kind: EventKind::Refresh,
                }],
            };
            let body = serde_json::to_string(&message).expect("a message serialises");
            let note = ParkNote {
                reason: format!("{} pull: {reason}", job.flow.as_str()),
                connection_id: Some(job.connection_id.clone()),
                attempts: 1,
                parked_at: self.deps.clock.now(),
            };
            park(&*self.deps.inbound.parked, &body, note).await?;
        }
        Ok(())
    }

    /// One page of the walk: the records to deliver, the cursor once they are, and what next.
    async fn fetch(&self, target: &Target, job: &PullJob, walk: &Walk, properties: &[String]) -> Result<Page, Outcome> {
        let deps = &self.deps;
        let names: Vec<&str> = properties.iter().map(String::as_str).collect();
        let names = &names;
        match walk {
            Walk::Changes { query } => {
                let found = self
                    .gateway
                    .search(target, |token| async move {
                        deps.hubspot.objects(&token, job.object).search_pull(query, names).await
                    })
                    .await
                    .map_err(|failed| failed.outcome())?;
                let modified = job.object.last_modified_property();
                let hits: Vec<_> = found.iter().filter_map(|o| o.as_hit(modified)).collect();
                let step = step(query, &hits);
                let deliver = found
                    .into_iter()
                    .filter(|o| o.as_hit(modified).is_some_and(|h| step.deliver.contains(&h)))
                    .collect();
                let next = step.next.and_then(|next| bounded(next, job.until_ms)).map(|query| Walk::Changes { query });
                Ok(Page { deliver, cursor: Some(step.cursor), next })
            }
            Walk::Everything { after } => {
                let page = self
                    .gateway
                    .call(target, |token| async move {
                        let mut wanted = names.to_vec();
                        wanted.push(job.object.last_modified_property());
                        deps.hubspot.objects(&token, job.object).list_page(after.as_deref(), LIST_PAGE, &wanted).await
                    })
                    .await
                    .map_err(|failed| failed.outcome())?;
                let next = page.next_after.map(|after| Walk::Everything { after: Some(after) });
                Ok(Page { deliver: page.results, cursor: None, next })
            }
        }
    }

    async fn finish(&self, job: &PullJob, status: RunStatus) {
        let now = self.deps.clock.now();
        self.record(job, |run| {
            run.status = status;
            run.finished_at = Some(now);
        })
        .await;
        if let Err(err) = self.deps.store.end_pull(&job.connection_id, job.object, job.flow, &job.run_id).await {
            tracing::warn!(run = %job.run_id, error = %err, "could not mark a pull finished; it ages out");
        }
    }

    /// Updates the job's run record, by compare-and-set on its revision: a copy of the job
    /// running at the same time (a redelivery) never undoes this update. A failure only loses
    /// counts, never data.
    async fn record(&self, job: &PullJob, update: impl Fn(&mut SyncRun)) {
        let store = &self.deps.store;
        for _ in 0..8 {
            let mut run = match store.get_run(&job.connection_id, &job.run_id).await {
                Ok(Some(run)) => run,
                Ok(None) => return tracing::warn!(run = %job.run_id, "a pull job's run is missing"),
                Err(err) => return tracing::warn!(run = %job.run_id, error = %err, "could not read a pull's run"),
            };
            update(&mut run);
            match store.update_run(&run).await {
                Ok(()) => return,
                Err(StoreError::RevisionConflict) => continue,
                Err(err) => {
                    return tracing::warn!(run = %job.run_id, error = %err, "could not record a pull's progress");
                }
            }
        }
        tracing::warn!(run = %job.run_id, "a pull's run kept changing; this update is lost");
    }
}

/// Whether an unfinished record holds its page back: anything but the platform's refusal of
/// that one record (which is parked on its own).
fn replays_page(record: &InboundRecord, outcome: &Outcome) -> bool {
    !outcome.is_final() && !record.refused_by_platform
}

/// The page's records, read as they are now, as if each had changed.
fn page_records(job: &PullJob, config: &ObjectConfig, found: &[CrmObject]) -> Vec<InboundRecord> {
    let modified = job.object.last_modified_property();
    found
        .iter()
        .filter_map(|object| {
            let hit = object.as_hit(modified)?;
            let latest = InboundEvent {
                object: job.object,
                object_id: hit.object_id,
                occurred_at_ms: hit.modified_at_ms,
                kind: EventKind::Refresh,
            };
            let mut record = InboundRecord::new(job.object, hit.object_id, vec![0], latest);
            record.take_reading(config, object, None);
            if let Some(reading) = record.reading.as_mut() {
                reading.version_ms = reading.version_ms.max(hit.modified_at_ms);
            }
            Some(record)
        })
        .collect()
}

/// Start this pull's calls only with time for at least one HubSpot call and a delivery.
const _: () = assert!(PAGE_BUDGET.as_secs() > CALL_BUDGET.as_secs());
