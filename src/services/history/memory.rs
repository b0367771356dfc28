//! The history of the one spear of `relay.kind = "local"`, in its memory: lost with the process,
//! which the next epoch says (the epoch is the id of a channel's first message after it, and
//! ids only grow).
//!
//! Bounded in bytes (`history.max_memory_bytes`): past it the channels written least recently
//! are forgotten whole, oldest first. A forgotten channel's next message starts a new epoch,
//! so whoever was in it hears of the loss (a `resync`), never a silent gap.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use futures_util::future::BoxFuture;

use super::{
    sent_record_bytes, Appended, FirstSend, HistoryError, HistoryStore, Page, Retention, SentOnce,
    Stored,
};
use crate::services::channel::{Channel, ClientMsgId, Position};

/// Appends between two sweeps of idle channels.
const SWEEP_EVERY: u64 = 4096;
/// What a channel costs beyond its messages (its entry, its place in the order), bytes.
const CHANNEL_COST: u64 = 160;
/// What a message costs beyond its text, bytes.
const MESSAGE_COST: u64 = 48;

#[derive(Debug)]
struct ChannelLog {
    epoch: u64,
    head: u64,
    last_append: Instant,
    /// Its key in [`Channels::order`].
    stamp: u64,
    /// What it holds, as [`MemoryStore`] counts it.
    bytes: u64,
    /// `(offset, appended at, message)`, oldest first.
    messages: VecDeque<(u64, Instant, Arc<str>)>,
    /// The client message ids sent to it within the resend window, by sender.
    sent: HashMap<(Box<str>, ClientMsgId), FirstSend>,
    /// The same, by when they are forgotten, soonest first.
    sent_until: VecDeque<(Instant, Box<str>, ClientMsgId)>,
}

impl ChannelLog {
    /// Forgets the client message ids whose window ended by `now`; returns the bytes freed.
    fn expire_sent(&mut self, now: Instant) -> u64 {
        let mut freed = 0;
        while let Some((until, sender, client_id)) = self.sent_until.front() {
            if *until > now {
                break;
            }
            let cost = sent_record_bytes(sender, client_id);
            self.sent.remove(&(sender.clone(), client_id.clone()));
            self.sent_until.pop_front();
            self.bytes -= cost;
            freed += cost;
        }
        freed
    }
}

#[derive(Debug, Default)]
struct Channels {
    map: HashMap<Channel, ChannelLog>,
    /// Channels by when they were last written, least recently first.
    order: BTreeMap<u64, Channel>,
    stamps: u64,
    bytes: u64,
    appends: u64,
}

impl Channels {
    /// `channel`, made (or made anew, in `epoch`) when absent or idle for `max_age`, and marked
    /// written now.
    fn touch(
        &mut self,
        channel: Channel,
        epoch: u64,
        now: Instant,
        retention: &Retention,
    ) -> &mut ChannelLog {
        let idle = self
            .map
            .get(&channel)
            .is_some_and(|c| now.duration_since(c.last_append) >= retention.max_age);
        if idle {
            // Forgotten, as Redis forgets an idle channel: a new epoch.
            self.forget(channel);
        }
        self.stamps += 1;
        let stamp = self.stamps;
        match self.map.get_mut(&channel) {
            Some(c) => {
                self.order.remove(&c.stamp);
                c.stamp = stamp;
            }
            None => {
                self.bytes += CHANNEL_COST;
                self.map.insert(
                    channel,
                    ChannelLog {
                        epoch,
                        head: 0,
                        last_append: now,
                        stamp,
                        bytes: CHANNEL_COST,
                        messages: VecDeque::new(),
                        sent: HashMap::new(),
                        sent_until: VecDeque::new(),
                    },
                );
            }
        }
        self.order.insert(stamp, channel);
        self.map.get_mut(&channel).expect("made above")
    }

    fn forget(&mut self, channel: Channel) {
        if let Some(c) = self.map.remove(&channel) {
            self.order.remove(&c.stamp);
            self.bytes -= c.bytes;
        }
    }

    /// Forgets the least recently written channels (never `keep`) until at most `max` bytes
    /// are held.
    fn shed(&mut self, max: u64, keep: Channel) {
        while self.bytes > max {
            let Some((_, oldest)) = self.order.iter().find(|(_, c)| **c != keep) else {
                return;
            };
            let oldest = *oldest;
            tracing::debug!(channel = %oldest, "history memory full: a channel forgotten");
            self.forget(oldest);
        }
    }
}

/// Channels' messages in this process.
#[derive(Debug)]
pub struct MemoryStore {
    retention: Retention,
    max_bytes: u64,
    channels: Mutex<Channels>,
}

impl MemoryStore {
    /// An empty store keeping what `retention` says, at most `max_bytes` in all.
    pub fn new(retention: Retention, max_bytes: u64) -> Self {
        Self {
            retention,
            max_bytes,
            channels: Mutex::default(),
        }
    }

