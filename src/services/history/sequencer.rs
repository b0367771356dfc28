//! The one place where a spear decides what its clients of a channel get, and in which order.
//!
//! Every message with a position passes here, whether this spear's own client sent it or the
//! relay brought it: per channel, the sequencer remembers the last offset it delivered (a
//! *cursor*), skips what it already delivered, and fills a gap from the store before
//! delivering what follows it. So a channel is delivered in position order, once, whatever
//! order the relay brought it in (two spears publishing to one group, RocketMQ queues, a
//! message the relay lost while Redis was away).
//!
//! A connection that resumes a channel reads its backlog from the store; its last step runs
//! under the channel's lock, so that no live message slips between the end of the backlog and
//! its entry into the live room ([`Sequencer::catch_up`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::future::BoxFuture;
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::oneshot;

use super::{positioned, EpochSource, HistoryError, HistoryStore, Page, Resync, ResyncReason};
use crate::services::channel::{Channel, Position};
use crate::services::relay::{Delivery, Envelope, Inbound};
use crate::services::spear::roster::{Change, ChangeSink};

/// Messages read from the store per round trip.
const PAGE: usize = 200;
/// Pages a connection reads before it takes the channel's lock for the rest: a backlog is at
/// most `history.max_messages`, so this is a bound, not a limit.
const ROUNDS_OUTSIDE: usize = 500;

/// Where the sequencer hands what the clients of a channel on this spear get (the socket.io
/// rooms).
pub trait Outlet: Send + Sync + 'static {
    /// Delivers `envelope` to every connection of its channel.
    fn deliver(&self, envelope: Envelope) -> BoxFuture<'_, Delivery>;
    /// Tells every connection of `channel` to resync.
    fn resync(&self, channel: Channel, notice: Resync) -> BoxFuture<'_, ()>;
}

/// One connection catching up on one channel.
pub trait Catcher: Send + Sync {
    /// Sends it one replayed message; waits while its send queue is full, and gives up (false)
    /// when the connection is gone or does not read.
    fn send(&self, message: Box<RawValue>) -> BoxFuture<'_, bool>;
    /// Sends it a resync notice.
    fn resync(&self, notice: &Resync);
    /// Puts it in the channel's live room: from now on it gets what the room gets.
    fn go_live(&self);
    /// Whether it may open the history of a channel that has none (spending a fresh id and a
    /// place in the store): its user's budget of new channels says.
    fn may_open(&self) -> bool;
}

/// What a spear knows of a channel's delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cursor {
    /// Nothing yet (no one here asked the store).
    Unknown,
    /// The store had no history for it when asked: its next epoch starts after that.
    Empty,
    /// Delivered up to `last` in `epoch`.
    At { epoch: u64, last: u64 },
}

impl Cursor {
    /// The position delivered up to: epoch 0 at 0 when the channel has no history.
    fn position(self) -> Option<Position> {
        match self {
            Cursor::Unknown => None,
            Cursor::Empty => Some(Position {
                epoch: 0,
                offset: 0,
            }),
            Cursor::At { epoch, last } => Some(Position {
                epoch,
                offset: last,
            }),
        }
    }
}

/// Counters of a sequencer, for `/api/v1/relay`.
#[derive(Debug, Default)]
pub struct SequencerStats {
    /// Messages delivered from the store to fill a gap in what the relay brought.
    pub filled: AtomicU64,
    /// Messages skipped because this spear had delivered them already.
    pub duplicates: AtomicU64,
    /// Messages of an epoch that is no longer the channel's, skipped.
    pub stale: AtomicU64,
    /// Resync notices sent (to rooms and to resuming connections).
    pub resyncs: AtomicU64,
    /// Messages replayed to resuming connections.
    pub replayed: AtomicU64,
}

/// What `/api/v1/relay` shows of the sequencer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SequencerReport {
    /// Whether channels keep a history.
    pub enabled: bool,
    /// See [`SequencerStats`].
    pub filled: u64,
    /// See [`SequencerStats`].
    pub duplicates: u64,
    /// See [`SequencerStats`].
    pub stale: u64,
    /// See [`SequencerStats`].
    pub resyncs: u64,
    /// See [`SequencerStats`].
    pub replayed: u64,
}

type Cell = Arc<tokio::sync::Mutex<Cursor>>;

