//! No secret in any log. Every test process captures its log lines in memory (one global
//! subscriber, installed by the first `World` or local runner), and each `World` or local runner
//! checks, when the test is done with it, that none of the secrets it created appears in the
//! lines logged while it was alive.
//!
//! Captured: hubsync's own crates at TRACE, dependencies at DEBUG, each event with all its
//! fields and those of its spans. The simulator's own lines are left out: it plays HubSpot, which
//! knows the tokens it issues. With `RUST_LOG` set, the lines it selects are printed as well.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io;
use std::sync::{Mutex, MutexGuard, Once, PoisonError};

use hubspot_sim::Simulator;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// hubsync's crates (library, Lambda functions, local runner) at every level; the rest from DEBUG.
const CAPTURED_LEVELS: &str = "debug,hubsync=trace,console_api=trace,oauth_callback=trace,push_worker=trace,\
    webhook_receiver=trace,inbound_worker=trace,bulk_worker=trace,enrichment=trace,catch_up=trace,\
    hubsync_local=trace,hubspot_sim=off";

/// Beyond this, the oldest lines are dropped unchecked (and the check says so): a bound for
/// long runs such as the benchmarks. Tests stay far below it.
const MAX_CAPTURED_BYTES: usize = 64 * 1024 * 1024;

/// The kinds of secret a test deployment creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretKind {
    ClientSecret,
    TokenEncryptionKey,
    DeliverySigningSecret,
    ConsoleApiKey,
    AdminApiKey,
    DeveloperApiKey,
    AccessToken,
    RefreshToken,
}

impl fmt::Display for SecretKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SecretKind::ClientSecret => "the app's client secret",
            SecretKind::TokenEncryptionKey => "the token encryption key",
            SecretKind::DeliverySigningSecret => "the delivery signing secret",
            SecretKind::ConsoleApiKey => "a console API key",
            SecretKind::AdminApiKey => "the admin API key",
            SecretKind::DeveloperApiKey => "the HubSpot developer API key",
            SecretKind::AccessToken => "a HubSpot access token",
            SecretKind::RefreshToken => "a HubSpot refresh token",
        })
    }
}

/// A captured line that holds a secret; `line` shows every watched secret as `[<kind>]`.
#[derive(Debug)]
pub struct Leak {
    pub kind: SecretKind,
    pub line: String,
}

/// The secrets of one deployment, looked for in the lines logged since it started.
pub struct SecretWatch {
    first_line: u64,
    secrets: Mutex<Vec<(SecretKind, String)>>,
}

impl SecretWatch {
    /// Captures logs (from the first call in the process on) and watches the lines from now.
    pub fn start() -> SecretWatch {
        install_subscriber();
        let mut captured = captured();
        let first_line = captured.next_line;
        *captured.watched_from.entry(first_line).or_default() += 1;
        SecretWatch { first_line, secrets: Mutex::new(Vec::new()) }
    }

    pub fn register(&self, kind: SecretKind, secret: &str) {
        let mut secrets = self.secrets.lock().unwrap_or_else(PoisonError::into_inner);
        if !secret.is_empty() && !secrets.iter().any(|(_, known)| known == secret) {
            secrets.push((kind, secret.to_string()));
        }
    }

    /// Every token the simulator handed out, revoked ones too.
    pub fn register_issued_tokens(&self, simulator: &Simulator) {
        let issued = simulator.issued_tokens();
        issued.access.iter().for_each(|token| self.register(SecretKind::AccessToken, token));
        issued.refresh.iter().for_each(|token| self.register(SecretKind::RefreshToken, token));
    }

    /// The lines logged since this watch started that hold one of its secrets.
    pub fn leaks(&self) -> Vec<Leak> {
        let secrets = self.secrets.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let captured = captured();
        let first = captured.lines.partition_point(|(number, _)| *number < self.first_line);
        captured
            .lines
            .range(first..)
            .filter_map(|(_, line)| {
                let (kind, _) = secrets.iter().find(|(_, secret)| line.contains(secret.as_str()))?;
                Some(Leak { kind: *kind, line: redact(line, &secrets) })
            })
            .collect()
    }

    /// Panics with the leaking lines (secrets redacted), unless the test is failing already.
    pub fn assert_no_leaks(&self) {
        if std::thread::panicking() {
            return;
        }
        if captured().dropped_through.is_some_and(|last| last >= self.first_line) {
            eprintln!("the log capture was full: some lines were dropped before they could be checked for secrets");
        }
        let leaks = self.leaks();
        if leaks.is_empty() {
            return;
        }
        let shown: Vec<String> = leaks.iter().take(10).map(|leak| format!("- {}: {}", leak.kind, leak.line)).collect();
        panic!("{} log line(s) hold a secret (shown redacted):\n{}", leaks.len(), shown.join("\n"));
    }
}

impl Drop for SecretWatch {
    fn drop(&mut self) {
        let mut captured = captured();
        if let Some(watches) = captured.watched_from.get_mut(&self.first_line) {
            *watches -= 1;
            if *watches == 0 {
                captured.watched_from.remove(&self.first_line);
            }
        }
        captured.forget_unwatched_lines();
    }
}

