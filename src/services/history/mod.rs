//! Message history: what each channel (a user's, a group's) keeps of its recent messages, so
//! that nothing acknowledged is lost to a client that reconnects — to any spear — and no gap
//! goes unannounced (`docs/api.md`, "Resume"; where it lives: `docs/relay.md`).
//!
//! # The contract
//!
//! - A `msg` is [`HistoryStore::append`]ed before it is relayed and before its sender's ack, and
//!   takes the channel's next [`Position`]: the channel's epoch and an offset that grows by one
//!   per message. Every delivery carries it (`channel`, `epoch`, `position`, spliced into the
//!   payload by [`positioned`]).
//! - The epoch changes whenever the history behind it was lost (Redis restarted empty, the
//!   channel idle past `history.max_age_secs`): it is the id of the message that started the
//!   new history, so an old position can never be mistaken for a new one.
//! - A spear delivers each channel in position order, once ([`Sequencer`]): what arrives out of
//!   order, or after a loss in the relay, is filled from the store; what it has delivered is
//!   skipped. A connection that resumes gets its backlog from the store, then joins the live
//!   room at the exact position where the backlog ended, or a [`Resync`] when the backlog is
//!   gone.
//!
//! Stores: [`RedisStore`] (a stream and a small hash per channel, one Lua script per append)
//! for every relay that travels, [`MemoryStore`] for the one spear of `relay.kind = "local"`.

mod memory;
mod redis;
mod sequencer;

use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::services::channel::{Channel, ClientMsgId, Position};
use crate::services::relay::PublishRoute;

pub use self::redis::{renew_every, RedisStore};
pub use memory::MemoryStore;
pub use sequencer::{Catcher, Outlet, Sequencer, SequencerReport, SequencerStats};

/// How much a channel keeps, from `[history]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Messages kept per channel (at least).
    pub max_messages: u64,
    /// How long a message stays replayable; an idle channel is forgotten after it.
    pub max_age: Duration,
    /// How long a channel remembers its senders' client message ids.
    pub resend_window: Duration,
}

impl Retention {
    /// The retention `[history]` asks for.
    pub fn new(section: &crate::config::HistorySection) -> Self {
        Self {
            max_messages: section.max_messages,
            max_age: Duration::from_secs(section.max_age_secs),
            resend_window: Duration::from_secs(section.resend_window_secs),
        }
    }
}

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Its offset in the epoch.
    pub offset: u64,
    /// The message as it was appended (without its position).
    pub message: String,
}

/// A slice of a channel's history, as [`HistoryStore::read`] found it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    /// The channel's current epoch; 0 when the channel has no history.
    pub epoch: u64,
    /// The offset of its newest message (0 without history).
    pub head: u64,
    /// Messages after the offset asked for, oldest first, in consecutive offsets — the first
    /// is not `after + 1` when older ones were trimmed or are past `max_age`.
    pub entries: Vec<Stored>,
}

impl Page {
    /// The offset right before the page's first message (its head when it has none): where a
    /// reader of a new epoch starts.
    pub fn start(&self) -> u64 {
        self.entries.first().map_or(self.head, |e| e.offset - 1)
    }

    /// Whether the message right after `after` is missing from the page although the channel
    /// has it: trimmed, or too old to replay (the page was read from `after` or before).
    pub fn lost_after(&self, after: u64) -> bool {
        after < self.head && !self.entries.iter().any(|e| e.offset == after + 1)
    }
}

/// Why the history could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// The store cannot be reached, or refused: nothing was written.
    #[error("history unavailable: {0}")]
    Unavailable(String),
    /// A write whose outcome is unknown: the store did not answer in time, or the connection
    /// broke with the write on it. The message may be stored; then it reaches its recipients
    /// from the history (a gap filled, a resume), once.
    #[error("history unavailable, the message may be stored all the same: {0}")]
    Uncertain(String),
    /// The store answered something this version of gru cannot read.
    #[error("history: unexpected answer from the store: {0}")]
    Corrupt(String),
}

