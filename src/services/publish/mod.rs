//! Publishing: what every sender's message goes through before it is acknowledged — an id, its
//! channel's history, the relay to the other spears, and this spear's own recipients. A
//! client's `msg` and the server API's publish are the same path, so they keep the same
//! promise: acknowledged means in the history (when it is on) and taken by the relay.
//!
//! `idempotency` remembers the answers of the server API's retried requests.

mod draft;
mod idempotency;
mod message;
mod outcome;
mod reach;

use std::sync::Arc;

pub use draft::{ContentLimit, ContentTooLarge, Draft};
pub use idempotency::{
    Answer, Claim, IdempotencyError, Once, OnceError, ReplayBudget, Replayed, Replays,
};
pub use message::{Message, Sender, ServerSender, Target};
pub use outcome::{Accepted, Fate, Outcome, PublishError, Reached, Refused};
pub use reach::{OverReach, Reach, ReachLimits};

use crate::clock::unix_ms;
use crate::services::channel::Channel;
use crate::services::history::{
    positioned, Appended, HistoryError, HistoryStore, SentOnce, Sequencer,
};
use crate::services::idgen::{IdError, IdService};
use crate::services::relay::{Delivery, Envelope, Relay, RelayStats};
use crate::services::spear::roster::{ConnKey, Roster};
use crate::services::spear::SpearCounters;

/// Whether this spear has someone in an channel (then a message to it is delivered here as
/// well as relayed).
pub trait LocalRecipients: Send + Sync {
    /// Whether anyone of `channel` is connected here.
    fn present(&self, channel: Channel) -> bool;
}

impl<K: ConnKey> LocalRecipients for Roster<K> {
    fn present(&self, channel: Channel) -> bool {
        match channel {
            Channel::User(uid) => self.connections_of(uid) > 0,
            Channel::Group(gid) => self.group_size(gid) > 0,
        }
    }
}

/// What a [`Publisher`] is built from.
pub struct PublisherParts {
    /// Where ids come from.
    pub ids: Arc<IdService>,
    /// The relay to the other spears.
    pub relay: Relay,
    /// The channels' history (`None` when history is off).
    pub history: Option<Arc<dyn HistoryStore>>,
    /// What delivers to this spear's recipients, in each channel's order.
    pub sequencer: Arc<Sequencer>,
    /// Who is connected here.
    pub here: Arc<dyn LocalRecipients>,
    /// Where `published` is counted.
    pub counters: Arc<SpearCounters>,
    /// How far users may reach.
    pub reach: ReachLimits,
}

/// A spear's way of publishing messages: the only way a message gets an id and goes out.
pub struct Publisher {
    parts: PublisherParts,
    reach: Reach,
}

impl Publisher {
    /// A publisher of `parts`.
    pub fn new(parts: PublisherParts) -> Self {
        Self {
            reach: Reach::new(parts.reach),
            parts,
        }
    }

    /// How far users may reach (also what their joins may open).
    pub fn reach(&self) -> &Reach {
        &self.reach
    }

    /// Publishes `draft` with a fresh id; a user's message only within its [`Reach`] when
    /// channels keep a history.
    pub async fn publish(&self, draft: Draft) -> Result<Accepted, Refused> {
        let channel = draft.channel();
        self.within_reach(&draft)
            .map_err(|e| Refused::before_id(channel, e))?;
        let id = self
            .ids(1)
            .await
            .map_err(|e| Refused::before_id(channel, e))?
            .first()
            .copied()
            .ok_or_else(|| Refused::before_id(channel, PublishError::NoId("no id".into())))?;
        self.publish_as(id, draft).await
    }

    /// Publishes `drafts` in order, with ids asked for all of them at once. The first failure
    /// stops the rest ([`Outcome::NotAttempted`]): a later message never overtakes one that
    /// failed. Without ids, none is attempted.
    pub async fn publish_batch(&self, drafts: Vec<Draft>) -> Vec<Outcome> {
        let count = u32::try_from(drafts.len()).unwrap_or(u32::MAX);
        let ids = match self.ids(count).await {
            Ok(ids) => ids,
            Err(after) => {
                return drafts
                    .iter()
                    .map(|d| Outcome::NotAttempted {
                        channel: d.channel(),
                        after: after.clone(),
                    })
                    .collect()
            }
        };
        let mut ids = ids.into_iter();
        let mut stop: Option<PublishError> = None;
        let mut outcomes = Vec::with_capacity(drafts.len());
        for draft in drafts {
            let channel = draft.channel();
            let outcome = match (&stop, ids.next()) {
                (Some(after), _) => Outcome::NotAttempted {
                    channel,
                    after: after.clone(),
                },
                (None, None) => Outcome::NotAttempted {
                    channel,
                    after: PublishError::NoId("no id".into()),
                },
                (None, Some(id)) => {
                    let published = match self.within_reach(&draft) {
                        Ok(()) => self.publish_as(id, draft).await,
                        Err(e) => Err(Refused::before_id(channel, e)),
                    };
                    match published {
                        Ok(done) => Outcome::Accepted(done),
                        Err(refused) => {
                            stop = Some(refused.error.clone());
                            Outcome::Refused(refused)
                        }
                    }
                }
            };
            outcomes.push(outcome);
        }
        outcomes
    }

