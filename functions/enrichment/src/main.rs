//! Lambda entry point for the 8-hour schedule: plans an enrichment pull for every connection.

use hubsync::deps::Deps;
use hubsync::domain::SyncFlow;
use hubsync::inbound::{PlanReport, plan_pulls};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    hubsync::telemetry::init_lambda();
    let deps = Deps::from_env().await?;
    lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| {
        let deps = &deps;
        async move { Ok::<PlanReport, Error>(plan_pulls(deps, SyncFlow::Enrichment).await?) }
    }))
    .await
}
