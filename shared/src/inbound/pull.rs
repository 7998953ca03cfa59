//! Scheduled pulls (enrichment, catch-up): jobs on the bulk queue that walk HubSpot's changes
//! with search (see [`crate::domain::pull`]) and deliver them like webhook changes.
//!
//! A job handles a bounded number of pages, then enqueues its continuation, so a pull of any
//! size fits Lambda's time limit; the cursor moves after each delivered page, so a crash
//! resumes from the last one.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::deps::Deps;
use crate::domain::pull::{PullQuery, bounded, first_query, step};
use crate::domain::{
    Connection, ConnectionId, CursorPosition, EventKind, InboundEvent, ObjectType, PullProgress, RunKind, RunStatus,
    SyncCursor, SyncFlow, SyncRun,
};
use crate::hubspot::CrmObject;
use crate::inbound::InboundWorker;
use crate::inbound::worker::{Known, Pending, count, delivered};
use crate::ports::{OutgoingMessage, ReceivedMessage, StoreError};
use crate::work::calls::Failure;
use crate::work::calls::Target;
use crate::work::{Disposition, QueueWorker, Verdict, settle};

pub const PULL_JOB_VERSION: u32 = 1;
/// Pages one job walks before handing over to its continuation: 20 searches at 5 a second
/// take a few seconds, far inside Lambda's limit even when the platform is slow.
pub const PAGES_PER_JOB: usize = 20;
/// Enrichment starts this far before its cursor: search's index lags writes.
pub const ENRICHMENT_OVERLAP_MS: i64 = 5 * 60 * 1000;

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

fn run_kind(flow: SyncFlow) -> RunKind {
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

/// Starts a pull of one object for a connection: records the run and queues its first job.
/// Enrichment goes on from the stored cursor; catch-up covers the last `since_ms`.
pub async fn start_pull(
    deps: &Deps,
    connection: &Connection,
    object: ObjectType,
    flow: SyncFlow,
    since: Option<OffsetDateTime>,
) -> Result<SyncRun, StoreError> {
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
) -> Result<SyncRun, StoreError> {
    let until_ms = millis(deps.clock.now());
    let kind = if only_fields.is_some() { RunKind::Backfill } else { RunKind::FullSync };
    let walk = Walk::Everything { after: None };
    queue_first_job(deps, connection, object, SyncFlow::FullSync, kind, until_ms, walk, only_fields).await
}

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
) -> Result<SyncRun, StoreError> {
    let mut run = SyncRun::start(connection.id.clone(), kind, deps.clock.now());
    run.progress = Some(PullProgress::default());
    deps.store.put_run(&run).await?;
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
    deps.bulk.work.send(vec![OutgoingMessage::new(body)]).await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
    Ok(run)
}

/// The bulk queue's worker.
pub struct PullWorker {
    inbound: InboundWorker,
}

#[async_trait]
impl QueueWorker for PullWorker {
    async fn process(&self, batch: &[ReceivedMessage]) -> Vec<Disposition> {
        let mut dispositions = Vec::with_capacity(batch.len());
        for message in batch {
            let verdict = match serde_json::from_str::<PullJob>(&message.body) {
                Ok(job) if job.version == PULL_JOB_VERSION => self.run_job(job).await,
                Ok(job) => Verdict::Park(format!("pull job version {} is not supported", job.version)),
                Err(err) => Verdict::Park(format!("unreadable pull job: {err}")),
            };
            let deps = &self.inbound.deps;
            dispositions.push(settle(&*deps.bulk.parked, message, verdict, deps.clock.now()).await);
        }
        dispositions
    }
}

impl PullWorker {
    pub fn new(deps: Deps) -> Self {
        PullWorker { inbound: InboundWorker::new(deps) }
    }

    fn deps(&self) -> &Deps {
        &self.inbound.deps
    }

