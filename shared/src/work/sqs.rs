//! Running a queue worker the way Lambda's SQS trigger does (ReportBatchItemFailures), and the
//! same loop in-process for the local runner: finished messages are acknowledged, unfinished
//! ones are hidden for their backoff and reported, deferred ones are sent again as new
//! messages, so one bad message never fails a batch.

use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};

use crate::ports::queue::MAX_BATCH_MESSAGES;
use crate::ports::{Clock, OutgoingMessage, Queue, QueueError, ReceivedMessage};
use crate::work::Disposition;
use crate::work::deadline::Deadline;

/// SQS delays a message by at most 15 minutes.
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// What Lambda gives the queue workers per batch (template.yaml's `Timeout`): the push and
/// inbound workers a minute, the bulk worker (pulls) 15.
pub const WORKER_TIMEOUT: Duration = Duration::from_secs(60);
pub const BULK_WORKER_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// A worker that processes a queue batch before `deadline` and says what becomes of each
/// message, in order.
#[async_trait]
pub trait QueueWorker: Send + Sync {
    async fn process(&self, batch: &[ReceivedMessage], deadline: Deadline) -> Vec<Disposition>;
}

/// The Lambda handler's body for an SQS-triggered worker.
pub async fn handle_sqs_event(
    worker: &dyn QueueWorker,
    queue: &dyn Queue,
    event: SqsEvent,
    deadline: Deadline,
) -> SqsBatchResponse {
    let messages: Vec<ReceivedMessage> = event.records.into_iter().map(received).collect();
    let dispositions = worker.process(&messages, deadline).await;
    let mut response = SqsBatchResponse::default();
    for (message, disposition) in messages.iter().zip(dispositions) {
        let retry_after = match disposition {
            Disposition::Done => continue,
            // Sent again as a new message, this one is done; if the send fails, it is retried
            // instead (an attempt counted, nothing lost).
            Disposition::Requeue(after) => match requeue(queue, message, after).await {
                Ok(()) => continue,
                Err(err) => {
                    tracing::warn!(message = %message.message_id, error = %err, "could not requeue; retried instead");
                    after
                }
            },
            Disposition::RetryAfter(delay) => delay,
        };
        // Without the backoff the message comes back after the queue's visibility timeout:
        // sooner than wanted, but still retried, so a failure here is only logged.
        if let Err(err) = queue.change_visibility(&message.receipt_handle, retry_after).await {
            tracing::warn!(message = %message.message_id, error = %err, "could not set the retry backoff");
        }
        response.add_failure(message.message_id.clone());
    }
    response
}

/// Receives one batch from `queue`, processes it within `budget`, and deletes, backs off or
/// requeues each message. Returns how many messages were received.
pub async fn poll(
    worker: &dyn QueueWorker,
    queue: &dyn Queue,
    clock: &dyn Clock,
    wait: Duration,
    budget: Duration,
) -> Result<usize, QueueError> {
    let batch = queue.receive(MAX_BATCH_MESSAGES, wait).await?;
    if batch.is_empty() {
        return Ok(0);
    }
    let deadline = Deadline::after(clock.now(), budget);
    for (message, disposition) in batch.iter().zip(worker.process(&batch, deadline).await) {
        match disposition {
            Disposition::Done => queue.delete(&message.receipt_handle).await?,
            Disposition::RetryAfter(delay) => queue.change_visibility(&message.receipt_handle, delay).await?,
            Disposition::Requeue(after) => {
                requeue(queue, message, after).await?;
                queue.delete(&message.receipt_handle).await?;
            }
        }
    }
    Ok(batch.len())
}

/// Sends a message's body again, due after `after`.
async fn requeue(queue: &dyn Queue, message: &ReceivedMessage, after: Duration) -> Result<(), QueueError> {
    let delay = (!after.is_zero()).then(|| after.min(MAX_DELAY));
    queue.send(vec![OutgoingMessage { body: message.body.clone(), delay }]).await
}

/// Lambda's view of an SQS message, as workers read it. A missing body is an empty one, which
/// workers park as unreadable.
fn received(message: SqsMessage) -> ReceivedMessage {
    let receive_count =
        message.attributes.get("ApproximateReceiveCount").and_then(|count| count.parse().ok()).unwrap_or(1);
    ReceivedMessage {
        message_id: message.message_id.unwrap_or_default(),
        receipt_handle: message.receipt_handle.unwrap_or_default(),
        body: message.body.unwrap_or_default(),
        receive_count,
    }
}
