//! The push queue's Lambda handler: an SQS batch in, the messages to redeliver out.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use hubsync::outbound::PushWorker;
use hubsync::ports::Queue;
use hubsync::work::{Deadline, handle_sqs_event};

/// Handles one batch before `deadline` (the invocation's, from Lambda's context).
pub async fn handle(worker: &PushWorker, queue: &dyn Queue, event: SqsEvent, deadline: Deadline) -> SqsBatchResponse {
    handle_sqs_event(worker, queue, event, deadline).await
}
