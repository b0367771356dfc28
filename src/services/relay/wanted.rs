//! What a spear wants its transport to hold for it (Redis subscriptions, RocketMQ routes), kept
//! by one task so that changes reach the transport in the order the roster decided them (a
//! group's add can never overtake its removal). What queued up while a command was out goes in
//! the next one. The task remembers the wanted set: when it may have been lost (the connection
//! closed, a command failed, the transport reconnected) it puts it all in place again until the
//! transport takes it. Asked to [`restart`](Wanted::restart), it lets the transport begin
//! anew ([`Apply::restart`]) and puts it all in place again the same way; once everything is
//! in place, the transport may clear what it left behind ([`Apply::tidy`]).

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Channel;
use crate::services::spear::roster::Change;

/// How often the wanted set is put in place again while some of it may be missing.
const REPAIR_EVERY: Duration = Duration::from_millis(250);
/// Changes sent in one command at most.
pub(super) const CHUNK: usize = 1024;

/// How a transport puts items in place and takes them away.
pub(super) trait Apply: Send + Sync + 'static {
    /// What the items are, for the log (`"subscriptions"`).
    const WHAT: &'static str;

    /// Done once before anything else, retried until it succeeds (clearing what a previous
    /// run left behind). Changes wait meanwhile.
    fn prepare(&self) -> impl Future<Output = bool> + Send {
        async { true }
    }

    /// Puts `items` in place; true once the transport confirmed all of them.
    fn add(&self, items: &[String]) -> impl Future<Output = bool> + Send;

    /// Takes `items` away; true once the transport confirmed.
    fn remove(&self, items: &[String]) -> impl Future<Output = bool> + Send;

    /// Begins anew, after which everything wanted is put in place again; retried until true.
    fn restart(&self) -> impl Future<Output = bool> + Send {
        async { true }
    }

    /// Clears what earlier runs left behind, while everything wanted is in place (called
    /// every [`REPAIR_EVERY`] then).
    fn tidy(&self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Counts the transport's reconnections: when it moves, what it held may be gone.
    fn reconnections(&self) -> u64;
}

enum Op {
    /// Put in place; `done` gets a value once the transport confirmed it (and is dropped if it
    /// failed).
    Add(String, oneshot::Sender<()>),
    Remove(String),
}

/// The handle of the task.
pub(super) struct Wanted {
    ops: UnboundedSender<Op>,
    /// Set when what is wanted may have been lost.
    lost: AtomicBool,
    /// Set when the transport is to begin anew.
    restart: AtomicBool,
    /// Items wanted.
    count: AtomicU64,
}

impl Wanted {
    /// Starts the task that keeps what `apply`'s transport holds, until `cancel`.
    pub(super) fn start<A: Apply>(
        apply: A,
        cancel: CancellationToken,
    ) -> (Arc<Self>, JoinHandle<()>) {
        let (ops, rx) = mpsc::unbounded_channel();
        let wanted = Arc::new(Self {
            ops,
            lost: AtomicBool::new(false),
            restart: AtomicBool::new(false),
            count: AtomicU64::new(0),
        });
        let task = tokio::spawn(wanted.clone().run(apply, rx, cancel));
        (wanted, task)
    }

