//! The embedded queue: SQS semantics in one process (visibility timeout, receive count,
//! redrive to a dead-letter queue after too many receives, SQS's size limits).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::ports::queue::plan_batches;
use crate::ports::{OutgoingMessage, Queue, QueueError, ReceivedMessage};

struct Stored {
    message_id: String,
    body: String,
    visible_at: Instant,
    receive_count: u32,
    receipt_handle: Option<String>,
}

/// Where messages go after too many receives, as SQS's redrive policy says.
pub struct Redrive {
    pub dead_letter_queue: Arc<MemoryQueue>,
    pub max_receives: u32,
}

pub struct MemoryQueue {
    messages: Mutex<Vec<Stored>>,
    arrived: Notify,
    visibility_timeout: Duration,
    redrive: Option<Redrive>,
}

impl MemoryQueue {
    pub fn new(visibility_timeout: Duration, redrive: Option<Redrive>) -> Self {
        MemoryQueue { messages: Mutex::new(Vec::new()), arrived: Notify::new(), visibility_timeout, redrive }
    }

    fn messages(&self) -> MutexGuard<'_, Vec<Stored>> {
        self.messages.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Messages stored, visible or not: what SQS calls the approximate depth.
    pub fn len(&self) -> usize {
        self.messages().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push(&self, body: String, visible_at: Instant) {
        let message_id = uuid::Uuid::new_v4().to_string();
        self.messages().push(Stored { message_id, body, visible_at, receive_count: 0, receipt_handle: None });
        self.arrived.notify_waiters();
    }

    /// Takes what is visible now; moves over-received messages to the dead-letter queue.
    fn take_visible(&self, max: usize) -> Vec<ReceivedMessage> {
        let now = Instant::now();
        let mut messages = self.messages();
        let mut received = Vec::new();
        let mut index = 0;
        while index < messages.len() && received.len() < max {
            if messages[index].visible_at > now {
                index += 1;
                continue;
            }
            if let Some(redrive) = &self.redrive
                && messages[index].receive_count >= redrive.max_receives
            {
                let dead = messages.remove(index);
                redrive.dead_letter_queue.push(dead.body, now);
                continue;
            }
            let message = &mut messages[index];
            message.receive_count += 1;
            message.visible_at = now + self.visibility_timeout;
            let handle = uuid::Uuid::new_v4().to_string();
            message.receipt_handle = Some(handle.clone());
            received.push(ReceivedMessage {
                message_id: message.message_id.clone(),
                receipt_handle: handle,
                body: message.body.clone(),
                receive_count: message.receive_count,
            });
            index += 1;
        }
        received
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    async fn send(&self, messages: Vec<OutgoingMessage>) -> Result<(), QueueError> {
        plan_batches(&messages)?;
        let now = Instant::now();
        for message in messages {
            self.push(message.body, now + message.delay.unwrap_or_default());
        }
        Ok(())
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<ReceivedMessage>, QueueError> {
        let deadline = Instant::now() + wait;
        loop {
            // Registered before looking, so a message sent in between still wakes us.
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let received = self.take_visible(max.min(10));
            if !received.is_empty() || Instant::now() >= deadline {
                return Ok(received);
            }
            // Wake on a new message, or when the next hidden one becomes visible.
            let next_visible = self.messages().iter().map(|m| m.visible_at).min();
            let wake = next_visible.map_or(deadline, |at| at.min(deadline));
            let _ = tokio::time::timeout_at(wake, arrived).await;
        }
    }

    async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError> {
        self.messages().retain(|m| m.receipt_handle.as_deref() != Some(receipt_handle));
        Ok(())
    }

    async fn change_visibility(&self, receipt_handle: &str, timeout: Duration) -> Result<(), QueueError> {
        let mut messages = self.messages();
        let message = messages
            .iter_mut()
            .find(|m| m.receipt_handle.as_deref() == Some(receipt_handle))
            .ok_or(QueueError::UnknownReceipt)?;
        message.visible_at = Instant::now() + timeout;
        Ok(())
    }
}
