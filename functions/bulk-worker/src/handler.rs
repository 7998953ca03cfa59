//! The bulk queue's Lambda handler: an SQS batch in, the messages to redeliver out.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use hubsync::ports::Queue;
use hubsync::work::{Deadline, QueueWorker, handle_sqs_event};

/// Handles one batch before `deadline` (the invocation's, from Lambda's context).
/// `worker` is the bulk worker (pull jobs and redrives), or only its pull jobs in a test.
pub async fn handle(
    worker: &dyn QueueWorker,
    queue: &dyn Queue,
    event: SqsEvent,
    deadline: Deadline,
) -> SqsBatchResponse {
    handle_sqs_event(worker, queue, event, deadline).await
}