    /// Bytes held, as the bound counts them.
    pub fn bytes(&self) -> u64 {
        self.channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .bytes
    }

    fn append_now(
        &self,
        channel: Channel,
        id: u64,
        message: &str,
        once: Option<SentOnce<'_>>,
    ) -> Appended {
        let now = Instant::now();
        let max_age = self.retention.max_age;
        let mut all = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        all.appends += 1;
        if all.appends % SWEEP_EVERY == 0 {
            let idle: Vec<Channel> = all
                .map
                .iter()
                .filter(|(_, c)| now.duration_since(c.last_append) >= max_age)
                .map(|(a, _)| *a)
                .collect();
            for a in idle {
                all.forget(a);
            }
        }
        let size = message.len() as u64 + MESSAGE_COST;
        let mut trimmed = 0;
        let c = all.touch(channel, id, now, &self.retention);
        trimmed += c.expire_sent(now);
        if let Some(once) = once {
            if let Some(first) = c.sent.get(&(once.sender.into(), once.client_id.clone())) {
                let first = *first;
                all.bytes -= trimmed;
                return Appended::Again(first);
            }
        }
        c.head += 1;
        c.last_append = now;
        c.messages.push_back((c.head, now, Arc::from(message)));
        c.bytes += size;
        while c.messages.len() as u64 > self.retention.max_messages {
            if let Some((_, _, gone)) = c.messages.pop_front() {
                let gone = gone.len() as u64 + MESSAGE_COST;
                c.bytes -= gone;
                trimmed += gone;
            }
        }
        let position = Position {
            epoch: c.epoch,
            offset: c.head,
        };
        let mut size = size;
        if let Some(once) = once {
            let first = FirstSend {
                fingerprint: once.fingerprint,
                id: once.id,
                create_time: once.create_time,
                at: position,
            };
            let cost = sent_record_bytes(once.sender, once.client_id);
            c.sent
                .insert((once.sender.into(), once.client_id.clone()), first);
            c.sent_until.push_back((
                now + self.retention.resend_window,
                once.sender.into(),
                once.client_id.clone(),
            ));
            c.bytes += cost;
            size += cost;
        }
        all.bytes = all.bytes + size - trimmed;
        all.shed(self.max_bytes, channel);
        Appended::Stored(position)
    }

    fn open_now(&self, channel: Channel, epoch: u64) -> Position {
        let now = Instant::now();
        let mut all = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        let c = all.touch(channel, epoch, now, &self.retention);
        let position = Position {
            epoch: c.epoch,
            offset: c.head,
        };
        all.shed(self.max_bytes, channel);
        position
    }

    fn read_now(&self, channel: Channel, after: u64, max: usize) -> Page {
        let now = Instant::now();
        let all = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(c) = all.map.get(&channel) else {
            return Page::default();
        };
        if now.duration_since(c.last_append) >= self.retention.max_age {
            return Page::default();
        }
        let entries = c
            .messages
            .iter()
            .filter(|(offset, at, _)| {
                *offset > after && now.duration_since(*at) < self.retention.max_age
            })
            .take(max)
            .map(|(offset, _, message)| Stored {
                offset: *offset,
                message: message.to_string(),
            })
            .collect();
        Page {
            epoch: c.epoch,
            head: c.head,
            entries,
        }
    }
}

