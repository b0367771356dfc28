//! A node's connection to RocketMQ (feature `rocketmq`), through the Rust client of Apache
//! RocketMQ: a producer, topic creation, and lite-pull consumers. The client runs on a small
//! runtime of its own (one worker thread), which this link owns and stops. The rest of the relay
//! never sees the client's types: it sends bytes to a topic and polls [`Received`] messages.
//!
//! [`MqHealth`] follows the broker as the link experiences it: a send that fails for want of
//! the broker marks it down, the next one that succeeds marks it up again (the relay probes
//! while it is down, so that it comes back without traffic).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use rocketmq_client_rust::{
    ClientError, ClientRuntime, ClientRuntimeConfig, DefaultLitePullConsumer, DefaultMQProducer,
};
use rocketmq_error::CanonicalCondition;
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_queue::MessageQueue;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_model::result::SendStatus;
use rocketmq_observability::TelemetryHandle;
use rocketmq_runtime::{RuntimeConfig, RuntimeOwner};

use crate::config::RocketMqSection;

/// The topic whose route lets the broker create others (RocketMQ's `TBW102`, present while
/// the broker's `autoCreateTopicEnable` is on, as it is by default).
const CREATE_TOPIC_KEY: &str = "TBW102";
/// How long a consumer's poll waits for messages before it returns empty, ms.
const POLL_MS: u64 = 200;
/// How long the broker holds a pull that found nothing (long polling), ms.
const LONG_POLL_MS: u64 = 2000;

/// Why a RocketMQ operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MqError {
    /// The name server or broker cannot be reached (down, or no route yet).
    #[error("RocketMQ unreachable: {0}")]
    Unreachable(String),
    /// The broker did not answer in time.
    #[error("RocketMQ did not answer within {0:?}")]
    Timeout(Duration),
    /// The broker answered with an error, or did not store the message as asked.
    #[error("RocketMQ refused: {0}")]
    Refused(String),
    /// The client has too many requests waiting for the broker's answer to take another.
    #[error("RocketMQ client busy: {0}")]
    Busy(String),
    /// The client could not be set up (bad configuration).
    #[error("RocketMQ client: {0}")]
    Client(String),
}

impl MqError {
    fn of(e: &ClientError, timeout: Duration) -> Self {
        match e.descriptor().condition() {
            CanonicalCondition::DeadlineExceeded => Self::Timeout(timeout),
            // The client's own queue of requests waiting for an answer is full (a burst the
            // broker has not answered yet): this message is refused, the broker is not down.
            CanonicalCondition::ResourceExhausted => Self::Busy(e.to_string()),
            CanonicalCondition::Unavailable
            | CanonicalCondition::NotFound
            | CanonicalCondition::Aborted
            | CanonicalCondition::Cancelled => Self::Unreachable(e.to_string()),
            _ if e.broker_response_code().is_some() => Self::Refused(e.to_string()),
            _ => Self::Unreachable(e.to_string()),
        }
    }
}

/// Whether the broker is reachable, and how many outages there were.
#[derive(Debug)]
pub struct MqHealth {
    connected: AtomicBool,
    outages: AtomicU64,
}

impl MqHealth {
    fn new() -> Self {
        Self {
            connected: AtomicBool::new(true),
            outages: AtomicU64::new(0),
        }
    }

    fn failed(&self, why: &MqError) {
        if self.connected.swap(false, Ordering::AcqRel) {
            self.outages.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %why, "RocketMQ unreachable: relaying paused");
        }
    }

    fn succeeded(&self) {
        if !self.connected.swap(true, Ordering::AcqRel) {
            tracing::info!("RocketMQ reachable again");
        }
    }

    /// Whether the last operation reached the broker.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Outages seen since the node started.
    pub fn outages(&self) -> u64 {
        self.outages.load(Ordering::Relaxed)
    }
}

