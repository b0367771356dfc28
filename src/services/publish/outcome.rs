//! What became of a message: accepted, refused (and how far it got), or not attempted. One
//! vocabulary for every edge: socket.io's ack and the server API's answer render the same
//! [`Fate`] under their own field names (`docs/api.md`, "What became of a message").

use crate::services::channel::{Channel, Position};
use crate::services::history::HistoryError;
use crate::services::relay::RelayError;

use super::reach::OverReach;

/// A message the history and the relay took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// Its id.
    pub id: u64,
    /// When it was accepted, Unix ms.
    pub create_time: u64,
    /// Its channel.
    pub channel: Channel,
    /// Its place in the channel's history (`None` when history is off).
    pub position: Option<Position>,
    /// A resend under a client message id the channel remembers: this is the first send's
    /// answer, and nothing was stored or delivered again.
    pub again: bool,
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
    /// Its sender is over its budget of new channels or history bytes.
    #[error("{0}")]
    OverReach(#[from] OverReach),
    /// Its client message id was used, within the resend window, for another message (another
    /// content or target type) to the same channel.
    #[error(
        "clientMsgId {0:?} was already used for another message to this target (ids are \
         remembered for history.resend_window_secs)"
    )]
    ClientIdReused(String),
    /// A client message id needs the history, which is off.
    #[error(
        "clientMsgId needs the message history, which is off on this cluster (history.enabled)"
    )]
    ClientIdWithoutHistory,
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

/// How far a refused message got, as the edges say it. The one table:
///
/// | [`Reached`]  | `delivered_here` | `local_only` | `stored`   | `uncertain` | a resend is |
/// |--------------|------------------|--------------|------------|-------------|-------------|
/// | `Nobody`     | false            | true         | —          | false       | safe        |
/// | `HereOnly`   | true             | true         | —          | false       | a 2nd copy  |
/// | `Stored`     | `here`           | false        | its place  | false       | a 2nd copy  |
/// | `Unknown`    | false            | false        | —          | true        | a 2nd copy  |
///
/// A resend under the same client message id is safe in every row but `HereOnly` (where the
/// sender's spear's recipients get a second copy): the channel remembers the id with the
/// message, so a stored one is answered, not stored again.
///
/// socket.io's ack says `localOnly`, `stored` and `uncertain`; the server API says
/// `delivered_here`, `stored` and `uncertain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fate {
    /// Recipients on the sender's spear got it live.
    pub delivered_here: bool,
    /// Nobody beyond the sender's spear ever gets it (it is neither stored nor maybe stored).
    pub local_only: bool,
    /// Stored in its channel's history here: recipients elsewhere get it from there.
    pub stored: Option<Position>,
    /// The history's append may or may not have run.
    pub uncertain: bool,
    /// It reached someone, or may yet: a resend would be a second copy.
    pub reached_someone: bool,
}

impl Reached {
    /// Its row of the table.
    pub fn fate(self) -> Fate {
        match self {
            Reached::Nobody => Fate {
                delivered_here: false,
                local_only: true,
                stored: None,
                uncertain: false,
                reached_someone: false,
            },
            Reached::HereOnly => Fate {
                delivered_here: true,
                local_only: true,
                stored: None,
                uncertain: false,
                reached_someone: true,
            },
            Reached::Stored { at, here } => Fate {
                delivered_here: here,
                local_only: false,
                stored: Some(at),
                uncertain: false,
                reached_someone: true,
            },
            Reached::Unknown => Fate {
                delivered_here: false,
                local_only: false,
                stored: None,
                uncertain: true,
                reached_someone: true,
            },
        }
    }
}

/// A message that was not acknowledged, and how far it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Its channel.
    pub channel: Channel,
    /// Why.
    pub error: PublishError,
    /// Its id and acceptance time, when it got that far.
    pub issued: Option<(u64, u64)>,
    /// Whom it reached.
    pub reached: Reached,
}

impl Refused {
    pub(super) fn before_id(channel: Channel, error: PublishError) -> Self {
        Self {
            channel,
            error,
            issued: None,
            reached: Reached::Nobody,
        }
    }
}

/// What became of one message of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged.
    Accepted(Accepted),
    /// Tried and refused.
    Refused(Refused),
    /// Not tried: an earlier message of the batch failed with `after` (a later message never
    /// overtakes one that failed).
    NotAttempted {
        /// Its channel.
        channel: Channel,
        /// The earlier failure.
        after: PublishError,
    },
}

impl Outcome {
    /// Whether it was acknowledged.
    pub fn accepted(&self) -> bool {
        matches!(self, Outcome::Accepted(_))
    }

    /// Whether it reached someone, or may yet (then a retry must not send it again).
    pub fn reached_someone(&self) -> bool {
        match self {
            Outcome::Accepted(_) => true,
            Outcome::Refused(r) => r.reached.fate().reached_someone,
            Outcome::NotAttempted { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_says_a_resend_is_safe_only_for_what_reached_nobody() {
        let at = Position {
            epoch: 1,
            offset: 2,
        };
        let rows = [
            Reached::Nobody,
            Reached::HereOnly,
            Reached::Stored { at, here: true },
            Reached::Stored { at, here: false },
            Reached::Unknown,
        ];
        for reached in rows {
            let fate = reached.fate();
            assert_eq!(
                fate.reached_someone,
                reached != Reached::Nobody,
                "{reached:?}"
            );
            // Only here means: not stored, not maybe stored.
            assert_eq!(
                fate.local_only,
                fate.stored.is_none() && !fate.uncertain,
                "{reached:?}"
            );
        }
        assert_eq!(Reached::Stored { at, here: false }.fate().stored, Some(at));
        assert!(!Reached::Stored { at, here: false }.fate().delivered_here);
        assert!(Reached::HereOnly.fate().delivered_here);
    }
}