/// The spear's per-channel delivery order. The relay's [`Inbound`] sink, and a [`ChangeSink`]
/// of the roster (a channel's cursor is dropped with its last recipient here).
pub struct Sequencer {
    store: Option<Arc<dyn HistoryStore>>,
    epochs: Arc<dyn EpochSource>,
    outlet: Arc<dyn Outlet>,
    cells: Mutex<HashMap<Channel, Cell>>,
    stats: SequencerStats,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Sequencer {
    /// Delivers through `outlet`, filling gaps from `store` (`None`: history is off, and
    /// messages pass as they come); opens an empty channel's history in a fresh epoch from
    /// `epochs` when a connection goes live on it.
    pub fn new(
        store: Option<Arc<dyn HistoryStore>>,
        epochs: Arc<dyn EpochSource>,
        outlet: Arc<dyn Outlet>,
    ) -> Self {
        Self {
            store,
            epochs,
            outlet,
            cells: Mutex::default(),
            stats: SequencerStats::default(),
        }
    }

    /// The store, when history is on.
    pub fn store(&self) -> Option<&Arc<dyn HistoryStore>> {
        self.store.as_ref()
    }

    /// The counters.
    pub fn report(&self) -> SequencerReport {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SequencerReport {
            enabled: self.store.is_some(),
            filled: load(&self.stats.filled),
            duplicates: load(&self.stats.duplicates),
            stale: load(&self.stats.stale),
            resyncs: load(&self.stats.resyncs),
            replayed: load(&self.stats.replayed),
        }
    }

    fn cell(&self, channel: Channel) -> Cell {
        let mut cells = self.cells.lock().unwrap_or_else(PoisonError::into_inner);
        cells
            .entry(channel)
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(Cursor::Unknown)))
            .clone()
    }

    /// Whether this spear delivers `channel` in a known epoch (its cursor is at a position).
    /// A cursor busy elsewhere counts as not known: the caller asks the store as it would
    /// without this answer.
    fn delivering(&self, channel: Channel) -> bool {
        let cells = self.cells.lock().unwrap_or_else(PoisonError::into_inner);
        cells
            .get(&channel)
            .and_then(|cell| {
                cell.try_lock()
                    .ok()
                    .map(|c| matches!(*c, Cursor::At { .. }))
            })
            .unwrap_or(false)
    }

    async fn resync_room(&self, channel: Channel, epoch: u64, offset: u64, reason: ResyncReason) {
        bump(&self.stats.resyncs);
        tracing::debug!(%channel, epoch, offset, ?reason, "channel resync");
        self.outlet
            .resync(channel, Resync::new(channel, epoch, offset, reason))
            .await;
    }

    /// Delivers `envelope` in its channel's order (see the module's documentation).
    pub async fn deliver(&self, envelope: Envelope) -> Delivery {
        let (Some(at), Some(store)) = (envelope.position, &self.store) else {
            return self.outlet.deliver(envelope).await;
        };
        let channel = envelope.channel;
        let cell = self.cell(channel);
        let mut cursor = cell.lock().await;
        let last = match *cursor {
            // Delivered before anyone here asked the store: it starts the order.
            Cursor::Unknown => at.offset - 1,
            // The store had nothing: every offset of this epoch is new here.
            Cursor::Empty => 0,
            Cursor::At { epoch, last } if epoch == at.epoch => last,
            Cursor::At { .. } => match head_epoch(store.as_ref(), channel).await {
                // The channel's history was reset: this is its new epoch.
                Some(epoch) if epoch == at.epoch => {
                    self.resync_room(channel, at.epoch, 0, ResyncReason::Epoch)
                        .await;
                    0
                }
                // A message of a history that is gone (or the store cannot say even after a
                // few tries: its next message, or a resume, brings it from the history): skipped.
                _ => {
                    bump(&self.stats.stale);
                    return Delivery::Done;
                }
            },
        };
        if at.offset <= last {
            bump(&self.stats.duplicates);
            return Delivery::Done;
        }
        let mut outcome = Delivery::Done;
        if at.offset > last + 1 {
            outcome = self
                .fill(store.as_ref(), channel, at.epoch, last, at.offset - 1)
                .await;
        }
        *cursor = Cursor::At {
            epoch: at.epoch,
            last: at.offset,
        };
        match (self.outlet.deliver(envelope).await, outcome) {
            (Delivery::Done, Delivery::Done) => Delivery::Done,
            _ => Delivery::SlowClient,
        }
    }

    /// Delivers offsets `after + 1 ..= upto` of `epoch` from the store to the room, or tells
    /// the room they are gone.
    async fn fill(
        &self,
        store: &dyn HistoryStore,
        channel: Channel,
        epoch: u64,
        after: u64,
        upto: u64,
    ) -> Delivery {
        let want = usize::try_from(upto - after).unwrap_or(usize::MAX);
        let page = match store.read(channel, after, want).await {
            Ok(page) if page.epoch == epoch && !page.lost_after(after) => page,
            Ok(page) => {
                let reason = if page.epoch == epoch {
                    ResyncReason::Retention
                } else {
                    ResyncReason::Epoch
                };
                self.resync_room(channel, epoch, upto, reason).await;
                return Delivery::Done;
            }
            Err(e) => {
                tracing::warn!(%channel, error = %e, "a gap in a channel could not be filled");
                self.resync_room(channel, epoch, upto, ResyncReason::Unavailable)
                    .await;
                return Delivery::Done;
            }
        };
        let mut outcome = Delivery::Done;
        for entry in page.entries.into_iter().filter(|e| e.offset <= upto) {
            let position = Position {
                epoch,
                offset: entry.offset,
            };
            let Some(payload) = positioned(&entry.message, channel, position) else {
                continue;
            };
            bump(&self.stats.filled);
            let envelope = Envelope {
                channel,
                position: Some(position),
                payload,
            };
            if self.outlet.deliver(envelope).await == Delivery::SlowClient {
                outcome = Delivery::SlowClient;
            }
        }
        outcome
    }

    /// Brings `catcher` into `channel`: with `from` (the client's last position), every message
    /// after it, in order, then the live room, or a resync when they are gone; without, the
    /// live room at once (and the channel's cursor learnt, so that later gaps can be filled).
    /// Returns the position the connection went live after — what it presents next time if no
    /// message comes before — or `None` when that is unknown (history off or unreadable).
    pub async fn catch_up(
        &self,
        channel: Channel,
        from: Option<Position>,
        catcher: &dyn Catcher,
    ) -> Option<Position> {
        let Some(store) = &self.store else {
            if let Some(from) = from {
                bump(&self.stats.resyncs);
                catcher.resync(&Resync::new(
                    channel,
                    from.epoch,
                    from.offset,
                    ResyncReason::Unavailable,
                ));
            }
            catcher.go_live();
            return None;
        };
        let Some(mut at) = from else {
            return self.join_live(store.as_ref(), channel, catcher).await;
        };
        // The bulk of the backlog, while live messages flow.
        for _ in 0..ROUNDS_OUTSIDE {
            let Ok(page) = store.read(channel, at.offset, PAGE).await else {
                break;
            };
            if page.epoch != at.epoch || page.lost_after(at.offset) || page.entries.is_empty() {
                break;
            }
            let full = page.entries.len() == PAGE;
            for entry in page.entries {
                if !self.replay(catcher, channel, at.epoch, entry).await {
                    return None;
                }
                at.offset += 1;
            }
            if !full {
                break;
            }
        }
        // The rest, and the room, with the channel's deliveries held.
        let cell = self.cell(channel);
        let mut cursor = cell.lock().await;
        let room = match *cursor {
            Cursor::At { epoch, last } => Some(Position {
                epoch,
                offset: last,
            }),
            Cursor::Unknown | Cursor::Empty => None,
        };
        let low = match room {
            Some(r) if r.epoch == at.epoch => r.offset.min(at.offset),
            _ => at.offset,
        };
        let page = match read_to_head(store.as_ref(), channel, low).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(%channel, error = %e, "a resume could not read the history");
                // The connection goes live without its backlog. It is told where its live
                // messages continue after: the room's place when this spear knows it, else the
                // place it presented — which the room then keeps, so that a message of another
                // epoch (the history came back empty) is announced with a resync, not passed
                // on as if the epoch had not changed.
                let told = match *cursor {
                    Cursor::Unknown => {
                        *cursor = Cursor::At {
                            epoch: at.epoch,
                            last: at.offset,
                        };
                        at
                    }
                    known => known.position().unwrap_or(at),
                };
                bump(&self.stats.resyncs);
                catcher.resync(&Resync::new(
                    channel,
                    told.epoch,
                    told.offset,
                    ResyncReason::Unavailable,
                ));
                catcher.go_live();
                return None;
            }
        };
        let mut page = self.opened(store.as_ref(), channel, page, catcher).await;
        // A new epoch is replayed from its start (as far as it is kept): everything in it came
        // after the loss.
        let stale = |p: Option<Position>| p.is_some_and(|p| p.epoch != page.epoch);
        if page.epoch != 0 && low > 0 && (stale(room) || stale(Some(at))) {
            match read_to_head(store.as_ref(), channel, 0).await {
                Ok(full) => page = full,
                Err(e) => tracing::warn!(%channel, error = %e, "a new epoch could not be read"),
            }
        }
        // The room first: it must be at the head before the connection joins it.
        *cursor = self.advance_room(channel, room, &page).await;
        if page.epoch == at.epoch && page.lost_after(at.offset) {
            bump(&self.stats.resyncs);
            let notice = Resync::new(channel, page.epoch, page.head, ResyncReason::Retention);
            catcher.resync(&notice);
        } else {
            let after = if page.epoch == at.epoch {
                at.offset
            } else {
                bump(&self.stats.resyncs);
                let start = page.start();
                let notice = Resync::new(channel, page.epoch, start, ResyncReason::Epoch);
                catcher.resync(&notice);
                start
            };
            for entry in page.entries.into_iter().filter(|e| e.offset > after) {
                if !self.replay(catcher, channel, page.epoch, entry).await {
                    return None;
                }
            }
        }
        catcher.go_live();
        cursor.position()
    }

    /// Delivers to the room what `page` holds after the room's cursor (`page` was read from at
    /// most the cursor in the cursor's epoch, or from the start of a new epoch), and returns the
    /// cursor at the page's head.
    async fn advance_room(&self, channel: Channel, room: Option<Position>, page: &Page) -> Cursor {
        if page.epoch == 0 {
            return Cursor::Empty;
        }
        let after = match room {
            Some(r) if r.epoch == page.epoch && page.lost_after(r.offset) => {
                self.resync_room(channel, page.epoch, page.head, ResyncReason::Retention)
                    .await;
                page.head
            }
            Some(r) if r.epoch == page.epoch => r.offset,
            Some(_) => {
                let start = page.start();
                self.resync_room(channel, page.epoch, start, ResyncReason::Epoch)
                    .await;
                start
            }
            None => page.head,
        };
        for entry in page.entries.iter().filter(|e| e.offset > after) {
            let position = Position {
                epoch: page.epoch,
                offset: entry.offset,
            };
            if let Some(payload) = positioned(&entry.message, channel, position) {
                bump(&self.stats.filled);
                let envelope = Envelope {
                    channel,
                    position: Some(position),
                    payload,
                };
                self.outlet.deliver(envelope).await;
            }
        }
        Cursor::At {
            epoch: page.epoch,
            last: page.head,
        }
    }

    async fn replay(
        &self,
        catcher: &dyn Catcher,
        channel: Channel,
        epoch: u64,
        entry: super::Stored,
    ) -> bool {
        let position = Position {
            epoch,
            offset: entry.offset,
        };
        let Some(payload) = positioned(&entry.message, channel, position) else {
            return true;
        };
        bump(&self.stats.replayed);
        catcher.send(payload).await
    }

    /// Puts `catcher` in `channel`'s live room without a backlog, and returns where it went
    /// live. The head is read *before* it joins: a message appended after that read reaches
    /// it whenever the relay brings it (its offset is past the cursor), one appended before is
    /// not owed to it. Reading the head after joining would let the cursor jump past a message
    /// still on its way, which would then be skipped as delivered — to a connection that was
    /// already in the room.
    async fn join_live(
        &self,
        store: &dyn HistoryStore,
        channel: Channel,
        catcher: &dyn Catcher,
    ) -> Option<Position> {
        // A channel this spear already delivers (another connection here is in it) has its
        // cursor, which the store's head would not change: the store is not asked. A join to
        // a group with members on this spear costs no round trip.
        let head = if self.delivering(channel) {
            None
        } else {
            match store.read(channel, u64::MAX, 0).await {
                Ok(page) => Some(self.opened(store, channel, page, catcher).await),
                Err(e) => {
                    tracing::debug!(%channel, error = %e, "channel head unknown");
                    None
                }
            }
        };
        catcher.go_live();
        let cell = self.cell(channel);
        let mut cursor = cell.lock().await;
        if let (Cursor::Unknown, Some(page)) = (*cursor, head) {
            *cursor = if page.epoch == 0 {
                Cursor::Empty
            } else {
                Cursor::At {
                    epoch: page.epoch,
                    last: page.head,
                }
            };
        }
        cursor.position()
    }

    /// `page` as it is, or, for a channel without history, the history opened in a fresh
    /// epoch for `catcher` (still epoch 0 when it may not open one, or no id or no store
    /// answer can be had: the channel's first message opens it then).
    async fn opened(
        &self,
        store: &dyn HistoryStore,
        channel: Channel,
        page: Page,
        catcher: &dyn Catcher,
    ) -> Page {
        if page.epoch != 0 || !catcher.may_open() {
            return page;
        }
        let Some(epoch) = self.epochs.fresh().await else {
            return page;
        };
        match store.open(channel, epoch).await {
            Ok(at) => Page {
                epoch: at.epoch,
                head: at.offset,
                entries: Vec::new(),
            },
            Err(e) => {
                tracing::debug!(%channel, error = %e, "a channel's history could not be opened");
                page
            }
        }
    }
}

