//! The history of the one spear of `relay.kind = "local"`, in its memory: lost with the process,
//! which the next epoch says (the epoch is the id of a channel's first message after it, and
//! ids only grow).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use futures_util::future::BoxFuture;

use super::{HistoryError, HistoryStore, Page, Retention, Stored};
use crate::services::relay::{Audience, Position};

/// Appends between two sweeps of idle channels.
const SWEEP_EVERY: u64 = 4096;

#[derive(Debug)]
struct Channel {
    epoch: u64,
    head: u64,
    last_append: Instant,
    /// `(offset, appended at, message)`, oldest first.
    messages: VecDeque<(u64, Instant, Arc<str>)>,
}

#[derive(Debug, Default)]
struct Channels {
    map: HashMap<Audience, Channel>,
    appends: u64,
}

/// Channels' messages in this process.
#[derive(Debug)]
pub struct MemoryStore {
    retention: Retention,
    channels: Mutex<Channels>,
}

impl MemoryStore {
    /// An empty store keeping what `retention` says.
    pub fn new(retention: Retention) -> Self {
        Self {
            retention,
            channels: Mutex::default(),
        }
    }

    fn append_now(&self, channel: Audience, id: u64, message: &str) -> Position {
        let now = Instant::now();
        let max_age = self.retention.max_age;
        let mut all = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        all.appends += 1;
        if all.appends % SWEEP_EVERY == 0 {
            all.map
                .retain(|_, c| now.duration_since(c.last_append) < max_age);
        }
        let c = all.map.entry(channel).or_insert_with(|| Channel {
            epoch: id,
            head: 0,
            last_append: now,
            messages: VecDeque::new(),
        });
        if now.duration_since(c.last_append) >= max_age {
            // Forgotten, as Redis forgets an idle channel: a new epoch.
            *c = Channel {
                epoch: id,
                head: 0,
                last_append: now,
                messages: VecDeque::new(),
            };
        }
        c.head += 1;
        c.last_append = now;
        c.messages.push_back((c.head, now, Arc::from(message)));
        while c.messages.len() as u64 > self.retention.max_messages {
            c.messages.pop_front();
        }
        Position {
            epoch: c.epoch,
            offset: c.head,
        }
    }

    fn open_now(&self, channel: Audience, epoch: u64) -> Position {
        let now = Instant::now();
        let mut all = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        let fresh = Channel {
            epoch,
            head: 0,
            last_append: now,
            messages: VecDeque::new(),
        };
        let c = all.map.entry(channel).or_insert_with(|| Channel {
            messages: VecDeque::new(),
            ..fresh
        });
        if now.duration_since(c.last_append) >= self.retention.max_age {
            *c = Channel {
                messages: VecDeque::new(),
                ..fresh
            };
        }
        Position {
            epoch: c.epoch,
            offset: c.head,
        }
    }

    fn read_now(&self, channel: Audience, after: u64, max: usize) -> Page {
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
    fn append<'a>(
        &'a self,
        channel: Audience,
        id: u64,
        message: &'a str,
    ) -> BoxFuture<'a, Result<Position, HistoryError>> {
        let position = self.append_now(channel, id, message);
        Box::pin(std::future::ready(Ok(position)))
    }

    fn open(&self, channel: Audience, epoch: u64) -> BoxFuture<'_, Result<Position, HistoryError>> {
        Box::pin(std::future::ready(Ok(self.open_now(channel, epoch))))
    }

    fn read(
        &self,
        channel: Audience,
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

    fn store(max_messages: u64, max_age: Duration) -> MemoryStore {
        MemoryStore::new(Retention {
            max_messages,
            max_age,
        })
    }

    #[test]
    fn offsets_grow_by_one_per_channel_in_the_first_ids_epoch() {
        let s = store(10, Duration::from_secs(60));
        let (g, u) = (Audience::Group(1), Audience::User(1));
        assert_eq!(
            s.append_now(g, 100, "{}"),
            Position {
                epoch: 100,
                offset: 1
            }
        );
        assert_eq!(
            s.append_now(g, 101, "{}"),
            Position {
                epoch: 100,
                offset: 2
            }
        );
        assert_eq!(
            s.append_now(u, 102, "{}"),
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
        assert_eq!(s.read_now(Audience::Group(2), 0, 10), Page::default());
    }

    #[test]
    fn retention_trims_by_count_and_age() {
        let s = store(3, Duration::from_millis(200));
        let g = Audience::Group(1);
        for id in 1..=5 {
            s.append_now(g, id, "{}");
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
            s.append_now(g, 9, "{}"),
            Position {
                epoch: 9,
                offset: 1
            }
        );
    }
}
