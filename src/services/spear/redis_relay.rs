//! The Redis relay: targeted, not flooded. A message for user U is published on U's channel and
//! a group message on the group's channel; a spear subscribes to a user's channel while that user
//! has a connection on it and to a group's channel while the group has a member on it, so
//! a message reaches only the spears with recipients. On a Redis Cluster the channels are
//! sharded (`SPUBLISH` / `SSUBSCRIBE`).
//!
//! The payload on the wire is `<origin spear id>:<msg JSON>`; the origin has already delivered
//! to its own clients and skips its echo. Subscriptions follow the roster through one task, in
//! order; when Redis is unreachable the wanted set is kept and re-sent once it is back.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::{PushInfo, PushKind, Value};
use socketioxide::SocketIo;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::relay::{Audience, Envelope, RelayError, RelayReport, RelayStats};
use super::roster::{Change, ChangeSink};
use crate::config::NodeId;
use crate::net::redis::RedisLink;
use crate::services::stat::{ChannelOf, Keys};

/// How often subscriptions are re-sent while some may be missing.
const REPAIR_EVERY: Duration = Duration::from_millis(250);
/// Subscription changes sent in one command at most.
const SUBSCRIBE_CHUNK: usize = 1024;

enum SubOp {
    Add(String, oneshot::Sender<()>),
    Remove(String),
}

/// A spear's Redis relay.
pub struct RedisRelay {
    link: Arc<RedisLink>,
    keys: Keys,
    me: NodeId,
    settle: Duration,
    ops: UnboundedSender<SubOp>,
    /// Set when subscriptions may have been lost (a disconnect, a failed command).
    repair: AtomicBool,
    channels: AtomicU64,
    stats: RelayStats,
}

impl RedisRelay {
    /// Starts the relay of spear `me`: its subscription task and the task that delivers what
    /// arrives (`pushes`, the link's pub/sub messages) to this spear's clients through `io`.
    pub fn start(
        link: Arc<RedisLink>,
        keys: Keys,
        me: NodeId,
        settle: Duration,
        pushes: UnboundedReceiver<PushInfo>,
        io: SocketIo,
        cancel: CancellationToken,
    ) -> (Arc<Self>, Vec<tokio::task::JoinHandle<()>>) {
        let (ops, ops_rx) = mpsc::unbounded_channel();
        let relay = Arc::new(Self {
            link,
            keys,
            me,
            settle,
            ops,
            repair: AtomicBool::new(false),
            channels: AtomicU64::new(0),
            stats: RelayStats::default(),
        });
        let tasks = vec![
            tokio::spawn(relay.clone().run_subscriptions(ops_rx, cancel.clone())),
            tokio::spawn(relay.clone().run_inbound(pushes, io, cancel)),
        ];
        (relay, tasks)
    }

    fn channel(&self, audience: Audience) -> String {
        self.keys.channel(match audience {
            Audience::User(uid) => ChannelOf::User(uid),
            Audience::Group(gid) => ChannelOf::Group(gid),
        })
    }

    /// Publishes `envelope`; fails while Redis is unreachable or settling after an outage.
    pub async fn publish(&self, envelope: &Envelope) -> Result<(), RelayError> {
        if !self.link.health().settled(self.settle) {
            RelayStats::bump(&self.stats.publish_errors);
            let why = if self.link.health().is_connected() {
                "Redis just came back; other spears are resubscribing"
            } else {
                "Redis is unreachable"
            };
            return Err(RelayError(why.into()));
        }
        let payload = envelope.payload.get();
        let mut wire = Vec::with_capacity(payload.len() + 12);
        wire.extend_from_slice(self.me.to_string().as_bytes());
        wire.push(b':');
        wire.extend_from_slice(payload.as_bytes());
        match self
            .link
            .publish(&self.channel(envelope.audience), &wire)
            .await
        {
            Ok(_) => {
                RelayStats::bump(&self.stats.published);
                Ok(())
            }
            Err(e) => {
                RelayStats::bump(&self.stats.publish_errors);
                Err(RelayError(e.to_string()))
            }
        }
    }

    /// The live counters.
    pub fn stats(&self) -> &RelayStats {
        &self.stats
    }

    /// The counters.
    pub fn report(&self) -> RelayReport {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RelayReport {
            kind: "redis",
            connected: self.link.health().is_connected(),
            outages: self.link.health().outages(),
            published: load(&self.stats.published),
            publish_errors: load(&self.stats.publish_errors),
            received: load(&self.stats.received),
            echoes: load(&self.stats.echoes),
            dropped: load(&self.stats.dropped),
            slow_clients: load(&self.stats.slow_clients),
            channels: load(&self.channels),
        }
    }