/// The epoch of `channel`'s history now. A message of another epoch than the room's is only
/// delivered once the store confirms its epoch is the channel's, so a store that does not
/// answer (Redis coming back) is asked again a few times, over about a second and a half,
/// before the message is left to the history.
async fn head_epoch(store: &dyn HistoryStore, channel: Channel) -> Option<u64> {
    let mut pause = std::time::Duration::from_millis(50);
    for _ in 0..5 {
        match store.read(channel, u64::MAX, 0).await {
            Ok(page) => return Some(page.epoch),
            Err(e) => {
                tracing::debug!(%channel, error = %e, "a channel's epoch unknown; asking again")
            }
        }
        tokio::time::sleep(pause).await;
        pause *= 2;
    }
    None
}

/// Every message of `channel` after `after`, up to its head, in pages. If the epoch changes
/// between two pages, the last page (of the new epoch) is returned: its caller sees the change.
async fn read_to_head(
    store: &dyn HistoryStore,
    channel: Channel,
    after: u64,
) -> Result<Page, HistoryError> {
    let mut page = store.read(channel, after, PAGE).await?;
    let mut got = page.entries.len();
    while got == PAGE {
        let last = page.entries.last().map_or(after, |e| e.offset);
        if last >= page.head {
            break;
        }
        let more = store.read(channel, last, PAGE).await?;
        if more.epoch != page.epoch {
            return Ok(more);
        }
        got = more.entries.len();
        page.head = more.head;
        page.entries.extend(more.entries);
    }
    Ok(page)
}

