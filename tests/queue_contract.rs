//! One contract for every `Queue`: the in-process queue and SQS (on moto's server).

use std::sync::Arc;
use std::time::Duration;

use hubsync::adapters::{MemoryQueue, Redrive};
use hubsync::ports::queue::MAX_MESSAGE_BYTES;
use hubsync::ports::{OutgoingMessage, Queue, QueueError, ReceivedMessage};

const VISIBILITY: Duration = Duration::from_secs(30);

/// Receives until `expected` messages arrived or a few empty polls in a row.
async fn drain(queue: &dyn Queue, expected: usize) -> Vec<ReceivedMessage> {
    let mut all = Vec::new();
    let mut empty_polls = 0;
    while all.len() < expected && empty_polls < 3 {
        let batch = queue.receive(10, Duration::from_secs(1)).await.unwrap();
        empty_polls = if batch.is_empty() { empty_polls + 1 } else { 0 };
        all.extend(batch);
    }
    all
}

async fn every_message_sent_is_received_once_until_deleted(queue: Arc<dyn Queue>, _dlq: Arc<dyn Queue>) {
    let bodies: Vec<String> = (0..25).map(|i| format!(r#"{{"n":{i}}}"#)).collect();
    queue.send(bodies.iter().map(OutgoingMessage::new).collect()).await.unwrap();

    let received = drain(queue.as_ref(), 25).await;
    let mut got: Vec<String> = received.iter().map(|m| m.body.clone()).collect();
    got.sort();
    let mut want = bodies.clone();
    want.sort();
    assert_eq!(got, want);
    assert!(received.iter().all(|m| m.receive_count == 1));

    for message in &received {
        queue.delete(&message.receipt_handle).await.unwrap();
    }
    assert!(queue.receive(10, Duration::ZERO).await.unwrap().is_empty());
}

async fn an_oversize_message_is_refused_and_nothing_is_sent(queue: Arc<dyn Queue>, _dlq: Arc<dyn Queue>) {
    let messages = vec![OutgoingMessage::new("small"), OutgoingMessage::new("x".repeat(MAX_MESSAGE_BYTES + 1))];
    let err = queue.send(messages).await.unwrap_err();
    assert!(matches!(err, QueueError::MessageTooLarge { index: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("at most 262144 bytes"), "{err}");
    assert!(drain(queue.as_ref(), 1).await.is_empty());
}

async fn a_batch_of_large_messages_is_split_within_limits(queue: Arc<dyn Queue>, _dlq: Arc<dyn Queue>) {
    // Three 100 KiB messages cannot share one 256 KiB batch; all must still arrive whole.
    let bodies: Vec<String> = (0..3).map(|i| format!("{i}{}", "y".repeat(100 * 1024))).collect();
    queue.send(bodies.iter().map(OutgoingMessage::new).collect()).await.unwrap();
    let received = drain(queue.as_ref(), 3).await;
    assert_eq!(received.len(), 3);
    assert!(received.iter().all(|m| m.body.len() == 100 * 1024 + 1));
}

async fn an_unacknowledged_message_comes_back_with_a_higher_count(queue: Arc<dyn Queue>, _dlq: Arc<dyn Queue>) {
    queue.send(vec![OutgoingMessage::new("retry me")]).await.unwrap();
    let first = drain(queue.as_ref(), 1).await;
    assert_eq!(first.len(), 1);
    // Hidden while in flight.
    assert!(queue.receive(10, Duration::ZERO).await.unwrap().is_empty());

    queue.change_visibility(&first[0].receipt_handle, Duration::ZERO).await.unwrap();
    let second = drain(queue.as_ref(), 1).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].body, "retry me");
    assert_eq!(second[0].receive_count, 2);
}

async fn a_message_received_too_often_moves_to_the_dead_letter_queue(queue: Arc<dyn Queue>, dlq: Arc<dyn Queue>) {
    queue.send(vec![OutgoingMessage::new("poison")]).await.unwrap();
    for attempt in 1..=2 {
        let received = drain(queue.as_ref(), 1).await;
        assert_eq!(received.len(), 1, "attempt {attempt}");
        queue.change_visibility(&received[0].receipt_handle, Duration::ZERO).await.unwrap();
    }
    assert!(drain(queue.as_ref(), 1).await.is_empty(), "a third receive must not happen");
    let dead = drain(dlq.as_ref(), 1).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "poison");
}

async fn a_delayed_message_is_held_back(queue: Arc<dyn Queue>, _dlq: Arc<dyn Queue>) {
    let delayed = OutgoingMessage { body: "later".into(), delay: Some(Duration::from_secs(2)) };
    queue.send(vec![delayed]).await.unwrap();
    assert!(queue.receive(10, Duration::ZERO).await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(drain(queue.as_ref(), 1).await.len(), 1);
}

fn memory_pair() -> (Arc<dyn Queue>, Arc<dyn Queue>) {
    let dlq = Arc::new(MemoryQueue::new(VISIBILITY, None));
    let queue = MemoryQueue::new(VISIBILITY, Some(Redrive { dead_letter_queue: dlq.clone(), max_receives: 2 }));
    (Arc::new(queue), dlq)
}

async fn sqs_pair() -> (Arc<dyn Queue>, Arc<dyn Queue>) {
    let (queue, dlq) = hubsync_tests::sqs_queue_with_dlq("contract", 2, VISIBILITY).await;
    (Arc::new(queue), Arc::new(dlq))
}

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    let (queue, dlq) = super::memory_pair();
                    super::$case(queue, dlq).await;
                }
            )*
        }
        mod sqs {
            $(
                #[tokio::test]
                async fn $case() {
                    let (queue, dlq) = super::sqs_pair().await;
                    super::$case(queue, dlq).await;
                }
            )*
        }
    };
}

contract!(
    every_message_sent_is_received_once_until_deleted,
    an_oversize_message_is_refused_and_nothing_is_sent,
    a_batch_of_large_messages_is_split_within_limits,
    an_unacknowledged_message_comes_back_with_a_higher_count,
    a_message_received_too_often_moves_to_the_dead_letter_queue,
    a_delayed_message_is_held_back,
);