/// A message a consumer polled.
#[derive(Debug, Clone)]
pub struct Received {
    /// The queue it came from.
    pub queue: i32,
    /// Its offset in that queue.
    pub offset: i64,
    /// Its tag, if it has one.
    pub tag: Option<String>,
    /// Its body.
    pub body: Vec<u8>,
}

/// The client runtime, a producer, and the health they share.
pub struct MqLink {
    /// Dropped last: the runtime the client's tasks run on.
    owner: RuntimeOwner,
    runtime: Arc<ClientRuntime>,
    producer: DefaultMQProducer,
    name_server: String,
    send_timeout: Duration,
    /// Whether sends go through the client's accumulator (`rocketmq.batch_max_delay_ms`).
    batching: bool,
    health: MqHealth,
    /// The queue [`Self::probe`] asks about, once known.
    probed: Mutex<Option<MessageQueue>>,
}

impl MqLink {
    /// Starts the client runtime and a producer of group `group` on `section`'s name servers.
    /// Nothing is contacted yet: a broker that is down is found out by the first send.
    pub async fn start(section: &RocketMqSection, group: &str) -> Result<Arc<Self>, MqError> {
        let client = |e: &dyn std::fmt::Display| MqError::Client(e.to_string());
        let owner = RuntimeOwner::plan(RuntimeConfig::for_parallelism("gru-rocketmq", 1))
            .map_err(|e| client(&e))?
            .build()
            .map_err(|e| client(&e))?;
        let runtime = ClientRuntime::try_new(
            owner.root_context().component("client"),
            ClientRuntimeConfig::default(),
            TelemetryHandle::default(),
        )
        .map_err(|e| client(&e))?;
        let name_server = section.name_server.clone();
        let send_timeout = Duration::from_millis(section.send_timeout_ms);
        let timeout_ms = u32::try_from(section.send_timeout_ms).unwrap_or(u32::MAX);
        let mut builder = DefaultMQProducer::builder(runtime.clone())
            .producer_group(group.to_string())
            .name_server_addr(name_server.clone())
            .send_msg_timeout(timeout_ms)
            // One broker: retrying within the timeout is all a retry could do.
            .retry_times_when_send_failed(0);
        let batching = section.batch_max_delay_ms > 0;
        if batching {
            // Sends to one queue that wait together go as one request (a RocketMQ batch).
            builder = builder
                .auto_batch(true)
                .batch_max_delay_ms(section.batch_max_delay_ms);
        }
        let mut producer = builder.build();
        producer.start().await.map_err(|e| client(&e))?;
        Ok(Arc::new(Self {
            owner,
            runtime,
            producer,
            name_server,
            send_timeout,
            batching,
            health: MqHealth::new(),
            probed: Mutex::new(None),
        }))
    }

    /// The broker's state as the link sees it.
    pub fn health(&self) -> &MqHealth {
        &self.health
    }

    /// Creates `topic` with `queues` read and write queues on every broker (again, if it
    /// exists: the call is idempotent).
    pub async fn create_topic(&self, topic: &str, queues: u32) -> Result<(), MqError> {
        let queues = i32::try_from(queues).unwrap_or(i32::MAX);
        let mut admin = self.producer.clone();
        let outcome = admin
            .create_topic(CREATE_TOPIC_KEY, topic, queues, Default::default())
            .await;
        self.observe(outcome.map(drop))
    }

    /// Asks the broker for the last offset of a queue of `topic`: a cheap read that tells
    /// whether the broker is there, recorded in [`Self::health`].
    pub async fn probe(&self, topic: &str) -> Result<(), MqError> {
        let mut admin = self.producer.clone();
        let known = self.probed.lock().ok().and_then(|q| q.clone());
        let ask = async {
            // The queue is looked up once, so that the probe asks the broker alone: a name
            // server that is down does not stop the broker from serving what is known.
            let queue = match known {
                Some(queue) => Some(queue),
                None => admin
                    .fetch_publish_message_queues(topic)
                    .await?
                    .first()
                    .cloned(),
            };
            match queue {
                Some(queue) => {
                    admin.max_offset(&queue).await?;
                    if let Ok(mut probed) = self.probed.lock() {
                        *probed = Some(queue);
                    }
                    Ok(())
                }
                None => Ok(()),
            }
        };
        let outcome = match tokio::time::timeout(self.send_timeout, ask).await {
            Ok(outcome) => outcome,
            Err(_) => Err(ClientError::timeout(
                "probe",
                self.send_timeout.as_millis() as u64,
            )),
        };
        self.observe(outcome)
    }