impl Inbound for Sequencer {
    async fn deliver(&self, envelope: Envelope) -> Delivery {
        Sequencer::deliver(self, envelope).await
    }
}

impl ChangeSink for Sequencer {
    fn changed(&self, change: Change) -> Option<oneshot::Receiver<()>> {
        let gone = match change {
            Change::UserOffline(uid) => Channel::User(uid),
            Change::GroupClosed(gid) => Channel::Group(gid),
            _ => return None,
        };
        let mut cells = self.cells.lock().unwrap_or_else(PoisonError::into_inner);
        cells.remove(&gone);
        None
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::services::history::{Appended, MemoryStore, Retention, SentOnce};

    /// What a room or a connection got: `Msg(offset)` or `Resync(epoch, offset)`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Got {
        Msg(u64),
        Resync(u64, u64),
    }

    #[derive(Default)]
    struct Record(Mutex<Vec<Got>>);

    impl Record {
        fn take(&self) -> Vec<Got> {
            std::mem::take(&mut *self.0.lock().expect("record"))
        }

        fn push(&self, got: Got) {
            self.0.lock().expect("record").push(got);
        }
    }

    fn offset_of(payload: &RawValue) -> u64 {
        let v: serde_json::Value = serde_json::from_str(payload.get()).expect("JSON");
        v["position"].as_u64().expect("position")
    }

