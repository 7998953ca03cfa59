//! Logging setup. Lambda gets one JSON object per line (template.yaml sets LogFormat JSON); the
//! local runner gets readable lines. The level is template.yaml's `LogLevel`, which Lambda passes
//! on as `AWS_LAMBDA_LOG_LEVEL`; `RUST_LOG` overrides it.

use tracing_subscriber::EnvFilter;

fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(lambda_level(std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref())))
}

/// Lambda's application log level (TRACE, DEBUG, INFO, WARN, ERROR, FATAL) as a filter directive.
fn lambda_level(level: Option<&str>) -> &'static str {
    match level.map(str::to_ascii_uppercase).as_deref() {
        Some("TRACE") => "trace",
        Some("DEBUG") => "debug",
        Some("WARN") => "warn",
        Some("ERROR" | "FATAL") => "error",
        _ => "info",
    }
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

#[cfg(test)]
mod tests {
    #[test]
    fn lambdas_log_level_sets_the_filter() {
        assert_eq!(super::lambda_level(Some("DEBUG")), "debug");
        assert_eq!(super::lambda_level(Some("FATAL")), "error");
        assert_eq!(super::lambda_level(Some("warn")), "warn");
        assert_eq!(super::lambda_level(None), "info");
    }
}