    /// Wants `item`; the receiver completes once the transport confirmed it.
    pub(super) fn add(&self, item: String) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        // A send fails only once the task has stopped (shutdown): the receiver then reports
        // that nothing was put in place.
        let _ = self.ops.send(Op::Add(item, tx));
        rx
    }

    /// No longer wants `item`.
    pub(super) fn remove(&self, item: String) {
        let _ = self.ops.send(Op::Remove(item));
    }

    /// Follows a roster change: a user or group that came to this spear is wanted under the
    /// name `name` gives its channel (the receiver completes once it is in place), one that
    /// left is not.
    pub(super) fn follow(
        &self,
        change: Change,
        name: impl Fn(Channel) -> String,
    ) -> Option<oneshot::Receiver<()>> {
        match change {
            Change::UserOnline(uid) => Some(self.add(name(Channel::User(uid)))),
            Change::GroupOpened(gid) => Some(self.add(name(Channel::Group(gid)))),
            Change::UserOffline(uid) => {
                self.remove(name(Channel::User(uid)));
                None
            }
            Change::GroupClosed(gid) => {
                self.remove(name(Channel::Group(gid)));
                None
            }
            Change::UserConnections(_) | Change::Member { .. } => None,
        }
    }

    /// What is wanted may have been lost: put it all in place again.
    pub(super) fn lost(&self) {
        self.lost.store(true, Ordering::Release);
    }

    /// The transport is to begin anew ([`Apply::restart`]) and put everything in place again.
    pub(super) fn restart(&self) {
        self.restart.store(true, Ordering::Release);
    }

    /// Items wanted (in place, or to be once the transport is back).
    pub(super) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    async fn run<A: Apply>(
        self: Arc<Self>,
        apply: A,
        mut ops: UnboundedReceiver<Op>,
        cancel: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(REPAIR_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !apply.prepare().await {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
        }
        let mut wanted: HashSet<String> = HashSet::new();
        // Items whose removal failed; a reconnect may have brought them back.
        let mut unwanted: HashSet<String> = HashSet::new();
        let mut seen = apply.reconnections();
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
                    self.apply(&apply, batch, &mut wanted, &mut unwanted).await;
                }
                _ = tick.tick() => {
                    let now = apply.reconnections();
                    if now != seen {
                        seen = now;
                        self.lost();
                    }
                    if self.restart.swap(false, Ordering::AcqRel) {
                        if apply.restart().await {
                            self.lost();
                        } else {
                            self.restart();
                        }
                    }
                    if self.lost.swap(false, Ordering::AcqRel) {
                        self.repair(&apply, &wanted, &mut unwanted).await;
                    }
                    if !self.lost.load(Ordering::Acquire) {
                        apply.tidy().await;
                    }
                }
            }
        }
    }

    /// Applies one batch of changes: the last word on an item wins.
    async fn apply<A: Apply>(
        &self,
        apply: &A,
        batch: Vec<Op>,
        wanted: &mut HashSet<String>,
        unwanted: &mut HashSet<String>,
    ) {
        let mut add = HashSet::new();
        let mut remove = HashSet::new();
        let mut waiters = Vec::new();
        for op in batch {
            match op {
                Op::Add(item, done) => {
                    remove.remove(&item);
                    wanted.insert(item.clone());
                    unwanted.remove(&item);
                    add.insert(item);
                    waiters.push(done);
                }
                Op::Remove(item) => {
                    add.remove(&item);
                    wanted.remove(&item);
                    remove.insert(item);
                }
            }
        }
        self.count.store(wanted.len() as u64, Ordering::Relaxed);
        let add: Vec<String> = add.into_iter().collect();
        let added = add.is_empty() || apply.add(&add).await;
        if !added {
            self.lost();
        }
        let remove: Vec<String> = remove.into_iter().collect();
        if !remove.is_empty() && !apply.remove(&remove).await {
            unwanted.extend(remove);
            self.lost();
        }
        if added {
            for done in waiters {
                let _ = done.send(());
            }
        }
        // Otherwise the waiters are dropped: not confirmed; the repair puts them in place later.
    }

    /// Puts every wanted item in place again, and removes those whose removal failed.
    async fn repair<A: Apply>(
        &self,
        apply: &A,
        wanted: &HashSet<String>,
        unwanted: &mut HashSet<String>,
    ) {
        let all: Vec<String> = wanted.iter().cloned().collect();
        let mut ok = true;
        for chunk in all.chunks(CHUNK) {
            ok &= apply.add(chunk).await;
        }
        let stale: Vec<String> = unwanted.iter().cloned().collect();
        if stale.is_empty() || apply.remove(&stale).await {
            unwanted.clear();
        } else {
            ok = false;
        }
        if ok {
            tracing::info!(items = all.len(), what = A::WHAT, "relay state restored");
        } else {
            self.lost();
        }
    }
}