    impl Outlet for Record {
        fn deliver(&self, envelope: Envelope) -> BoxFuture<'_, Delivery> {
            self.push(Got::Msg(offset_of(&envelope.payload)));
            Box::pin(std::future::ready(Delivery::Done))
        }

        fn resync(&self, _: Channel, notice: Resync) -> BoxFuture<'_, ()> {
            let epoch = notice.epoch.parse().expect("epoch");
            self.push(Got::Resync(epoch, notice.position));
            Box::pin(std::future::ready(()))
        }
    }

    impl Catcher for Record {
        fn send(&self, message: Box<RawValue>) -> BoxFuture<'_, bool> {
            self.push(Got::Msg(offset_of(&message)));
            Box::pin(std::future::ready(true))
        }

        fn resync(&self, notice: &Resync) {
            self.push(Got::Resync(
                notice.epoch.parse().expect("epoch"),
                notice.position,
            ));
        }

        fn go_live(&self) {}

        fn may_open(&self) -> bool {
            true
        }
    }

    const G: Channel = Channel::Group(7);

    /// Fresh ids from 1000 up.
    struct Counter(AtomicU64);

    impl EpochSource for Counter {
        fn fresh(&self) -> BoxFuture<'_, Option<u64>> {
            Box::pin(std::future::ready(Some(
                1000 + self.0.fetch_add(1, Ordering::Relaxed),
            )))
        }
    }

    fn epochs() -> Arc<dyn EpochSource> {
        Arc::new(Counter(AtomicU64::new(0)))
    }

    fn setup(max_messages: u64) -> (Arc<MemoryStore>, Arc<Record>, Sequencer) {
        let store = Arc::new(MemoryStore::new(
            Retention {
                max_messages,
                max_age: Duration::from_secs(60),
                resend_window: Duration::from_secs(60),
            },
            1 << 30,
        ));
        let room = Arc::new(Record::default());
        let seq = Sequencer::new(Some(store.clone()), epochs(), room.clone());
        (store, room, seq)
    }

    /// Appends a message to `G` and returns its envelope.
    async fn append(store: &MemoryStore, id: u64) -> Envelope {
        let message = format!(r#"{{"id":{id}}}"#);
        let at = store.append(G, id, &message).await.expect("append");
        Envelope {
            channel: G,
            position: Some(at),
            payload: positioned(&message, G, at).expect("JSON"),
        }
    }

    #[tokio::test]
    async fn a_join_to_a_channel_delivered_here_does_not_ask_the_store() {
        let store = Arc::new(Flaky::up());
        let inner = store.now().expect("up");
        let room = Arc::new(Record::default());
        let seq = Sequencer::new(Some(store.clone()), epochs(), room.clone());
        let reads = || store.reads.load(Ordering::Relaxed);
        // The first connection asks the store, and opens the channel in epoch 1000.
        let first = seq.catch_up(G, None, room.as_ref()).await;
        assert_eq!(
            first,
            Some(Position {
                epoch: 1000,
                offset: 0
            })
        );
        assert_eq!(reads(), 1);
        let e = append(&inner, 1).await;
        seq.deliver(e).await;
        // The next goes live where this spear delivered up to, without a read.
        let second = seq.catch_up(G, None, &Record::default()).await;
        assert_eq!(
            second,
            Some(Position {
                epoch: 1000,
                offset: 1
            })
        );
        assert_eq!(reads(), 1);
        // A channel this spear does not deliver is read.
        seq.catch_up(Channel::Group(8), None, &Record::default())
            .await;
        assert_eq!(reads(), 2);
        // Once forgotten (its last recipient left), the channel is read again.
        seq.changed(Change::GroupClosed(7));
        let again = seq.catch_up(G, None, &Record::default()).await;
        assert_eq!(
            again,
            Some(Position {
                epoch: 1000,
                offset: 1
            })
        );
        assert_eq!(reads(), 3);
    }

    #[tokio::test]
    async fn out_of_order_arrivals_are_filled_from_the_store_and_delivered_once() {
        let (store, room, seq) = setup(100);
        seq.catch_up(G, None, room.as_ref()).await;
        let e1 = append(&store, 100).await;
        let e2 = append(&store, 101).await;
        let e3 = append(&store, 102).await;
        seq.deliver(e3).await;
        seq.deliver(e1).await;
        seq.deliver(e2).await;
        assert_eq!(room.take(), [Got::Msg(1), Got::Msg(2), Got::Msg(3)]);
        let r = seq.report();
        assert_eq!((r.filled, r.duplicates), (2, 2));
    }

    #[tokio::test]
    async fn a_resume_replays_what_was_missed_then_joins_at_the_head() {
        let (store, room, seq) = setup(100);
        seq.catch_up(G, None, room.as_ref()).await;
        for id in 1..=5 {
            let e = append(&store, id).await;
            seq.deliver(e).await;
        }
        room.take();
        let client = Record::default();
        // The first connection opened the channel in a fresh epoch (1000), at offset 0.
        let from = Position {
            epoch: 1000,
            offset: 2,
        };
        seq.catch_up(G, Some(from), &client).await;
        assert_eq!(client.take(), [Got::Msg(3), Got::Msg(4), Got::Msg(5)]);
        // Appended but not yet arrived here when the connection resumed: the room gets it
        // before the connection joins, and the relay's copy later is a duplicate.
        let late = append(&store, 6).await;
        let client = Record::default();
        seq.catch_up(G, Some(from), &client).await;
        assert_eq!(room.take(), [Got::Msg(6)]);
        assert_eq!(
            client.take(),
            [Got::Msg(3), Got::Msg(4), Got::Msg(5), Got::Msg(6)]
        );
        seq.deliver(late).await;
        assert_eq!(room.take(), []);
    }

    #[tokio::test]
    async fn a_lost_backlog_or_a_new_epoch_is_a_resync_never_a_replay() {
        let (store, _room, seq) = setup(3);
        for id in 1..=6 {
            append(&store, id).await;
        }
        // Offsets 1..=3 were trimmed: the client at 1 cannot be brought up to date.
        let client = Record::default();
        seq.catch_up(
            G,
            Some(Position {
                epoch: 1,
                offset: 1,
            }),
            &client,
        )
        .await;
        assert_eq!(client.take(), [Got::Resync(1, 6)]);
        // At 3 it can (4, 5, 6 are kept).
        let client = Record::default();
        seq.catch_up(
            G,
            Some(Position {
                epoch: 1,
                offset: 3,
            }),
            &client,
        )
        .await;
        assert_eq!(client.take(), [Got::Msg(4), Got::Msg(5), Got::Msg(6)]);
        // A position in an epoch the channel no longer has: a resync to where what is kept of
        // the current epoch starts, then what is kept (it all came after the loss).
        let client = Record::default();
        seq.catch_up(
            G,
            Some(Position {
                epoch: 99,
                offset: 6,
            }),
            &client,
        )
        .await;
        let want = [Got::Resync(1, 3), Got::Msg(4), Got::Msg(5), Got::Msg(6)];
        assert_eq!(client.take(), want);
        // History off: whoever presents a position is told.
        let off = Sequencer::new(None, epochs(), Arc::new(Record::default()));
        let client = Record::default();
        off.catch_up(
            G,
            Some(Position {
                epoch: 1,
                offset: 3,
            }),
            &client,
        )
        .await;
        assert!(matches!(client.take()[..], [Got::Resync(1, 3)]));
    }

    /// A message of `G` at `at` as the relay brings it, whatever the store holds.
    fn relayed(at: Position) -> Envelope {
        Envelope {
            channel: G,
            position: Some(at),
            payload: positioned("{}", G, at).expect("JSON"),
        }
    }

    #[tokio::test]
    async fn a_new_epoch_is_announced_to_the_room_before_its_first_message() {
        let (store, room, seq) = setup(100);
        // The room is at offset 9 of epoch 1, a history the store no longer has (it was lost).
        seq.deliver(relayed(Position {
            epoch: 1,
            offset: 9,
        }))
        .await;
        assert_eq!(room.take(), [Got::Msg(9)]);
        // The channel's next message starts its history again, in epoch 50 (the message's id).
        seq.deliver(append(&store, 50).await).await;
        assert_eq!(room.take(), [Got::Resync(50, 0), Got::Msg(1)]);
        assert_eq!(seq.report().resyncs, 1);
    }

    #[tokio::test]
    async fn a_straggler_of_an_epoch_the_channel_left_is_skipped() {
        let (store, room, seq) = setup(100);
        seq.deliver(append(&store, 50).await).await;
        assert_eq!(room.take(), [Got::Msg(1)]);
        // A message of epoch 1, which the store does not have, arrives late: not delivered.
        seq.deliver(relayed(Position {
            epoch: 1,
            offset: 9,
        }))
        .await;
        assert_eq!(room.take(), []);
        assert_eq!(seq.report().stale, 1);
    }

    /// A store that can be down, and comes back empty (a Redis restarted without its data);
    /// it counts the reads it is asked for.
    struct Flaky {
        store: Mutex<Arc<MemoryStore>>,
        down: std::sync::atomic::AtomicBool,
        reads: AtomicU64,
    }

    impl Flaky {
        fn up() -> Self {
            let flaky = Self {
                store: Mutex::new(Arc::new(MemoryStore::new(
                    Retention {
                        max_messages: 100,
                        max_age: Duration::from_secs(60),
                        resend_window: Duration::from_secs(60),
                    },
                    1 << 30,
                ))),
                down: std::sync::atomic::AtomicBool::new(false),
                reads: AtomicU64::new(0),
            };
            flaky.restart_empty();
            flaky
        }

        fn now(&self) -> Result<Arc<MemoryStore>, HistoryError> {
            if self.down.load(Ordering::Relaxed) {
                return Err(HistoryError::Unavailable("down".into()));
            }
            Ok(self.store.lock().expect("store").clone())
        }

        fn restart_empty(&self) {
            *self.store.lock().expect("store") = Arc::new(MemoryStore::new(
                Retention {
                    max_messages: 100,
                    max_age: Duration::from_secs(60),
                    resend_window: Duration::from_secs(60),
                },
                1 << 30,
            ));
            self.down.store(false, Ordering::Relaxed);
        }
    }

    impl HistoryStore for Flaky {
        fn append_once<'a>(
            &'a self,
            channel: Channel,
            id: u64,
            message: &'a str,
            once: Option<SentOnce<'a>>,
        ) -> BoxFuture<'a, Result<Appended, HistoryError>> {
            Box::pin(async move { self.now()?.append_once(channel, id, message, once).await })
        }

        fn open(
            &self,
            channel: Channel,
            epoch: u64,
        ) -> BoxFuture<'_, Result<Position, HistoryError>> {
            Box::pin(async move { self.now()?.open(channel, epoch).await })
        }

        fn read(
            &self,
            channel: Channel,
            after: u64,
            max: usize,
        ) -> BoxFuture<'_, Result<Page, HistoryError>> {
            bump(&self.reads);
            Box::pin(async move { self.now()?.read(channel, after, max).await })
        }
    }

    #[tokio::test]
    async fn a_resume_while_the_history_is_down_is_told_of_the_epoch_that_follows() {
        let flaky = Arc::new(Flaky::up());
        let room = Arc::new(Record::default());
        let seq = Sequencer::new(Some(flaky.clone()), epochs(), room.clone());
        // The channel had epoch 1 up to 3 (a message id is a new channel's epoch).
        let store = flaky.now().expect("up");
        for id in 1..=3 {
            store.append(G, id, "{}").await.expect("append");
        }
        // A client resumes at 1.2 while the history is down: it is told so, at the place it
        // presented, and goes live.
        flaky.down.store(true, Ordering::Relaxed);
        let client = Record::default();
        let from = Position {
            epoch: 1,
            offset: 2,
        };
        assert_eq!(seq.catch_up(G, Some(from), &client).await, None);
        assert_eq!(client.take(), [Got::Resync(1, 2)]);
        // The history comes back empty; the channel's next message starts epoch 77.
        flaky.restart_empty();
        let message = r#"{"id":77}"#;
        let store = flaky.now().expect("up");
        let at = store.append(G, 77, message).await.expect("append");
        let envelope = Envelope {
            channel: G,
            position: Some(at),
            payload: positioned(message, G, at).expect("JSON"),
        };
        seq.deliver(envelope).await;
        // The room (the client in it) hears of the new epoch before its first message.
        assert_eq!(room.take(), [Got::Resync(77, 0), Got::Msg(1)]);
    }

    #[tokio::test]
    async fn a_channel_is_forgotten_with_its_last_recipient() {
        let (store, room, seq) = setup(100);
        seq.catch_up(G, None, room.as_ref()).await;
        seq.deliver(append(&store, 1).await).await;
        assert_eq!(seq.cells.lock().expect("cells").len(), 1);
        seq.changed(Change::GroupClosed(7));
        assert!(seq.cells.lock().expect("cells").is_empty());
    }
}
