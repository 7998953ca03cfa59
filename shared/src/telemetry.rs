//! Logging setup. Lambda gets one JSON object per line (template.yaml sets LogFormat JSON); the
//! local runner gets readable lines. `RUST_LOG` overrides the level.

use tracing_subscriber::EnvFilter;

fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// For Lambda functions: JSON, no timestamps (CloudWatch adds them), no ANSI colours.
pub fn init_lambda() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter())
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .init();
}

/// For the local runner and the simulator binary.
pub fn init_local() {
    tracing_subscriber::fmt().with_env_filter(filter()).with_target(false).init();
}
