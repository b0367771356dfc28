//! Publishing: what every sender's message goes through before it is acknowledged — an id, its
//! channel's history, the relay to the other spears, and this spear's own recipients. A
//! client's `msg` and the server API's publish are the same path, so they keep the same
//! promise: acknowledged means in the history (when it is on) and taken by the relay.
//!
//! `idempotency` remembers the answers of the server API's retried requests.

mod idempotency;
mod message;
mod reach;

use std::sync::Arc;

pub use idempotency::{Claim, IdempotencyError, ReplayBudget, Replayed, Replays};
pub use message::{Message, Sender, ServerSender, Target};
pub use reach::{OverReach, Reach, ReachLimits};

use crate::clock::unix_ms;
use crate::services::history::{positioned, HistoryError, Sequencer};
use crate::services::idgen::{IdError, IdService};
use crate::services::relay::{
    Audience, Delivery, Envelope, Position, Relay, RelayError, RelayStats,
};
use crate::services::spear::roster::{ConnKey, Roster};
use crate::services::spear::SpearCounters;

/// Whether this spear has someone in an audience (then a message to it is delivered here as
/// well as relayed).
pub trait LocalAudience: Send + Sync {
    /// Whether anyone of `audience` is connected here.
    fn present(&self, audience: Audience) -> bool;
}

impl<K: ConnKey> LocalAudience for Roster<K> {
    fn present(&self, audience: Audience) -> bool {
        match audience {
            Audience::User(uid) => self.connections_of(uid) > 0,
            Audience::Group(gid) => self.group_size(gid) > 0,
        }
    }
}

/// A message before it has an id.
#[derive(Debug, Clone)]
pub struct Draft {
    /// Its channel.
    pub audience: Audience,
    /// The target type a client gave (Gru echoes it), or -1.
    pub target_kind: i64,
    /// Who sends it.
    pub from: Sender,
    /// Its content: one allocation however many recipients a request names.
    pub content: Arc<str>,
}

/// A message the history and the relay took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// Its id.
    pub id: u64,
    /// When it was accepted, Unix ms.
    pub create_time: u64,
    /// Its channel.
    pub channel: Audience,
    /// Its place in the channel's history (`None` when history is off).
    pub position: Option<Position>,
}

/// Why a message was not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// No id could be had (no leader): nothing was delivered.
    #[error("no message id: {0}")]
    NoId(String),
    /// The history did not take it.
    #[error("{0}")]
    History(#[from] HistoryError),
    /// The relay did not take it.
    #[error("{0}")]
    Relay(#[from] RelayError),
    /// It could not be encoded.
    #[error("the message could not be encoded")]
    Unencodable,
    /// Its sender is over its budget of new channels or history bytes ([`Reach`]).
    #[error("{0}")]
    OverReach(#[from] OverReach),
}

/// Whom a message that was not acknowledged reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reached {
    /// Nobody, and nobody will: it is nowhere.
    Nobody,
    /// Live, the recipients on the sender's spear only, without a position: the history did
    /// not take it (or history is off), so nobody else ever gets it.
    HereOnly,
    /// Stored in its channel's history at `at`, but the relay did not take it: the recipients
    /// on the sender's spear got it live (`here`), the other spears' get it from the history,
    /// once and in order — when the channel's next message fills the gap, or when they resume.
    /// A resend would be a second copy.
    Stored {
        /// Its place in the channel's history.
        at: Position,
        /// Whether this spear had recipients, who got it live.
        here: bool,
    },
    /// Unknown: the history's append may have run ([`HistoryError::Uncertain`]). If it did,
    /// every recipient gets it from the history (a gap filled, a resume), once; if not,
    /// nobody does. It was delivered nowhere live, so it can never arrive twice.
    Unknown,
}

/// A message that was not acknowledged, and how far it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Why.
    pub error: PublishError,
    /// Its id and acceptance time, when it got that far.
    pub issued: Option<(u64, u64)>,
    /// Whom it reached.
    pub reached: Reached,
}

impl Refused {
    fn before_id(error: PublishError) -> Self {
        Self {
            error,
            issued: None,
            reached: Reached::Nobody,
        }
    }
}

/// A spear's way of publishing messages.
pub struct Publisher {
    ids: Arc<IdService>,
    relay: Relay,
    sequencer: Arc<Sequencer>,
    here: Arc<dyn LocalAudience>,
    counters: Arc<SpearCounters>,
    reach: Reach,
}

impl Publisher {
    /// Publishes with ids from `ids`, history through `sequencer`'s store, to other spears
    /// through `relay` and to this spear's recipients (`here`) through `sequencer`; users'
    /// messages within `reach`.
    pub fn new(
        ids: Arc<IdService>,
        relay: Relay,
        sequencer: Arc<Sequencer>,
        here: Arc<dyn LocalAudience>,
        (counters, reach): (Arc<SpearCounters>, ReachLimits),
    ) -> Self {
        Self {
            ids,
            relay,
            sequencer,
            here,
            counters,
            reach: Reach::new(reach),
        }
    }

