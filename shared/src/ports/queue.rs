use std::time::Duration;

use async_trait::async_trait;

/// SQS's limits, enforced by every queue so the local runner fails where AWS would.
pub const MAX_BATCH_MESSAGES: usize = 10;
pub const MAX_BATCH_BYTES: usize = 256 * 1024;
pub const MAX_MESSAGE_BYTES: usize = MAX_BATCH_BYTES;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub body: String,
    /// Held back this long before it can be received (at most 15 minutes on SQS).
    pub delay: Option<Duration>,
}

impl OutgoingMessage {
    pub fn new(body: impl Into<String>) -> Self {
        OutgoingMessage { body: body.into(), delay: None }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: String,
    /// Identifies this receipt: needed to delete the message or change its visibility.
    pub receipt_handle: String,
    pub body: String,
    /// 1 on first delivery; grows each time the message becomes visible again.
    pub receive_count: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(
        "message {index} is {size} bytes; a queue message may be at most {MAX_MESSAGE_BYTES} bytes: \
         split the change into smaller messages"
    )]
    MessageTooLarge { index: usize, size: usize },
    /// Some messages of a send were not stored; the caller must not acknowledge them.
    #[error("{} of the messages were not enqueued: {}", failed.len(), reasons(failed))]
    NotEnqueued { failed: Vec<(usize, String)> },
    #[error("unknown or expired receipt handle")]
    UnknownReceipt,
    #[error("the queue is unavailable: {0}")]
    Unavailable(String),
}

fn reasons(failed: &[(usize, String)]) -> String {
    failed.iter().map(|(i, reason)| format!("#{i}: {reason}")).collect::<Vec<_>>().join("; ")
}

/// One work queue (push, inbound or bulk). Production runs consume it through Lambda's SQS
/// trigger; `receive` serves the local runner and tests.
#[async_trait]
pub trait Queue: Send + Sync {
    /// Enqueues every message, in as few calls as the limits allow. Oversize messages are
    /// refused before anything is sent.
    async fn send(&self, messages: Vec<OutgoingMessage>) -> Result<(), QueueError>;
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<ReceivedMessage>, QueueError>;
    async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError>;
    /// Hides a received message for `timeout` from now: how a worker backs off before a retry.
    async fn change_visibility(&self, receipt_handle: &str, timeout: Duration) -> Result<(), QueueError>;
}

/// Splits messages into batches that fit SQS's limits, keeping their order and their indexes.
/// Refuses the whole send if any single message is too large: nothing is truncated.
pub fn plan_batches(messages: &[OutgoingMessage]) -> Result<Vec<Vec<usize>>, QueueError> {
    if let Some((index, m)) = messages.iter().enumerate().find(|(_, m)| m.body.len() > MAX_MESSAGE_BYTES) {
        return Err(QueueError::MessageTooLarge { index, size: m.body.len() });
    }
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut bytes = 0;
    for (index, m) in messages.iter().enumerate() {
        let fits = batches
            .last()
            .is_some_and(|batch| batch.len() < MAX_BATCH_MESSAGES && bytes + m.body.len() <= MAX_BATCH_BYTES);
        if fits {
            batches.last_mut().expect("checked above").push(index);
            bytes += m.body.len();
        } else {
            batches.push(vec![index]);
            bytes = m.body.len();
        }
    }
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sized(n: usize) -> OutgoingMessage {
        OutgoingMessage::new("x".repeat(n))
    }

    #[test]
    fn batches_hold_at_most_ten_messages() {
        let messages: Vec<_> = (0..25).map(|_| sized(10)).collect();
        let sizes: Vec<_> = plan_batches(&messages).unwrap().iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![10, 10, 5]);
    }

    #[test]
    fn batches_hold_at_most_256_kib() {
        let messages: Vec<_> = (0..4).map(|_| sized(100 * 1024)).collect();
        assert_eq!(plan_batches(&messages).unwrap(), vec![vec![0, 1], vec![2, 3]]);
    }

    #[test]
    fn a_message_of_exactly_the_limit_is_accepted_and_one_byte_more_refused() {
        assert!(plan_batches(&[sized(MAX_MESSAGE_BYTES)]).is_ok());
        let err = plan_batches(&[sized(1), sized(MAX_MESSAGE_BYTES + 1)]).unwrap_err();
        assert!(matches!(err, QueueError::MessageTooLarge { index: 1, size } if size == MAX_MESSAGE_BYTES + 1));
    }
}