    /// Sends `body` tagged `tag` to `topic`, on the queue that `key` selects (the same key, the
    /// same queue, so one key's messages keep their order). Resolves once the broker stored it.
    pub async fn send(&self, topic: &str, tag: &str, body: &[u8], key: u64) -> Result<(), MqError> {
        let message = Message::builder()
            .topic(topic)
            .tags(tag)
            .body_slice(body)
            .build_unchecked();
        let select = |queues: &[MessageQueue], _: &Message, key: &u64| {
            pick(queues.iter().map(MessageQueue::queue_id), *key)
                .and_then(|i| queues.get(i))
                .cloned()
        };
        // Only the send without its own timeout goes through the client's accumulator (the
        // producer's send timeout bounds it all the same).
        let sent = if self.batching {
            self.producer
                .send_with_selector(message, select, key)
                .boxed()
        } else {
            self.producer
                .send_with_selector_timeout(
                    message,
                    select,
                    key,
                    self.send_timeout.as_millis() as u64,
                )
                .boxed()
        };
        // The client bounds the send by the same timeout; this bounds the client.
        let outcome = match tokio::time::timeout(self.send_timeout * 2, sent).await {
            Ok(outcome) => outcome,
            Err(_) => return Err(MqError::Timeout(self.send_timeout)),
        };
        match self.observe(outcome)? {
            Some(result) if result.send_status == SendStatus::SendOk => Ok(()),
            Some(result) => Err(MqError::Refused(format!(
                "stored as {:?}",
                result.send_status
            ))),
            None => Err(MqError::Refused("no send result".into())),
        }
    }

    /// Records what an operation says of the broker.
    fn observe<T>(&self, outcome: Result<T, ClientError>) -> Result<T, MqError> {
        match outcome {
            Ok(v) => {
                self.health.succeeded();
                Ok(v)
            }
            Err(e) => {
                let e = MqError::of(&e, self.send_timeout);
                if matches!(e, MqError::Unreachable(_) | MqError::Timeout(_)) {
                    self.health.failed(&e);
                }
                Err(e)
            }
        }
    }

    /// A consumer of group `group` that reads all of `topic`'s queues, from the offsets the
    /// broker keeps for the group (from the first message for a new group), committing what it
    /// polled.
    pub async fn consumer(&self, topic: &str, group: &str) -> Result<MqConsumer, MqError> {
        let client = |e: ClientError| MqError::of(&e, self.send_timeout);
        let consumer = DefaultLitePullConsumer::builder(self.runtime.clone())
            .consumer_group(group.to_string())
            .name_server_addr(self.name_server.clone())
            .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
            .poll_timeout_millis(POLL_MS)
            // A pull waits at the broker for messages up to this long, and the client for the
            // pull a second more: a pull lost with a killed broker is noticed that soon.
            .broker_suspend_max_time_millis(LONG_POLL_MS)
            .consumer_timeout_millis_when_suspend(LONG_POLL_MS + 1000)
            .consumer_pull_timeout_millis(LONG_POLL_MS + 1000)
            // Committed by `MqConsumer::commit`, for the queues that moved only: the client's
            // auto-commit logs an error every 5 s for each queue nothing came through yet.
            .auto_commit(false)
            .build()
            .map_err(client)?;
        consumer.start().await.map_err(client)?;
        // Assigned, not subscribed: a subscription's queues are dropped when the broker goes
        // away and come back only at the next rebalance (every 20 s); assigned queues are
        // pulled again as soon as the broker is back.
        let queues = consumer.fetch_message_queues(topic).await.map_err(client)?;
        consumer.assign(queues).await.map_err(client)?;
        Ok(MqConsumer {
            consumer,
            topic: topic.to_string(),
            moved: Mutex::new(HashMap::new()),
        })
    }

