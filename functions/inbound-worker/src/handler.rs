//! The inbound queue's Lambda handler: an SQS batch in, the messages to redeliver out.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use hubsync::inbound::InboundWorker;
use hubsync::ports::Queue;
use hubsync::work::handle_sqs_event;

pub async fn handle(worker: &InboundWorker, queue: &dyn Queue, event: SqsEvent) -> SqsBatchResponse {
    handle_sqs_event(worker, queue, event).await
}