    /// Walks up to [`PAGES_PER_JOB`] pages of the job's pull, then queues the rest.
    async fn run_job(&self, job: PullJob) -> Verdict {
        let deps = self.deps();
        let (target, config, ingest_url) = match self.inbound.prepare(&job.connection_id).await {
            Ok(prepared) => prepared,
            Err((verdict, counted)) => {
                self.record(&job, |run| {
                    count(&mut run.counts, &counted, 1);
                    if !matches!(verdict, Verdict::Retry(_)) {
                        run.status = RunStatus::Failed;
                        run.finished_at = Some(deps.clock.now());
                    }
                })
                .await;
                return verdict;
            }
        };
        let Some(object_config) = config.objects.get(&job.object) else {
            self.finish(&job, RunStatus::Succeeded).await;
            return Verdict::Done;
        };
        let key_property = object_config.match_key.property().to_string();
        let properties = object_config.inbound_properties();

        let mut walk = job.walk.clone();
        for _ in 0..PAGES_PER_JOB {
            let page = match self.fetch(&target, &job, &walk, &properties).await {
                Ok(page) => page,
                Err(Failure::Retry(reason)) => {
                    // The run shows why it paused; the job resumes at this page.
                    self.record(&job, |run| run.counts.retry(reason.clone())).await;
                    return Verdict::Retry(reason);
                }
                Err(Failure::Permanent(reason)) => {
                    self.finish(&job, RunStatus::Failed).await;
                    return Verdict::Park(reason);
                }
            };
            let modified = job.object.last_modified_property();
            let mut records: Vec<Pending> = page
                .deliver
                .iter()
                .filter_map(|o| {
                    let hit = o.as_hit(modified)?;
                    let latest = InboundEvent {
                        object: job.object,
                        object_id: hit.object_id,
                        occurred_at_ms: hit.modified_at_ms,
                        kind: EventKind::Changed { property: String::new() },
                    };
                    let mut record = Pending::new(hit.object_id, vec![0], latest);
                    let mut delivery = delivered(job.object, object_config, &key_property, &record, o);
                    if let Some(only) = &job.only_fields {
                        delivery.fields.retain(|name, _| only.contains(name));
                    }
                    record.delivery = Some(delivery);
                    Some(record)
                })
                .collect();
            self.inbound.add_associated_fields(&target, object_config, &mut records).await;
            // A full sync sends everything again, a backfill every value the platform lacks, a
            // pull of changes only what is new.
            let known = match (walk, &job.only_fields) {
                (Walk::Changes { .. }, _) => Some(Known::VersionsAndValues),
                (Walk::Everything { .. }, Some(_)) => Some(Known::Values),
                (Walk::Everything { .. }, None) => None,
            };
            if let Some(known) = known {
                self.inbound.skip_known(&job.connection_id, job.object, object_config, &mut records, known).await;
            }
            self.inbound.deliver(&target, target.connection.portal_id, &ingest_url, &mut records).await;

            let unfinished = records.iter().find_map(|r| match &r.verdict {
                Some((Verdict::Retry(reason), _)) => Some(Verdict::Retry(reason.clone())),
                Some((Verdict::Park(reason), _)) => Some(Verdict::Park(reason.clone())),
                _ => None,
            });
            if let Some(verdict) = unfinished {
                // The page is walked again on the retry; what was applied is skipped then.
                return verdict;
            }
            if let Some(position) = page.cursor {
                let cursor = SyncCursor {
                    connection_id: job.connection_id.clone(),
                    object_type: job.object,
                    flow: job.flow,
                    position,
                };
                match deps.store.advance_cursor(&cursor).await {
                    Ok(()) | Err(StoreError::CursorBehind) => {}
                    Err(err) => return Verdict::Retry(err.to_string()),
                }
            }
            self.record(&job, |run| {
                for record in &records {
                    if let Some((_, counted)) = &record.verdict {
                        count(&mut run.counts, counted, 1);
                    }
                }
                run.counts.received += records.len() as u64;
                let progress = run.progress.get_or_insert_with(PullProgress::default);
                progress.pages += 1;
                progress.cursor = page.cursor.or(progress.cursor);
            })
            .await;
            match page.next {
                Some(next) => walk = next,
                None => {
                    self.finish(&job, RunStatus::Succeeded).await;
                    return Verdict::Done;
                }
            }
        }
        let continuation = PullJob { walk, ..job };
        let body = serde_json::to_string(&continuation).expect("a job serialises");
        match deps.bulk.work.send(vec![OutgoingMessage::new(body)]).await {
            Ok(()) => Verdict::Done,
            Err(err) => Verdict::Retry(format!("could not queue the pull's next pages: {err}")),
        }
    }

