//! A redrive asked for, run as a job on the bulk queue.
//!
//! After a reinstall, the work parked while the connection could not reach HubSpot goes out again.
//! The install callback only asks for it (a message on the bulk queue): the bulk worker, whose role
//! may read the dead-letter queues, runs it, with its 15 minutes and its retries, instead of the
//! browser's callback (29 seconds, and a dead-letter queue shared by every tenant to scan).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::deps::Deps;
use crate::domain::ConnectionId;
use crate::ports::{OutgoingMessage, QueueError, ReceivedMessage};
use crate::work::deadline::Deadline;
use crate::work::outcome::Verdict;
use crate::work::parking::{Disposition, redrive, settle};
use crate::work::sqs::QueueWorker;

pub const REDRIVE_JOB_VERSION: u32 = 1;

/// The bulk queue's message asking for one connection's parked work to be sent back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedriveJob {
    pub version: u32,
    /// The connection whose parked work (push, inbound and bulk) goes back to its queues.
    pub redrive: ConnectionId,
}

impl RedriveJob {
    /// Reads a bulk-queue message as a redrive job; `None` when it is another kind of job.
    pub fn read(body: &str) -> Option<RedriveJob> {
        serde_json::from_str(body).ok()
    }
}

/// Asks the bulk worker to send `connection`'s parked work back to its queues.
pub async fn queue_redrive(deps: &Deps, connection: &ConnectionId) -> Result<(), QueueError> {
    let job = RedriveJob { version: REDRIVE_JOB_VERSION, redrive: connection.clone() };
    let body = serde_json::to_string(&job).expect("a redrive job serialises");
    deps.bulk.work.send(vec![OutgoingMessage::new(body)]).await
}

/// A queue worker that runs the redrive jobs of a batch itself and hands the rest to `inner`.
pub struct WithRedrive<W> {
    deps: Deps,
    inner: W,
}

impl<W: QueueWorker> WithRedrive<W> {
    pub fn new(deps: Deps, inner: W) -> Self {
        WithRedrive { deps, inner }
    }

    /// Sends the connection's parked work back; a queue failure is retried with backoff, then
    /// parked with its reason like any other job.
    async fn run(&self, message: &ReceivedMessage, job: &RedriveJob) -> Disposition {
        let connection = &job.redrive;
        let mut verdict = Verdict::Done;
        for (work, pair) in [("push", &self.deps.push), ("inbound", &self.deps.inbound), ("bulk", &self.deps.bulk)] {
            match redrive(&*pair.parked, &*pair.work, Some(connection)).await {
                Ok(report) => {
                    tracing::info!(%connection, queue = work, replayed = report.replayed, "parked work redriven")
                }
                Err(err) => verdict = Verdict::Retry(format!("could not redrive the parked {work} work: {err}")),
            }
        }
        settle(&*self.deps.bulk.parked, message, verdict, self.deps.clock.now()).await
    }
}

#[async_trait]
impl<W: QueueWorker> QueueWorker for WithRedrive<W> {
    async fn process(&self, batch: &[ReceivedMessage], deadline: Deadline) -> Vec<Disposition> {
        let mut dispositions: Vec<Option<Disposition>> = vec![None; batch.len()];
        let mut others = Vec::new();
        let mut other_indexes = Vec::new();
        for (index, message) in batch.iter().enumerate() {
            match RedriveJob::read(&message.body) {
                Some(job) => dispositions[index] = Some(self.run(message, &job).await),
                None => {
                    others.push(message.clone());
                    other_indexes.push(index);
                }
            }
        }
        if !others.is_empty() {
            for (index, disposition) in other_indexes.into_iter().zip(self.inner.process(&others, deadline).await) {
                dispositions[index] = Some(disposition);
            }
        }
        dispositions.into_iter().map(|d| d.expect("every message has a disposition")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redrive_job_is_told_apart_from_a_pull_job() {
        let job = RedriveJob::read(r#"{"version":1,"redrive":"conn_1"}"#).expect("a redrive job");
        assert_eq!(job.redrive, ConnectionId::new("conn_1"));
        let pull = r#"{"version":1,"connection_id":"conn_1","object":"contacts","flow":"enrichment"}"#;
        assert_eq!(RedriveJob::read(pull), None);
    }
}
