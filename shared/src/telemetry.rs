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
    let Some((function, now_ms)) = lambda_function() else { return };
    let mut all = vec![("Function", function.as_str())];
    all.extend_from_slice(dimensions);
    println!("{}", metric_line(now_ms, &all, metrics));
}

/// A run's counts as metrics, by kind of run: totals, then skipped and parked records by reason.
pub fn emit_run_metrics(kind: RunKind, counts: &RunCounts) {
    let Some((function, now_ms)) = lambda_function() else { return };
    for line in run_metric_lines(&function, now_ms, kind, counts) {
        println!("{line}");
    }
}

/// The function's name and the time, when running inside Lambda (which sets the name).
fn lambda_function() -> Option<(String, i64)> {
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok()?;
    Some((function, (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64))
}

/// The lines [`emit_run_metrics`] writes for one run.
fn run_metric_lines(function: &str, now_ms: i64, kind: RunKind, counts: &RunCounts) -> Vec<String> {
    let kind = serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let sum = |by_reason: &std::collections::BTreeMap<String, u64>| by_reason.values().sum::<u64>();
    let totals = [
        ("Received", counts.received),
        ("Applied", counts.created + counts.updated),
        ("Unchanged", counts.unchanged),
        ("Skipped", sum(&counts.skipped)),
        ("Parked", sum(&counts.failed)),
        ("Retried", sum(&counts.retried)),
        ("Deferred", sum(&counts.deferred)),
    ];
    let mut lines = vec![metric_line(now_ms, &[("Function", function), ("Run", &kind)], &totals)];
    for (outcome, by_reason) in [("skipped", &counts.skipped), ("parked", &counts.failed)] {
        for (reason, records) in by_reason {
            let dimensions = [
                ("Function", function),
                ("Run", kind.as_str()),
                ("Outcome", outcome),
                ("Reason", reason_class(reason)),
            ];
            lines.push(metric_line(now_ms, &dimensions, &[("Records", *records)]));
        }
    }
    lines
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
    fn a_run_is_totals_then_records_by_outcome_and_reason_class() {
        let mut counts = crate::domain::RunCounts { received: 5, created: 1, updated: 1, ..Default::default() };
        counts.skipped.insert("unmapped: no field of rec_9 is mapped".into(), 2);
        counts.failed.insert("hubspot 400: Property \"x\" does not exist".into(), 1);
        let lines: Vec<serde_json::Value> =
            super::run_metric_lines("push-worker", 1, crate::domain::RunKind::Push, &counts)
                .iter()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect();

        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!((lines[0]["Run"].as_str(), lines[0]["Received"].as_u64()), (Some("push"), Some(5)));
        assert_eq!((lines[0]["Applied"].as_u64(), lines[0]["Skipped"].as_u64()), (Some(2), Some(2)));
        assert_eq!(lines[0]["Parked"].as_u64(), Some(1));
        let by_reason = |outcome: &str| lines.iter().find(|l| l["Outcome"] == outcome).unwrap().clone();
        // The particulars after the colon would make a dimension per record: only the class is kept.
        assert_eq!(by_reason("skipped")["Reason"], "unmapped");
        assert_eq!(by_reason("skipped")["Records"], 2);
        assert_eq!(by_reason("parked")["Reason"], "hubspot 400");
        assert_eq!(by_reason("parked")["Function"], "push-worker");
    }

    #[test]
    fn lambdas_log_level_sets_the_filter() {
        assert_eq!(super::lambda_level(Some("DEBUG")), "debug");
        assert_eq!(super::lambda_level(Some("FATAL")), "error");
        assert_eq!(super::lambda_level(Some("warn")), "warn");
        assert_eq!(super::lambda_level(None), "info");
    }
}