    /// Stops the producer and the client runtime.
    pub async fn shutdown(&self) {
        let mut producer = self.producer.clone();
        producer.shutdown().await;
        let report = self.runtime.shutdown().await;
        if !report.is_healthy() {
            tracing::warn!(report = %report.to_json(), "RocketMQ client stopped uncleanly");
        }
        let report = self.owner.shutdown_tasks().await;
        if !report.is_healthy() {
            tracing::warn!(report = %report.to_json(), "RocketMQ client tasks stopped uncleanly");
        }
    }
}

/// Of queues with ids `ids` (in any order), the index of the one `key` selects: the queue whose
/// id is `key` modulo their number, so every sender picks the same one.
fn pick(ids: impl Iterator<Item = i32>, key: u64) -> Option<usize> {
    let ids: Vec<i32> = ids.collect();
    let n = u64::try_from(ids.len()).ok().filter(|n| *n > 0)?;
    let want = i32::try_from(key % n).ok()?;
    ids.iter().position(|id| *id == want).or(Some(0))
}

/// A lite-pull consumer of one topic.
pub struct MqConsumer {
    consumer: DefaultLitePullConsumer,
    topic: String,
    /// The next offset of each queue (by broker and queue id) polled since the last commit.
    moved: Mutex<HashMap<(String, i32), i64>>,
}

impl MqConsumer {
    /// The messages that arrived, in each queue's order; empty after a short wait when there
    /// are none.
    pub async fn poll(&self) -> Vec<Received> {
        let polled = self.consumer.poll().await;
        if let Ok(mut moved) = self.moved.lock() {
            for m in &polled {
                let next = moved
                    .entry((m.broker_name().to_string(), m.queue_id()))
                    .or_insert(0);
                *next = (*next).max(m.queue_offset() + 1);
            }
        }
        polled
            .into_iter()
            .map(|m| Received {
                queue: m.queue_id(),
                offset: m.queue_offset(),
                tag: m.get_tags().map(|t| t.to_string()),
                body: m.body().map(|b| b.to_vec()).unwrap_or_default(),
            })
            .collect()
    }

    /// Stores at the broker how far the queues that moved since the last commit were read: a
    /// consumer of the same group started later (the spear restarted) resumes there.
    pub async fn commit(&self) {
        let moved = match self.moved.lock() {
            Ok(mut moved) => std::mem::take(&mut *moved),
            Err(_) => return,
        };
        if moved.is_empty() {
            return;
        }
        let offsets = moved
            .into_iter()
            .map(|((broker, queue), next)| {
                (
                    MessageQueue::from_parts(self.topic.as_str(), broker, queue),
                    next,
                )
            })
            .collect();
        self.consumer.commit_with_map(offsets, true).await;
    }

    /// Commits what was polled and leaves the group.
    pub async fn shutdown(&self) {
        self.commit().await;
        self.consumer.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::pick;

    #[test]
    fn one_key_picks_one_queue_whatever_the_order_they_are_listed_in() {
        let sorted = pick([0, 1, 2, 3].into_iter(), 6);
        let shuffled = pick([2, 3, 0, 1].into_iter(), 6);
        assert_eq!(sorted, Some(2));
        assert_eq!(shuffled, Some(0), "queue id 2 is listed first there");
        assert_eq!(
            pick([5, 6].into_iter(), 0),
            Some(0),
            "no queue 0: the first"
        );
        assert_eq!(pick(std::iter::empty(), 1), None);
    }
}
