//! Lambda entry point: builds the dependencies once per cold start, then serves every request.

use hubsync::deps::Deps;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    hubsync::telemetry::init_lambda();
    let deps = Deps::from_env().await?;
    lambda_http::run(webhook_receiver::router(deps)).await
}
