//! What happens to work that cannot finish now: retried with backoff through the queue's
//! visibility, or parked in the dead-letter queue with the reason, until a redrive replays it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::domain::ConnectionId;
use crate::ports::{MAX_MESSAGE_BYTES, OutgoingMessage, Queue, QueueError, ReceivedMessage};
use crate::work::outcome::Verdict;

/// Deliveries of a message before a retryable failure parks it. With [`backoff`], the attempts
/// spread over more than 15 minutes. The queue's own redrive (`maxReceiveCount`, above this)
/// only catches messages whose worker crashed.
pub const MAX_ATTEMPTS: u32 = 6;
const _: () = assert!(MAX_ATTEMPTS >= 5, "HubSpot failures get at least 5 attempts");
const FIRST_BACKOFF: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);

/// How long a message stays hidden after its `attempt`-th delivery failed: 30 s, 1, 2, 4, 8 min...
pub fn backoff(attempt: u32) -> Duration {
    let doubled = FIRST_BACKOFF.saturating_mul(1 << attempt.saturating_sub(1).min(10));
    doubled.min(MAX_BACKOFF)
}

/// What the queue should do with one received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Finished (applied, skipped with a reason, or parked): delete it.
    Done,
    /// Not finished: make it visible again after this long (an attempt is counted).
    RetryAfter(Duration),
    /// Not finished, and not a failure: send it again as a new message, due after this long,
    /// and delete this one, so no attempt is counted.
    Requeue(Duration),
}

/// Turns a verdict into what the queue does: a retry is backed off until its last attempt,
/// which parks it with the reason, as does a refusal; a deferral is requeued. A message that
/// cannot be parked stays queued, so nothing is lost.
pub async fn settle(
    parked: &dyn Queue,
    message: &ReceivedMessage,
    verdict: Verdict,
    now: OffsetDateTime,
) -> Disposition {
    let reason = match verdict {
        Verdict::Done => return Disposition::Done,
        Verdict::Defer { reason, after } => {
            tracing::info!(message = %message.message_id, %reason, "handed back for later");
            return Disposition::Requeue(after);
        }
        Verdict::Retry(reason) if message.receive_count < MAX_ATTEMPTS => {
            tracing::info!(message = %message.message_id, attempt = message.receive_count, %reason, "retried later");
            return Disposition::RetryAfter(backoff(message.receive_count));
        }
        Verdict::Retry(reason) => format!("gave up after {} attempts: {reason}", message.receive_count),
        Verdict::Park(reason) => reason,
    };
    let note = ParkNote {
        reason,
        connection_id: connection_of(&message.body),
        attempts: message.receive_count,
        parked_at: now,
    };
    match park(parked, &message.body, note).await {
        Ok(()) => Disposition::Done,
        Err(err) => {
            tracing::error!(message = %message.message_id, error = %err, "could not park a message; it stays queued");
            Disposition::RetryAfter(backoff(1))
        }
    }
}

/// The connection a raw message names, for the parking note, even when it is otherwise unreadable.
fn connection_of(body: &str) -> Option<ConnectionId> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    value.get("connection_id")?.as_str().map(ConnectionId::new)
}

/// A parked message: the original body, untouched, and why it was parked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedMessage {
    pub parked: ParkNote,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkNote {
    pub reason: String,
    /// Absent when the message was unreadable.
    pub connection_id: Option<ConnectionId>,
    pub attempts: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub parked_at: OffsetDateTime,
}

impl ParkedMessage {
    /// Reads a dead-letter message: one parked by hubsync, or one the queue moved there by
    /// itself (then only the body is known).
    pub fn read(body: &str) -> ParkedMessage {
        serde_json::from_str::<ParkedMessage>(body).unwrap_or_else(|_| ParkedMessage {
            parked: ParkNote {
                reason: "moved by the queue after too many deliveries (the worker stopped mid-way)".into(),
                connection_id: serde_json::from_str::<serde_json::Value>(body)
                    .ok()
                    .and_then(|v| v.get("connection_id")?.as_str().map(ConnectionId::new)),
                attempts: 0,
                parked_at: OffsetDateTime::UNIX_EPOCH,
            },
            body: body.to_string(),
        })
    }
}