/// The line with every secret replaced by its kind, and cut to a readable length.
fn redact(line: &str, secrets: &[(SecretKind, String)]) -> String {
    let mut redacted = line.trim_end().to_string();
    for (kind, secret) in secrets {
        redacted = redacted.replace(secret.as_str(), &format!("[{kind}]"));
    }
    match redacted.char_indices().nth(600) {
        Some((cut, _)) => format!("{}…", &redacted[..cut]),
        None => redacted,
    }
}

/// The lines some live watch may still need, numbered in the order they were logged.
struct Captured {
    lines: VecDeque<(u64, String)>,
    bytes: usize,
    next_line: u64,
    /// The first line of each live watch, with how many watches start there.
    watched_from: BTreeMap<u64, usize>,
    /// The last line dropped because the capture was full.
    dropped_through: Option<u64>,
}

impl Captured {
    fn push(&mut self, line: String) {
        let number = self.next_line;
        self.next_line += 1;
        if self.watched_from.is_empty() {
            return;
        }
        self.bytes += line.len();
        self.lines.push_back((number, line));
        while self.bytes > MAX_CAPTURED_BYTES {
            let Some((dropped, line)) = self.lines.pop_front() else { break };
            self.bytes -= line.len();
            self.dropped_through = Some(dropped);
        }
    }

    /// Lines older than every live watch are nobody's concern any more.
    fn forget_unwatched_lines(&mut self) {
        let oldest_watched = self.watched_from.keys().next().copied().unwrap_or(self.next_line);
        while self.lines.front().is_some_and(|(number, _)| *number < oldest_watched) {
            let (_, line) = self.lines.pop_front().expect("a front line");
            self.bytes -= line.len();
        }
    }
}

static CAPTURED: Mutex<Captured> = Mutex::new(Captured {
    lines: VecDeque::new(),
    bytes: 0,
    next_line: 0,
    watched_from: BTreeMap::new(),
    dropped_through: None,
});

fn captured() -> MutexGuard<'static, Captured> {
    CAPTURED.lock().unwrap_or_else(PoisonError::into_inner)
}

fn install_subscriber() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let capture = tracing_subscriber::fmt::layer()
            .with_writer(CaptureWriter)
            .with_ansi(false)
            .without_time()
            .with_filter(EnvFilter::new(CAPTURED_LEVELS));
        let printed = std::env::var_os("RUST_LOG")
            .map(|_| tracing_subscriber::fmt::layer().with_test_writer().with_filter(EnvFilter::from_default_env()));
        tracing_subscriber::registry()
            .with(capture)
            .with(printed)
            .try_init()
            .expect("no other global tracing subscriber: the log check needs to see every line");
    });
}

/// Gives the formatter one buffer per event; the buffer becomes a captured line when dropped.
struct CaptureWriter;

impl<'a> MakeWriter<'a> for CaptureWriter {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter(Vec::new())
    }
}

struct LineWriter(Vec<u8>);

impl io::Write for LineWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            captured().push(String::from_utf8_lossy(&self.0).into_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn made_up(prefix: &str) -> String {
        format!("{prefix}{}", uuid::Uuid::new_v4().simple())
    }

    #[test]
    fn a_secret_in_an_event_or_a_span_field_is_reported_redacted() {
        let watch = SecretWatch::start();
        let key = made_up("hsk_");
        watch.register(SecretKind::ConsoleApiKey, &key);
        tracing::warn!(target: "hubsync", api_key = %key, "a careless line");
        let token = made_up("CKsim");
        let span = tracing::info_span!(target: "hubsync", "HubSpot call", token = %token);
        span.in_scope(|| tracing::debug!(target: "hyper", "inside the span"));
        // Tokens are learnt from the simulator at the end, after they were logged.
        watch.register(SecretKind::AccessToken, &token);

        let leaks = watch.leaks();
        assert_eq!(leaks.len(), 2, "{leaks:?}");
        assert_eq!(leaks[0].kind, SecretKind::ConsoleApiKey);
        assert!(leaks[0].line.contains("a careless line api_key=[a console API key]"), "{}", leaks[0].line);
        assert_eq!(leaks[1].kind, SecretKind::AccessToken);
        assert!(leaks[1].line.contains("token=[a HubSpot access token]"), "{}", leaks[1].line);
        assert!(leaks.iter().all(|leak| !leak.line.contains(&key) && !leak.line.contains(&token)));

        let failure = std::panic::catch_unwind(|| watch.assert_no_leaks()).expect_err("the check fails");
        let message = failure.downcast_ref::<String>().expect("a message");
        assert!(message.contains("a console API key: ") && message.contains("a HubSpot access token: "), "{message}");
        assert!(!message.contains(&key) && !message.contains(&token), "{message}");
    }

    #[test]
    fn lines_before_the_watch_and_the_simulators_lines_are_not_its_concern() {
        let secret = made_up("sim-client-secret-");
        tracing::info!(target: "hubsync", %secret, "before the watch");
        let watch = SecretWatch::start();
        watch.register(SecretKind::ClientSecret, &secret);
        tracing::info!(target: "hubspot_sim", %secret, "HubSpot knows its apps' secrets");
        tracing::info!(target: "hubsync", "nothing secret");
        assert!(watch.leaks().is_empty());
        watch.assert_no_leaks();
    }
}