/// A message sent with a client message id: its channel appends it once per
/// [`Retention::resend_window`], whichever spear appends it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentOnce<'a> {
    /// Who sends it (ids are per sender): `u<uid>` for a user, `s<name>` for a server.
    pub sender: &'a str,
    /// The client's id for the message.
    pub client_id: &'a ClientMsgId,
    /// What the message is (target and content), so that an id used again for another
    /// message is told apart.
    pub fingerprint: u64,
    /// The message's id and creation time, remembered for the resends' acks.
    pub id: u64,
    /// Milliseconds.
    pub create_time: u64,
}

/// What remembering a message's client message id costs in its channel's store beyond the
/// sender's key and the id themselves, bytes (the record's value and its keeping).
pub const SENT_RECORD_BYTES: u64 = 96;

/// What the record of `client_id` sent by `sender` (a [`SentOnce::sender`]) costs, bytes:
/// counted in the memory store's bound and in the sender's history budget.
pub fn sent_record_bytes(sender: &str, client_id: &ClientMsgId) -> u64 {
    SENT_RECORD_BYTES + (sender.len() + client_id.as_str().len()) as u64
}

/// The first append of a message sent with a client message id, as its resend finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstSend {
    /// The first send's [`SentOnce::fingerprint`].
    pub fingerprint: u64,
    /// Its message id.
    pub id: u64,
    /// Its creation time, ms.
    pub create_time: u64,
    /// Where it was stored.
    pub at: Position,
}

impl FirstSend {
    /// As the stores keep it: `fingerprint id create_time epoch offset`, in decimal.
    pub fn encode(&self) -> String {
        format!(
            "{} {} {} {} {}",
            self.fingerprint, self.id, self.create_time, self.at.epoch, self.at.offset
        )
    }

    /// What [`FirstSend::encode`] wrote.
    pub fn decode(text: &str) -> Result<Self, HistoryError> {
        let corrupt = || HistoryError::Corrupt(format!("{text:?} is not a first send"));
        let mut parts = text.split(' ').map(str::parse::<u64>);
        let mut next = || parts.next().and_then(Result::ok).ok_or_else(corrupt);
        Ok(Self {
            fingerprint: next()?,
            id: next()?,
            create_time: next()?,
            at: Position {
                epoch: next()?,
                offset: next()?,
            },
        })
    }
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// The message is stored, at this position.
    Stored(Position),
    /// Its client message id was appended before (within the window): nothing was stored.
    Again(FirstSend),
}

/// Where channels keep their messages.
pub trait HistoryStore: Send + Sync {
    /// Stores `message` (a JSON object, without position) as `channel`'s next message and
    /// returns its position. `id` (the message's id, unique and never reused) becomes the epoch
    /// if the channel has no history yet.
    fn append<'a>(
        &'a self,
        channel: Channel,
        id: u64,
        message: &'a str,
    ) -> BoxFuture<'a, Result<Position, HistoryError>> {
        Box::pin(async move {
            match self.append_once(channel, id, message, None).await? {
                Appended::Stored(at) => Ok(at),
                Appended::Again(first) => Err(HistoryError::Corrupt(format!(
                    "an append without a client message id found a first send: {first:?}"
                ))),
            }
        })
    }

    /// [`HistoryStore::append`], once per `once` (when given) within the resend window: in
    /// one step with the append, so two spears appending the same send store it once.
    fn append_once<'a>(
        &'a self,
        channel: Channel,
        id: u64,
        message: &'a str,
        once: Option<SentOnce<'a>>,
    ) -> BoxFuture<'a, Result<Appended, HistoryError>>;

    /// [`HistoryStore::append_once`], and in the same step the relay's publish of the message
    /// (positioned, as [`positioned`] writes it) on `route`, when this store can (Redis, on the
    /// link the relay uses): one round trip instead of two. `None` when it cannot; then the
    /// publisher appends and publishes apart. A message found [`Appended::Again`] is not
    /// published again.
    fn append_and_publish<'a>(
        &'a self,
        _channel: Channel,
        _id: u64,
        _message: &'a str,
        _once: Option<SentOnce<'a>>,
        _route: &'a PublishRoute,
    ) -> Option<BoxFuture<'a, Result<Appended, HistoryError>>> {
        None
    }

    /// Opens `channel`'s history if it has none, with epoch `epoch` (a fresh id) at offset 0,
    /// and returns its epoch and head: a connection that goes live on an empty channel has a
    /// position to resume from, in an epoch that a later loss changes.
    fn open(&self, channel: Channel, epoch: u64) -> BoxFuture<'_, Result<Position, HistoryError>>;

    /// Reads at most `max` messages of `channel` after offset `after`, with the channel's
    /// epoch and head.
    fn read(
        &self,
        channel: Channel,
        after: u64,
        max: usize,
    ) -> BoxFuture<'_, Result<Page, HistoryError>>;
}

