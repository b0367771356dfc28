//! The spear's channel subscriptions, kept by one task so that they reach Redis in the order
//! the roster decided them (a group's subscribe can never overtake its unsubscribe). What
//! queued up while a command was out goes in the next one. The task remembers the wanted set:
//! when subscriptions may have been lost (the connection closed, a command failed) it sends
//! them all again until Redis takes them.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::net::redis::RedisLink;

/// How often subscriptions are re-sent while some may be missing.
const REPAIR_EVERY: Duration = Duration::from_millis(250);
/// Subscription changes sent in one command at most.
const CHUNK: usize = 1024;

enum Op {
    /// Subscribe; `done` gets a value once Redis confirmed it (and is dropped if it failed).
    Add(String, oneshot::Sender<()>),
    Remove(String),
}

/// The handle of the subscription task.
pub(super) struct Subscriptions {
    ops: UnboundedSender<Op>,
    /// Set when subscriptions may have been lost.
    lost: AtomicBool,
    /// Channels wanted.
    count: AtomicU64,
}

impl Subscriptions {
    /// Starts the task that keeps the subscriptions of `link`, until `cancel`.
    pub(super) fn start(
        link: Arc<RedisLink>,
        cancel: CancellationToken,
    ) -> (Arc<Self>, JoinHandle<()>) {
        let (ops, rx) = mpsc::unbounded_channel();
        let subs = Arc::new(Self {
            ops,
            lost: AtomicBool::new(false),
            count: AtomicU64::new(0),
        });
        let task = tokio::spawn(subs.clone().run(link, rx, cancel));
        (subs, task)
    }

    /// Subscribes to `channel`; the receiver completes once Redis confirmed it.
    pub(super) fn add(&self, channel: String) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        // A send fails only once the task has stopped (shutdown): the receiver then reports
        // that nothing was subscribed.
        let _ = self.ops.send(Op::Add(channel, tx));
        rx
    }

    /// Unsubscribes from `channel`.
    pub(super) fn remove(&self, channel: String) {
        let _ = self.ops.send(Op::Remove(channel));
    }

    /// Subscriptions may have been lost: send them all again.
    pub(super) fn lost(&self) {
        self.lost.store(true, Ordering::Release);
    }

    /// Channels wanted (subscribed, or to be once Redis is back).
    pub(super) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    async fn run(
        self: Arc<Self>,
        link: Arc<RedisLink>,
        mut ops: UnboundedReceiver<Op>,
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
                    while batch.len() < CHUNK {
                        match ops.try_recv() {
                            Ok(op) => batch.push(op),
                            Err(_) => break,
                        }
                    }
                    self.apply(&link, batch, &mut wanted, &mut unwanted).await;
                }
                _ = tick.tick() => {
                    if self.lost.swap(false, Ordering::AcqRel) {
                        self.repair(&link, &wanted, &mut unwanted).await;
                    }
                }
            }
        }
    }

    /// Applies one batch of changes: the last word on a channel wins.
    async fn apply(
        &self,
        link: &RedisLink,
        batch: Vec<Op>,
        wanted: &mut HashSet<String>,
        unwanted: &mut HashSet<String>,
    ) {
        let mut add = HashSet::new();
        let mut remove = HashSet::new();
        let mut waiters = Vec::new();
        for op in batch {
            match op {
                Op::Add(ch, done) => {
                    remove.remove(&ch);
                    wanted.insert(ch.clone());
                    unwanted.remove(&ch);
                    add.insert(ch);
                    waiters.push(done);
                }
                Op::Remove(ch) => {
                    add.remove(&ch);
                    wanted.remove(&ch);
                    remove.insert(ch);
                }
            }
        }
        self.count.store(wanted.len() as u64, Ordering::Relaxed);
        let add: Vec<String> = add.into_iter().collect();
        let subscribed = link.subscribe(&add).await.is_ok();
        if !subscribed {
            self.lost();
        }
        let remove: Vec<String> = remove.into_iter().collect();
        if link.unsubscribe(&remove).await.is_err() {
            unwanted.extend(remove);
            self.lost();
        }
        if subscribed {
            for done in waiters {
                let _ = done.send(());
            }
        }
        // Otherwise the waiters are dropped: not confirmed; the repair subscribes later.
    }

    /// Sends every wanted subscription again, and the unsubscribes that failed.
    async fn repair(
        &self,
        link: &RedisLink,
        wanted: &HashSet<String>,
        unwanted: &mut HashSet<String>,
    ) {
        let all: Vec<String> = wanted.iter().cloned().collect();
        let mut ok = true;
        for chunk in all.chunks(CHUNK) {
            ok &= link.subscribe(chunk).await.is_ok();
        }
        let stale: Vec<String> = unwanted.iter().cloned().collect();
        if link.unsubscribe(&stale).await.is_ok() {
            unwanted.clear();
        } else {
            ok = false;
        }
        if ok {
            tracing::info!(channels = all.len(), "relay subscriptions restored");
        } else {
            self.lost();
        }
    }
}
