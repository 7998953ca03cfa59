//! Running a queue worker the way Lambda's SQS trigger does (ReportBatchItemFailures), and the
//! same loop in-process for the local runner: finished messages are acknowledged, unfinished
//! ones are hidden for their backoff and reported, so one bad message never fails a batch.

use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};

use crate::ports::queue::MAX_BATCH_MESSAGES;
use crate::ports::{Queue, QueueError, ReceivedMessage};
use crate::work::Disposition;

/// A worker that processes a queue batch and says what becomes of each message, in order.
#[async_trait]
pub trait QueueWorker: Send + Sync {
    async fn process(&self, batch: &[ReceivedMessage]) -> Vec<Disposition>;
}

/// The Lambda handler's body for an SQS-triggered worker.
pub async fn handle_sqs_event(worker: &dyn QueueWorker, queue: &dyn Queue, event: SqsEvent) -> SqsBatchResponse {
    let messages: Vec<ReceivedMessage> = event.records.into_iter().map(received).collect();
    let dispositions = worker.process(&messages).await;
    let mut response = SqsBatchResponse::default();
    for (message, disposition) in messages.iter().zip(dispositions) {
        let Disposition::RetryAfter(delay) = disposition else { continue };
        // Without the backoff the message comes back after the queue's visibility timeout:
        // sooner than wanted, but still retried, so a failure here is only logged.
        if let Err(err) = queue.change_visibility(&message.receipt_handle, delay).await {
            tracing::warn!(message = %message.message_id, error = %err, "could not set the retry backoff");
        }
        response.add_failure(message.message_id.clone());
    }
    response
}

/// Receives one batch from `queue`, processes it, and deletes or backs off each message.
/// Returns how many messages were received.
pub async fn poll(worker: &dyn QueueWorker, queue: &dyn Queue, wait: Duration) -> Result<usize, QueueError> {
    let batch = queue.receive(MAX_BATCH_MESSAGES, wait).await?;
    for (message, disposition) in batch.iter().zip(worker.process(&batch).await) {
        match disposition {
            Disposition::Done => queue.delete(&message.receipt_handle).await?,
            Disposition::RetryAfter(delay) => queue.change_visibility(&message.receipt_handle, delay).await?,
        }
    }
    Ok(batch.len())
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
