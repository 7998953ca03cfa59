//! The push queue's Lambda handler: an SQS batch in, the messages to redeliver out.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use hubsync::ports::Queue;
use hubsync::push::PushWorker;
use hubsync::work::handle_sqs_event;

pub async fn handle(worker: &PushWorker, queue: &dyn Queue, event: SqsEvent) -> SqsBatchResponse {
    handle_sqs_event(worker, queue, event).await
}