    /// Applies subscription changes in order, batching what queued up; re-sends the whole
    /// wanted set while subscriptions may be missing.
    async fn run_subscriptions(
        self: Arc<Self>,
        mut ops: UnboundedReceiver<SubOp>,
        cancel: CancellationToken,
    ) {
        let mut wanted: HashSet<String> = HashSet::new();
        // Channels whose unsubscribe failed; a reconnect may have brought them back.
        let mut unwanted: HashSet<String> = HashSet::new();
        let mut tick = tokio::time::interval(REPAIR_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                op = ops.recv() => {
                    let Some(op) = op else { return };
                    let mut batch = vec![op];
                    while batch.len() < SUBSCRIBE_CHUNK {
                        match ops.try_recv() {
                            Ok(op) => batch.push(op),
                            Err(_) => break,
                        }
                    }
                    let mut add = HashSet::new();
                    let mut remove = HashSet::new();
                    let mut waiters = Vec::new();
                    for op in batch {
                        match op {
                            SubOp::Add(ch, done) => {
                                remove.remove(&ch);
                                wanted.insert(ch.clone());
                                unwanted.remove(&ch);
                                add.insert(ch);
                                waiters.push(done);
                            }
                            SubOp::Remove(ch) => {
                                add.remove(&ch);
                                wanted.remove(&ch);
                                remove.insert(ch);
                            }
                        }
                    }
                    self.channels.store(wanted.len() as u64, Ordering::Relaxed);
                    let add: Vec<String> = add.into_iter().collect();
                    if self.link.subscribe(&add).await.is_err() {
                        self.repair.store(true, Ordering::Release);
                    }
                    let remove: Vec<String> = remove.into_iter().collect();
                    if self.link.unsubscribe(&remove).await.is_err() {
                        unwanted.extend(remove);
                        self.repair.store(true, Ordering::Release);
                    }
                    for done in waiters {
                        let _ = done.send(());
                    }
                }
                _ = tick.tick() => {
                    if self.repair.swap(false, Ordering::AcqRel) {
                        let all: Vec<String> = wanted.iter().cloned().collect();
                        let mut ok = true;
                        for chunk in all.chunks(SUBSCRIBE_CHUNK) {
                            ok &= self.link.subscribe(chunk).await.is_ok();
                        }
                        let stale: Vec<String> = unwanted.iter().cloned().collect();
                        if self.link.unsubscribe(&stale).await.is_ok() {
                            unwanted.clear();
                        } else {
                            ok = false;
                        }
                        if ok {
                            tracing::info!(channels = all.len(), "relay subscriptions restored");
                        } else {
                            self.repair.store(true, Ordering::Release);
                        }
                    }
                }
            }
        }
    }

    /// Delivers what arrives from Redis to this spear's clients, in arrival order.
    async fn run_inbound(
        self: Arc<Self>,
        mut pushes: UnboundedReceiver<PushInfo>,
        io: SocketIo,
        cancel: CancellationToken,
    ) {
        loop {
            let push = tokio::select! {
                () = cancel.cancelled() => return,
                push = pushes.recv() => match push {
                    Some(p) => p,
                    None => return,
                },
            };
            match push.kind {
                PushKind::Message | PushKind::SMessage => self.deliver(push.data, &io).await,
                PushKind::Disconnection => {
                    self.link.health().failed("the Redis connection closed");
                    self.repair.store(true, Ordering::Release);
                }
                _ => {}
            }
        }
    }

    async fn deliver(&self, data: Vec<Value>, io: &SocketIo) {
        RelayStats::bump(&self.stats.received);
        let mut parts = data.into_iter();
        let (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) =
            (parts.next(), parts.next())
        else {
            RelayStats::bump(&self.stats.dropped);
            return;
        };
        let audience = std::str::from_utf8(&channel)
            .ok()
            .and_then(|c| self.keys.parse_channel(c));
        let split = payload.iter().position(|b| *b == b':');
        let (Some(audience), Some(split)) = (audience, split) else {
            RelayStats::bump(&self.stats.dropped);
            return;
        };
        let origin = std::str::from_utf8(&payload[..split])
            .ok()
            .and_then(|o| o.parse::<NodeId>().ok());
        if origin == Some(self.me) {
            RelayStats::bump(&self.stats.echoes);
            return;
        }
        // Checked, not parsed into a tree: the sending spear wrote this JSON, and it goes out
        // to the clients byte for byte.
        let Ok(msg) = serde_json::from_slice::<&serde_json::value::RawValue>(&payload[split + 1..])
        else {
            RelayStats::bump(&self.stats.dropped);
            return;
        };
        let room = match audience {
            ChannelOf::User(uid) => Audience::User(uid),
            ChannelOf::Group(gid) => Audience::Group(gid),
        }
        .room();
        if let Err(e) = io.to(room).emit("msg", msg).await {
            // Only a client whose send queue is full (it does not read) misses it.
            RelayStats::bump(&self.stats.slow_clients);
            tracing::warn!(error = %e, "relayed message not delivered to a client that does not read");
        }
    }
}

impl ChangeSink for RedisRelay {
    fn changed(&self, change: Change) -> Option<oneshot::Receiver<()>> {
        let add = |audience| {
            let (tx, rx) = oneshot::channel();
            let _ = self.ops.send(SubOp::Add(self.channel(audience), tx));
            Some(rx)
        };
        let remove = |audience| {
            let _ = self.ops.send(SubOp::Remove(self.channel(audience)));
            None
        };
        match change {
            Change::UserOnline(uid) => add(Audience::User(uid)),
            Change::GroupOpened(gid) => add(Audience::Group(gid)),
            Change::UserOffline(uid) => remove(Audience::User(uid)),
            Change::GroupClosed(gid) => remove(Audience::Group(gid)),
            Change::UserConnections(_) | Change::Member { .. } => None,
        }
    }
}