    /// A user's message is within its [`Reach`] when channels keep a history; a server's
    /// always is.
    fn within_reach(&self, draft: &Draft) -> Result<(), PublishError> {
        if draft.client_id().is_some() && self.parts.history.is_none() {
            return Err(PublishError::ClientIdWithoutHistory);
        }
        match (draft.from(), &self.parts.history) {
            (Sender::User(uid), Some(_)) => self
                .reach
                .send(*uid, draft.channel(), draft.history_bytes())
                .map_err(PublishError::from),
            _ => Ok(()),
        }
    }

    /// `count` fresh ids in increasing order (strictly increasing cluster-wide in strict mode),
    /// asked for in blocks of at most `idgen.max_batch`.
    async fn ids(&self, count: u32) -> Result<Vec<u64>, PublishError> {
        let mut ids = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
        let mut left = count;
        while left > 0 {
            let ask = left.min(self.parts.ids.max_batch()).max(1);
            let blocks = self
                .parts
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

    /// Publishes `draft` as message `id` (one of [`Publisher::ids`]): appended to its
    /// channel's history, then given to the relay; this spear's recipients get it either way,
    /// without a position when the history surely did not take it (it is not replayable
    /// then) — but not when the append's outcome is unknown: a live copy without a position
    /// could not be told apart from the stored one a resume replays.
    async fn publish_as(&self, id: u64, draft: Draft) -> Result<Accepted, Refused> {
        self.parts.counters.published();
        let create_time = unix_ms();
        let once_key = draft
            .client_id()
            .map(|client_id| (client_id.clone(), draft.from().key(), draft.fingerprint()));
        let (channel, target_kind, from, content) = draft.into_parts();
        let issued = Some((id, create_time));
        let message = Message::new(id, create_time, channel, target_kind, from, content);
        let refused = |error| Refused {
            channel,
            error,
            issued,
            reached: Reached::Nobody,
        };
        let text =
            serde_json::to_string(&message).map_err(|_| refused(PublishError::Unencodable))?;
        let once = once_key
            .as_ref()
            .map(|(client_id, sender, fingerprint)| SentOnce {
                sender,
                client_id,
                fingerprint: *fingerprint,
                id,
                create_time,
            });
        // With the Redis relay the history's script publishes the message too (one round
        // trip); otherwise it is appended here and published below.
        let route = self
            .parts
            .history
            .as_ref()
            .and_then(|_| self.parts.relay.route(channel));
        let combined = match (&self.parts.history, &route) {
            (Some(store), Some(route)) => store.append_and_publish(channel, id, &text, once, route),
            _ => None,
        };
        let carried = combined.is_some();
        let started = std::time::Instant::now();
        let appended = match (combined, &self.parts.history) {
            (Some(both), _) => both.await.map(Some),
            (None, None) => Ok(None),
            (None, Some(store)) => store.append_once(channel, id, &text, once).await.map(Some),
        };
        let placed = match appended {
            Ok(Some(Appended::Again(first))) => {
                // A resend: the first send's answer, and nothing stored or delivered again.
                return match once {
                    Some(once) if once.fingerprint == first.fingerprint => Ok(Accepted {
                        id: first.id,
                        create_time: first.create_time,
                        channel,
                        position: Some(first.at),
                        again: true,
                    }),
                    _ => Err(Refused::before_id(
                        channel,
                        PublishError::ClientIdReused(
                            once.map(|o| o.client_id.as_str().to_string())
                                .unwrap_or_default(),
                        ),
                    )),
                };
            }
            Ok(Some(Appended::Stored(at))) => Ok(Some(at)),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        if carried {
            // Published in the script when it stored the message (and perhaps when its outcome
            // is unknown).
            self.parts.relay.record(placed.is_ok(), started.elapsed());
        }
        // An append that may have run is delivered by the history or not at all.
        if let Err(e @ HistoryError::Uncertain(_)) = placed {
            return Err(Refused {
                channel,
                error: e.into(),
                issued,
                reached: Reached::Unknown,
            });
        }
        let position = placed.as_ref().ok().copied().flatten();
        // The message as the relay and this spear's recipients take it: built (and checked)
        // only when one of them does.
        let envelope = || {
            let payload = match position {
                Some(at) => positioned(&text, channel, at),
                None => serde_json::value::RawValue::from_string(text.clone()).ok(),
            }
            .ok_or_else(|| refused(PublishError::Unencodable))?;
            Ok(Envelope {
                channel,
                position,
                payload,
            })
        };
        let (relayed, built) = match placed {
            Ok(_) if carried => (Ok(()), None),
            Ok(_) => {
                let built = envelope()?;
                let relayed = self.parts.relay.publish(&built).await;
                (relayed.map_err(PublishError::from), Some(built))
            }
            Err(e) => (Err(PublishError::from(e)), None),
        };
        // The relay brings it to every other spear; here only rooms with someone in them cost
        // a serialisation (a sender's own user room counts: its other connections get it too).
        let here = self.parts.here.present(channel);
        let local = match (here, built) {
            (false, _) => None,
            (true, Some(built)) => Some(built),
            (true, None) => Some(envelope()?),
        };
        let delivered = match local {
            Some(envelope) => self.parts.sequencer.deliver(envelope).await,
            None => Delivery::Done,
        };
        if delivered == Delivery::SlowClient {
            // A recipient whose queue is full misses it and is disconnected by the
            // slow-consumer policy; that is its problem, never the sender's.
            RelayStats::bump(&self.parts.relay.stats().slow_clients);
            tracing::trace!("a local recipient missed a message (slow consumer)");
        }
        match relayed {
            Ok(()) => Ok(Accepted {
                id,
                create_time,
                channel,
                position,
                again: false,
            }),
            Err(error) => Err(Refused {
                channel,
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