/// Where new epochs come from: fresh ids, unique and never reused (the spear's idgen).
pub trait EpochSource: Send + Sync {
    /// A fresh id; `None` when none can be had now.
    fn fresh(&self) -> BoxFuture<'_, Option<u64>>;
}

impl EpochSource for super::idgen::IdService {
    fn fresh(&self) -> BoxFuture<'_, Option<u64>> {
        // Within `idgen.wait_ms`: without a leader (strict mode), a channel with no history
        // goes live at epoch 0 ("no history yet") and the first message, which needs an id
        // as much, starts its epoch. An epoch is a message id so that epochs only grow.
        Box::pin(async move {
            let blocks = self.issue(1).await.ok()?;
            blocks.first().map(|b| b.first)
        })
    }
}

/// Why a connection is told to resync a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResyncReason {
    /// The channel's history was lost or reset since the client's position: a new epoch.
    Epoch,
    /// The messages after the client's position were trimmed or are older than
    /// `history.max_age_secs`.
    Retention,
    /// History is turned off on this cluster, or could not be read.
    Unavailable,
}

/// The `resync` event: the history of `channel` before (`epoch`, `position`) cannot be
/// replayed; live messages continue after it. The application reloads from its own store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resync {
    /// `u:<uid>` or `g:<gid>`.
    pub channel: String,
    /// The epoch to continue in, as a decimal string (JavaScript numbers lose 64-bit ids).
    pub epoch: String,
    /// The offset the next message follows.
    pub position: u64,
    /// Why.
    pub reason: ResyncReason,
}

impl Resync {
    /// The notice for `channel`, continuing after (`epoch`, `offset`).
    pub fn new(channel: Channel, epoch: u64, offset: u64, reason: ResyncReason) -> Self {
        Self {
            channel: channel.to_string(),
            epoch: epoch.to_string(),
            position: offset,
            reason,
        }
    }
}

/// `message` (a JSON object) with its place spliced in as its last fields:
/// `"channel":"g:10","epoch":"<epoch>","position":<offset>`. The one place that writes them,
/// live and replayed alike.
pub fn positioned(message: &str, channel: Channel, at: Position) -> Option<Box<RawValue>> {
    let body = message.trim_end().strip_suffix('}')?;
    let comma = if body.trim_end().ends_with('{') {
        ""
    } else {
        ","
    };
    let text = format!(
        r#"{body}{comma}"channel":"{channel}","epoch":"{}","position":{}}}"#,
        at.epoch, at.offset
    );
    RawValue::from_string(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_spliced_as_the_last_fields() {
        let at = Position {
            epoch: 9_007_199_254_740_993,
            offset: 4,
        };
        let out = positioned(r#"{"id":1,"content":"}"}"#, Channel::Group(10), at).expect("JSON");
        let v: serde_json::Value = serde_json::from_str(out.get()).expect("parses");
        assert_eq!(v["content"], "}");
        assert_eq!(v["channel"], "g:10");
        assert_eq!(v["epoch"], "9007199254740993");
        assert_eq!(v["position"], 4);
        let empty = positioned("{ }", Channel::User(1), at).expect("JSON");
        assert!(empty.get().starts_with(r#"{ "channel":"u:1""#));
        assert!(positioned("[1]", Channel::User(1), at).is_none());
    }

    #[test]
    fn a_page_knows_when_the_messages_after_a_position_are_gone() {
        let page = |head, first: Option<u64>| Page {
            epoch: 1,
            head,
            entries: first
                .map(|offset| Stored {
                    offset,
                    message: "{}".into(),
                })
                .into_iter()
                .collect(),
        };
        assert!(!page(5, Some(3)).lost_after(2));
        assert!(page(5, Some(4)).lost_after(2));
        assert!(page(5, None).lost_after(2));
        assert!(!page(5, None).lost_after(5));
        assert!(!page(0, None).lost_after(0));
    }
}