    /// One page of the walk: the records to deliver, the cursor once they are, and what next.
    async fn fetch(&self, target: &Target, job: &PullJob, walk: &Walk, properties: &[String]) -> Result<Page, Failure> {
        let deps = self.deps();
        let names: Vec<&str> = properties.iter().map(String::as_str).collect();
        let names = &names;
        match walk {
            Walk::Changes { query } => {
                let found = self
                    .inbound
                    .calls
                    .search(target, |token| async move {
                        deps.hubspot.objects(&token, job.object).search_pull(query, names).await
                    })
                    .await
                    .map_err(|failed| failed.failure())?;
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
                    .inbound
                    .calls
                    .call(target, |token| async move {
                        let mut wanted = names.to_vec();
                        wanted.push(job.object.last_modified_property());
                        deps.hubspot.objects(&token, job.object).list_page(after.as_deref(), LIST_PAGE, &wanted).await
                    })
                    .await
                    .map_err(|failed| failed.failure())?;
                let next = page.next_after.map(|after| Walk::Everything { after: Some(after) });
                Ok(Page { deliver: page.results, cursor: None, next })
            }
        }
    }

    async fn finish(&self, job: &PullJob, status: RunStatus) {
        let now = self.deps().clock.now();
        self.record(job, |run| {
            run.status = status;
            run.finished_at = Some(now);
        })
        .await;
    }

    /// Updates the job's run record; a lost update only loses counts, never data.
    async fn record(&self, job: &PullJob, update: impl FnOnce(&mut SyncRun)) {
        let store = &self.deps().store;
        match store.get_run(&job.connection_id, &job.run_id).await {
            Ok(Some(mut run)) => {
                update(&mut run);
                if let Err(err) = store.put_run(&run).await {
                    tracing::warn!(run = %job.run_id, error = %err, "could not record a pull's progress");
                }
            }
            Ok(None) => tracing::warn!(run = %job.run_id, "a pull job's run is missing"),
            Err(err) => tracing::warn!(run = %job.run_id, error = %err, "could not read a pull's run"),
        }
    }
}

/// A run older than this that still says "running" is taken as abandoned, so it does not
/// block its connection's pulls for ever.
const STALE_RUN: time::Duration = time::Duration::hours(24);
/// How far back a catch-up looks: a day of webhooks, and an hour's margin.
pub const CATCH_UP_SPAN: time::Duration = time::Duration::hours(25);

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct PlanReport {
    pub started: usize,
    /// A run of the same kind was still going.
    pub still_running: usize,
}

/// Starts a pull of `flow` for every active connection with data-in enabled, per object it
/// takes fields in for, unless that connection's previous run of the same kind still runs.
pub async fn plan_pulls(deps: &Deps, flow: SyncFlow) -> Result<PlanReport, StoreError> {
    let mut report = PlanReport::default();
    let now = deps.clock.now();
    for connection in deps.store.active_connections().await? {
        let Some(config) = deps.store.get_config(&connection.id).await?.map(|c| c.config) else { continue };
        if !config.options.data_in_enabled || config.options.ingest_url.is_none() {
            continue;
        }
        let runs = deps.store.list_runs(&connection.id, 50).await?;
        let running = runs
            .iter()
            .any(|r| r.kind == run_kind(flow) && r.status == RunStatus::Running && now - r.started_at < STALE_RUN);
        if running {
            report.still_running += 1;
            continue;
        }
        for (object, object_config) in &config.objects {
            if !object_config.fields.iter().any(|f| f.direction.comes_in()) {
                continue;
            }
            let since = (flow == SyncFlow::CatchUp).then(|| now - CATCH_UP_SPAN);
            start_pull(deps, &connection, *object, flow, since).await?;
            report.started += 1;
        }
    }
    tracing::info!(?flow, started = report.started, still_running = report.still_running, "pulls planned");
    Ok(report)
}