impl HistoryStore for MemoryStore {
    fn append_once<'a>(
        &'a self,
        channel: Channel,
        id: u64,
        message: &'a str,
        once: Option<SentOnce<'a>>,
    ) -> BoxFuture<'a, Result<Appended, HistoryError>> {
        let appended = self.append_now(channel, id, message, once);
        Box::pin(std::future::ready(Ok(appended)))
    }

    fn open(&self, channel: Channel, epoch: u64) -> BoxFuture<'_, Result<Position, HistoryError>> {
        Box::pin(std::future::ready(Ok(self.open_now(channel, epoch))))
    }

    fn read(
        &self,
        channel: Channel,
        after: u64,
        max: usize,
    ) -> BoxFuture<'_, Result<Page, HistoryError>> {
        Box::pin(std::future::ready(Ok(self.read_now(channel, after, max))))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    impl MemoryStore {
        /// An append without a client message id.
        fn put(&self, channel: Channel, id: u64, message: &str) -> Position {
            match self.append_now(channel, id, message, None) {
                Appended::Stored(at) => at,
                again => panic!("no client message id, yet {again:?}"),
            }
        }
    }

    #[test]
    fn a_client_msg_id_is_appended_once_per_sender_within_its_window() {
        let s = store(10, Duration::from_secs(60));
        let (g, client_id) = (Channel::Group(1), ClientMsgId::new("c-1").expect("id"));
        let once = |sender: &'static str, id| SentOnce {
            sender,
            client_id: &client_id,
            fingerprint: 7,
            id,
            create_time: 1000 + id,
        };
        let empty = s.bytes();
        let first = s.append_now(g, 100, "{}", Some(once("u1", 100)));
        let at = Position {
            epoch: 100,
            offset: 1,
        };
        assert_eq!(first, Appended::Stored(at));
        let again = s.append_now(g, 101, "{}", Some(once("u1", 101)));
        let remembered = FirstSend {
            fingerprint: 7,
            id: 100,
            create_time: 1100,
            at,
        };
        assert_eq!(again, Appended::Again(remembered));
        assert_eq!(s.read_now(g, 0, 10).head, 1, "the resend stored nothing");
        // Another sender's id of the same text is its own.
        assert_eq!(
            s.append_now(g, 102, "{}", Some(once("u2", 102))),
            Appended::Stored(Position {
                epoch: 100,
                offset: 2
            })
        );
        let with_ids = s.bytes();
        std::thread::sleep(Duration::from_millis(250));
        // Past the window the id is forgotten (and its bytes with it): the next send with it
        // is a new message.
        assert_eq!(
            s.append_now(g, 103, "{}", Some(once("u1", 103))),
            Appended::Stored(Position {
                epoch: 100,
                offset: 3
            })
        );
        assert!(
            s.bytes() < with_ids + MESSAGE_COST + 2,
            "{} bytes",
            s.bytes()
        );
        assert!(s.bytes() > empty);
        assert_eq!(FirstSend::decode(&remembered.encode()), Ok(remembered));
        assert!(FirstSend::decode("1 2 x").is_err());
    }

    fn store(max_messages: u64, max_age: Duration) -> MemoryStore {
        MemoryStore::new(
            Retention {
                max_messages,
                max_age,
                resend_window: Duration::from_millis(200),
            },
            1 << 30,
        )
    }

    #[test]
    fn offsets_grow_by_one_per_channel_in_the_first_ids_epoch() {
        let s = store(10, Duration::from_secs(60));
        let (g, u) = (Channel::Group(1), Channel::User(1));
        assert_eq!(
            s.put(g, 100, "{}"),
            Position {
                epoch: 100,
                offset: 1
            }
        );
        assert_eq!(
            s.put(g, 101, "{}"),
            Position {
                epoch: 100,
                offset: 2
            }
        );
        assert_eq!(
            s.put(u, 102, "{}"),
            Position {
                epoch: 102,
                offset: 1
            }
        );
        let page = s.read_now(g, 0, 10);
        assert_eq!((page.epoch, page.head), (100, 2));
        assert_eq!(
            page.entries.iter().map(|e| e.offset).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(s.read_now(g, 1, 10).entries.len(), 1);
        assert_eq!(s.read_now(g, 0, 1).entries.len(), 1);
        assert_eq!(s.read_now(Channel::Group(2), 0, 10), Page::default());
    }

    #[test]
    fn retention_trims_by_count_and_age() {
        let s = store(3, Duration::from_millis(200));
        let g = Channel::Group(1);
        for id in 1..=5 {
            s.put(g, id, "{}");
        }
        let page = s.read_now(g, 0, 10);
        assert_eq!(
            page.entries.iter().map(|e| e.offset).collect::<Vec<_>>(),
            [3, 4, 5]
        );
        assert!(page.lost_after(0));
        assert!(!page.lost_after(2));
        std::thread::sleep(Duration::from_millis(250));
        // Idle past max_age: forgotten, and the next message starts a new epoch.
        assert_eq!(s.read_now(g, 0, 10), Page::default());
        assert_eq!(
            s.put(g, 9, "{}"),
            Position {
                epoch: 9,
                offset: 1
            }
        );
    }

    #[test]
    fn past_its_bytes_the_least_recently_written_channels_are_forgotten_whole() {
        let retention = Retention {
            max_messages: 1000,
            max_age: Duration::from_secs(60),
            resend_window: Duration::from_secs(60),
        };
        let s = MemoryStore::new(retention, 20_000);
        let kb = "x".repeat(1000);
        let (kept, flood) = (Channel::User(1), |i| Channel::User(100 + i));
        s.put(kept, 1, &kb);
        for i in 0..50 {
            s.put(flood(i), 10 + i, &kb);
            // The one channel still written keeps its place.
            if i % 10 == 0 {
                s.put(kept, 100 + i, &kb);
            }
        }
        assert!(s.bytes() <= 20_000, "{} bytes held", s.bytes());
        assert_eq!(
            s.read_now(flood(0), 0, 10),
            Page::default(),
            "the oldest went"
        );
        assert_eq!(
            s.read_now(kept, 0, 100).entries.len(),
            6,
            "the busy one stayed"
        );
        // A forgotten channel starts again in a new epoch.
        assert_eq!(
            s.put(flood(0), 999, "{}"),
            Position {
                epoch: 999,
                offset: 1
            }
        );
        // Opening channels counts too.
        for i in 0..1000 {
            s.open_now(Channel::Group(i), 5000 + i);
        }
        assert!(s.bytes() <= 20_000, "{} bytes held", s.bytes());
    }
}
