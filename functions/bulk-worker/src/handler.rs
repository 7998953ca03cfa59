//! The bulk queue's Lambda handler: pull jobs in, the jobs to redeliver out.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use hubsync::inbound::PullWorker;
use hubsync::ports::Queue;
use hubsync::work::handle_sqs_event;

pub async fn handle(worker: &PullWorker, queue: &dyn Queue, event: SqsEvent) -> SqsBatchResponse {
    handle_sqs_event(worker, queue, event).await
}