/// Sends `body` to the dead-letter queue with its reason. When the note would push the message
/// past the queue's size limit, the body goes alone (the reason is then only in the log):
/// the message itself is never cut.
pub async fn park(parked: &dyn Queue, body: &str, note: ParkNote) -> Result<(), QueueError> {
    tracing::warn!(reason = %note.reason, connection = ?note.connection_id, attempts = note.attempts, "message parked");
    let envelope = serde_json::to_string(&ParkedMessage { parked: note, body: body.to_string() })
        .expect("a parked message serialises");
    let message = if envelope.len() <= MAX_MESSAGE_BYTES { envelope } else { body.to_string() };
    parked.send(vec![OutgoingMessage::new(message)]).await
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedriveReport {
    /// Messages sent back to the work queue.
    pub replayed: usize,
    /// Parked messages of other connections, left where they were.
    pub left: usize,
}

/// At most this many parked messages are looked at per redrive.
pub const MAX_REDRIVE_SCAN: usize = 10_000;

/// Replays parked messages onto the work queue: all of them, or only one connection's. Each is
/// enqueued before it is deleted from the dead-letter queue, so a failure half-way duplicates
/// at worst (the worker's unchanged-skip absorbs that) and never loses one.
pub async fn redrive(
    parked: &dyn Queue,
    work: &dyn Queue,
    only: Option<&ConnectionId>,
) -> Result<RedriveReport, QueueError> {
    let mut report = RedriveReport::default();
    let mut passed_over: Vec<ReceivedMessage> = Vec::new();
    let mut scanned = 0;
    while scanned < MAX_REDRIVE_SCAN {
        let batch = parked.receive(10, Duration::ZERO).await?;
        if batch.is_empty() {
            break;
        }
        scanned += batch.len();
        for message in batch {
            let entry = ParkedMessage::read(&message.body);
            let wanted = only.is_none_or(|id| entry.parked.connection_id.as_ref() == Some(id));
            if wanted {
                work.send(vec![OutgoingMessage::new(entry.body)]).await?;
                parked.delete(&message.receipt_handle).await?;
                report.replayed += 1;
            } else {
                // Kept hidden until the scan ends, so it is not received twice in this loop.
                passed_over.push(message);
            }
        }
    }
    for message in passed_over {
        parked.change_visibility(&message.receipt_handle, Duration::ZERO).await?;
        report.left += 1;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A number in a template.yaml line `<key>: <n>` within `block` (a parameter's or a
    /// resource's lines, up to the next blank line).
    fn template_number(template: &str, block: &str, key: &str) -> u32 {
        let start = template.find(&format!("\n  {block}:\n")).unwrap_or_else(|| panic!("no {block} in template.yaml"));
        let lines = template[start + 1..].lines().skip(1).take_while(|line| !line.trim().is_empty());
        let value = lines
            .filter_map(|line| line.trim().strip_prefix(&format!("{key}: ")))
            .next()
            .unwrap_or_else(|| panic!("{block} has no {key}"));
        value.parse().unwrap_or_else(|_| panic!("{block}.{key} is not a number: {value}"))
    }

    #[test]
    fn the_queues_own_redrive_never_parks_a_message_hubsync_would_still_retry() {
        let template = include_str!("../../../template.yaml");
        for (queue, limit) in
            [("PushQueue", "PushMaxReceives"), ("InboundQueue", "InboundMaxReceives"), ("BulkQueue", "BulkMaxReceives")]
        {
            assert!(
                template.contains(&format!("maxReceiveCount: !Ref {limit}")),
                "{queue}'s maxReceiveCount is the {limit} parameter"
            );
            // A message is parked by hubsync, with its reason, at its MAX_ATTEMPTS-th failed
            // delivery; SQS must not move it to the dead-letter queue, reasonless, before that.
            for key in ["Default", "MinValue"] {
                let receives = template_number(template, limit, key);
                assert!(receives > MAX_ATTEMPTS, "{limit}.{key} is {receives}: keep it above {MAX_ATTEMPTS}");
            }
            // The longest backoff hides a message for MAX_BACKOFF; retention must outlast them all.
            let retention = template_number(template, queue, "MessageRetentionPeriod");
            let backed_off: Duration = (1..=MAX_ATTEMPTS).map(backoff).sum();
            assert!(u64::from(retention) > backed_off.as_secs() * 2, "{queue} keeps messages {retention} s");
        }
    }

    #[test]
    fn retries_back_off_over_more_than_five_minutes_before_parking() {
        let waited: Duration = (1..MAX_ATTEMPTS).map(backoff).sum();
        assert!(waited >= Duration::from_secs(5 * 60), "{waited:?}");
        assert_eq!(backoff(1), Duration::from_secs(30));
        assert_eq!(backoff(40), MAX_BACKOFF);
    }

    #[test]
    fn a_message_the_queue_moved_itself_is_still_readable() {
        let entry = ParkedMessage::read(r#"{"version":1,"connection_id":"conn_1"}"#);
        assert_eq!(entry.parked.connection_id, Some(ConnectionId::new("conn_1")));
        assert_eq!(entry.body, r#"{"version":1,"connection_id":"conn_1"}"#);
    }
}