    /// How far users may reach (also what their joins may open).
    pub fn reach(&self) -> &Reach {
        &self.reach
    }

    /// `count` fresh ids in increasing order (strictly increasing cluster-wide in strict mode),
    /// asked for in blocks of at most `idgen.max_batch`.
    pub async fn ids(&self, count: u32) -> Result<Vec<u64>, PublishError> {
        let mut ids = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
        let mut left = count;
        while left > 0 {
            let ask = left.min(self.ids.max_batch()).max(1);
            let blocks = self
                .ids
                .issue(ask)
                .await
                .map_err(|e: IdError| PublishError::NoId(e.to_string()))?;
            let before = ids.len();
            ids.extend(blocks.iter().flat_map(|b| b.ids()));
            let got = u32::try_from(ids.len() - before).unwrap_or(u32::MAX);
            if got == 0 {
                return Err(PublishError::NoId("the id service returned no ids".into()));
            }
            left = left.saturating_sub(got);
        }
        ids.truncate(usize::try_from(count).unwrap_or(usize::MAX));
        Ok(ids)
    }

    /// Publishes `draft` with a fresh id; a user's message only within its [`Reach`] when
    /// channels keep a history.
    pub async fn publish(&self, draft: Draft) -> Result<Accepted, Refused> {
        if let (Sender::User(uid), Some(_)) = (&draft.from, self.sequencer.store()) {
            self.reach
                .send(*uid, draft.audience, draft.content.len())
                .map_err(|e| Refused::before_id(e.into()))?;
        }
        let id = self
            .ids(1)
            .await
            .map_err(Refused::before_id)?
            .first()
            .copied()
            .ok_or_else(|| Refused::before_id(PublishError::NoId("no id".into())))?;
        self.publish_as(id, draft).await
    }

    /// Publishes `draft` as message `id` (one of [`Publisher::ids`]): appended to its
    /// channel's history, then given to the relay; this spear's recipients get it either way,
    /// without a position when the history surely did not take it (it is not replayable
    /// then) — but not when the append's outcome is unknown: a live copy without a position
    /// could not be told apart from the stored one a resume replays.
    pub async fn publish_as(&self, id: u64, draft: Draft) -> Result<Accepted, Refused> {
        self.counters.published();
        let create_time = unix_ms();
        let audience = draft.audience;
        let issued = Some((id, create_time));
        let message = Message::new(
            id,
            create_time,
            audience,
            draft.target_kind,
            draft.from,
            draft.content,
        );
        let refused = |error| Refused {
            error,
            issued,
            reached: Reached::Nobody,
        };
        let text =
            serde_json::to_string(&message).map_err(|_| refused(PublishError::Unencodable))?;
        let placed = match self.sequencer.store() {
            None => Ok(None),
            Some(store) => store.append(audience, id, &text).await.map(Some),
        };
        // An append that may have run is delivered by the history or not at all.
        if let Err(e @ HistoryError::Uncertain(_)) = placed {
            return Err(Refused {
                error: e.into(),
                issued,
                reached: Reached::Unknown,
            });
        }
        let position = placed.as_ref().ok().copied().flatten();
        let payload = match position {
            Some(at) => positioned(&text, audience, at),
            None => serde_json::value::RawValue::from_string(text).ok(),
        }
        .ok_or_else(|| refused(PublishError::Unencodable))?;
        let envelope = Envelope {
            audience,
            position,
            payload,
        };
        let relayed = match placed {
            Ok(_) => self
                .relay
                .publish(&envelope)
                .await
                .map_err(PublishError::from),
            Err(e) => Err(PublishError::from(e)),
        };
        // The relay brings it to every other spear; here only rooms with someone in them cost
        // a serialisation (a sender's own user room counts: its other connections get it too).
        let here = self.here.present(audience);
        if here && self.sequencer.deliver(envelope).await == Delivery::SlowClient {
            // A recipient whose queue is full misses it and is disconnected by the
            // slow-consumer policy; that is its problem, never the sender's.
            RelayStats::bump(&self.relay.stats().slow_clients);
            tracing::trace!("a local recipient missed a message (slow consumer)");
        }
        match relayed {
            Ok(()) => Ok(Accepted {
                id,
                create_time,
                channel: audience,
                position,
            }),
            Err(error) => Err(Refused {
                error,
                issued,
                reached: match (position, here) {
                    (Some(at), here) => Reached::Stored { at, here },
                    (None, true) => Reached::HereOnly,
                    (None, false) => Reached::Nobody,
                },
            }),
        }
    }
}
