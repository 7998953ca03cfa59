//! Logging setup. Lambda gets one JSON object per line (template.yaml sets LogFormat JSON); the
//! local runner gets readable lines. The level is template.yaml's `LogLevel`, which Lambda passes
//! on as `AWS_LAMBDA_LOG_LEVEL`; `RUST_LOG` overrides it.

use tracing_subscriber::EnvFilter;

use crate::domain::{RunCounts, RunKind};

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

/// Metrics as CloudWatch's embedded metric format: one JSON line on stdout per data point set,
/// which CloudWatch Logs turns into metrics under the `hubsync` namespace, dimensioned by the
/// function and the given dimensions (format: docs.aws.amazon.com/AmazonCloudWatch/latest/
/// monitoring/CloudWatch_Embedded_Metric_Format_Specification.html). Written only inside Lambda.
pub fn emit_metrics(dimensions: &[(&str, &str)], metrics: &[(&str, u64)]) {
    let Ok(function) = std::env::var("AWS_LAMBDA_FUNCTION_NAME") else { return };
    let now_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let mut all = vec![("Function", function.as_str())];
    all.extend_from_slice(dimensions);
    println!("{}", metric_line(now_ms, &all, metrics));
}

/// A run's counts as metrics, by kind of run: totals, then skipped and parked records by reason.
pub fn emit_run_metrics(kind: RunKind, counts: &RunCounts) {
    let kind = serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let sum = |by_reason: &std::collections::BTreeMap<String, u64>| by_reason.values().sum::<u64>();
    emit_metrics(
        &[("Run", &kind)],
        &[
            ("Received", counts.received),
            ("Applied", counts.created + counts.updated),
            ("Unchanged", counts.unchanged),
            ("Skipped", sum(&counts.skipped)),
            ("Parked", sum(&counts.failed)),
            ("Retried", sum(&counts.retried)),
            ("Deferred", sum(&counts.deferred)),
        ],
    );
    for (outcome, by_reason) in [("skipped", &counts.skipped), ("parked", &counts.failed)] {
        for (reason, records) in by_reason {
            let dimensions = [("Run", kind.as_str()), ("Outcome", outcome), ("Reason", reason_class(reason))];
            emit_metrics(&dimensions, &[("Records", *records)]);
        }
    }
}

/// A reason without its particulars (what follows a colon: a record's id, HubSpot's message),
/// so the reasons stay few enough to be metric dimensions.
fn reason_class(reason: &str) -> &str {
    reason.split(':').next().unwrap_or(reason).trim()
}

/// Metric names and dimension values stay short: a dimension value is at most this long.
const MAX_DIMENSION_CHARS: usize = 80;

/// One embedded-metric-format line.
pub fn metric_line(timestamp_ms: i64, dimensions: &[(&str, &str)], metrics: &[(&str, u64)]) -> String {
    let names: Vec<&str> = dimensions.iter().map(|(name, _)| *name).collect();
    let definitions: Vec<serde_json::Value> =
        metrics.iter().map(|(name, _)| serde_json::json!({ "Name": name, "Unit": "Count" })).collect();
    let mut line = serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{ "Namespace": "hubsync", "Dimensions": [names], "Metrics": definitions }],
        }
    });
    for (name, value) in dimensions {
        line[*name] = serde_json::json!(value.chars().take(MAX_DIMENSION_CHARS).collect::<String>());
    }
    for (name, value) in metrics {
        line[*name] = serde_json::json!(value);
    }
    line.to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_metric_line_is_embedded_metric_format() {
        let line =
            super::metric_line(1_700_000_000_000, &[("Function", "push-worker"), ("Run", "push")], &[("Applied", 3)]);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["_aws"]["CloudWatchMetrics"][0]["Namespace"], "hubsync");
        assert_eq!(value["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0], serde_json::json!(["Function", "Run"]));
        assert_eq!(value["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"], "Applied");
        assert_eq!((value["Function"].as_str(), value["Applied"].as_u64()), (Some("push-worker"), Some(3)));
    }

    #[test]
    fn lambdas_log_level_sets_the_filter() {
        assert_eq!(super::lambda_level(Some("DEBUG")), "debug");
        assert_eq!(super::lambda_level(Some("FATAL")), "error");
        assert_eq!(super::lambda_level(Some("warn")), "warn");
        assert_eq!(super::lambda_level(None), "info");
    }
}
