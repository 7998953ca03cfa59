//! The push queue's Lambda handler: an SQS batch in, the messages to redeliver out
//! (ReportBatchItemFailures). Finished messages are acknowledged; unfinished ones are hidden
//! for their backoff and reported, so one bad message never fails the batch.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use hubsync::ports::{Queue, ReceivedMessage};
use hubsync::push::{Disposition, PushWorker};

pub async fn handle(worker: &PushWorker, queue: &dyn Queue, event: SqsEvent) -> SqsBatchResponse {
    let messages: Vec<ReceivedMessage> = event.records.into_iter().map(received).collect();
    let dispositions = worker.process(&messages).await;
    let mut response = SqsBatchResponse::default();
    for (message, disposition) in messages.iter().zip(dispositions) {
        let Disposition::RetryAfter(delay) = disposition else { continue };
        // Without the backoff the message would come back after the queue's visibility timeout:
        // sooner than wanted, but still retried, so a failure here is only logged.
        if let Err(err) = queue.change_visibility(&message.receipt_handle, delay).await {
            tracing::warn!(message = %message.message_id, error = %err, "could not set the retry backoff");
        }
        response.add_failure(message.message_id.clone());
    }
    response
}

/// Lambda's view of an SQS message, as the worker reads it. A missing body is an empty one,
/// which the worker parks as unreadable.
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
