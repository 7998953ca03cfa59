//! Lambda entry point: builds the dependencies once per cold start, then handles every batch.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use hubsync::deps::Deps;
use hubsync::work::Deadline;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    hubsync::telemetry::init_lambda();
    let deps = Deps::from_env().await?;
    let worker = hubsync::inbound::bulk_worker(deps.clone());
    let queue = deps.bulk.work.clone();
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let (worker, queue) = (&worker, queue.clone());
        let deadline = Deadline::from_epoch_ms(event.context.deadline);
        async move {
            Ok::<SqsBatchResponse, Error>(bulk_worker::handle(worker, queue.as_ref(), event.payload, deadline).await)
        }
    }))
    .await
}
