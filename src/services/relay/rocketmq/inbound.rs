//! What arrives from RocketMQ: one task creates this spear's topic, starts its consumer and
//! polls it, handing messages to the [`Inbound`] sink in each queue's order. A queue offset at
//! or below one already handed on is a redelivery (the broker restarted before it stored the
//! group's offset) and is skipped, so a message reaches the sink once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::super::{hand_on, Inbound, RelayStats};
use super::link::{MqConsumer, MqLink, Received};
use crate::config::NodeId;

/// How long to wait before trying again to set up the consumer.
const RETRY: Duration = Duration::from_millis(500);
/// How often the offsets read are stored at the broker (what a restarted spear resumes from).
const COMMIT_EVERY: Duration = Duration::from_secs(1);

/// The receiving side of one spear's RocketMQ relay.
pub(super) struct Receiver<I> {
    pub(super) me: NodeId,
    pub(super) mq: Arc<MqLink>,
    pub(super) topic: String,
    pub(super) queues: u32,
    pub(super) consuming: Arc<AtomicBool>,
    pub(super) stats: Arc<RelayStats>,
    pub(super) inbound: I,
}

impl<I: Inbound> Receiver<I> {
    /// Sets up the topic and its consumer, then polls until `cancel`.
    pub(super) async fn run(self, cancel: CancellationToken) {
        let Some(consumer) = self.subscribe(&cancel).await else {
            return;
        };
        self.consuming.store(true, Ordering::Release);
        tracing::info!(topic = %self.topic, "relay consuming its RocketMQ topic");
        let mut handed: HashMap<i32, i64> = HashMap::new();
        let mut committed = Instant::now();
        loop {
            // A poll is never raced against anything but the stop: one dropped half-way could
            // lose what it took.
            let polled = tokio::select! {
                () = cancel.cancelled() => break,
                polled = consumer.poll() => polled,
            };
            for message in polled {
                let last = handed.entry(message.queue).or_insert(-1);
                if message.offset <= *last {
                    continue;
                }
                *last = message.offset;
                self.arrived(message).await;
            }
            // A poll returns within a fraction of a second even when nothing came.
            if committed.elapsed() >= COMMIT_EVERY {
                consumer.commit().await;
                committed = Instant::now();
            }
        }
        consumer.shutdown().await;
    }

    /// Creates the topic (idempotent) and starts the consumer, trying until both succeed.
    async fn subscribe(&self, cancel: &CancellationToken) -> Option<MqConsumer> {
        loop {
            let attempt = async {
                self.mq.create_topic(&self.topic, self.queues).await?;
                self.mq.consumer(&self.topic, &self.topic).await
            };
            match attempt.await {
                Ok(consumer) => return Some(consumer),
                Err(e) => tracing::warn!(error = %e, topic = %self.topic, "relay topic not ready"),
            }
            tokio::select! {
                () = cancel.cancelled() => return None,
                () = tokio::time::sleep(RETRY) => {}
            }
        }
    }

    async fn arrived(&self, message: Received) {
        let channel = message.tag.as_deref().and_then(|t| t.parse().ok());
        hand_on(self.me, &self.stats, &self.inbound, channel, message.body).await;
    }
}
