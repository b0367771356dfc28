//! A channel: where a message goes and what keeps its history — every connection of a user, or
//! every member of a group. Its name, `u:<uid>` or `g:<gid>`, is the same everywhere: in acks
//! and messages to clients, socket.io rooms, Redis keys and channels, RocketMQ tags.

/// Every connection of a user, or every member of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    /// Every connection of a user.
    User(u64),
    /// Every connection subscribed to a group.
    Group(u64),
}

impl std::fmt::Display for Channel {
    /// `u:<uid>` or `g:<gid>`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Channel::User(uid) => write!(f, "u:{uid}"),
            Channel::Group(gid) => write!(f, "g:{gid}"),
        }
    }
}

impl std::str::FromStr for Channel {
    type Err = ();

    /// Reads `u:<uid>` or `g:<gid>`.
    fn from_str(s: &str) -> Result<Self, ()> {
        let (kind, id) = s.split_once(':').ok_or(())?;
        let id = id.parse().map_err(drop)?;
        match kind {
            "u" => Ok(Channel::User(id)),
            "g" => Ok(Channel::Group(id)),
            _ => Err(()),
        }
    }
}

/// Where a message sits in its channel's history (`services::history`): the channel's epoch
/// (changes when the history behind it was lost or reset) and the message's offset in it,
/// which grows by one per message from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    /// The epoch: the id of the message that started the channel's history.
    pub epoch: u64,
    /// 1 for the epoch's first message, then one more per message.
    pub offset: u64,
}

/// A client's id for a message it sends (`clientMsgId`): 1 to [`ClientMsgId::MAX_BYTES`]
/// bytes, unique per sending user. A resend with the same id is answered with the first
/// send's ack (`services::history::SentOnce`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientMsgId(Box<str>);

/// Why a `clientMsgId` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "clientMsgId must be a string of 1 to {} bytes",
    ClientMsgId::MAX_BYTES
)]
pub struct BadClientMsgId;

impl ClientMsgId {
    /// The longest id, bytes.
    pub const MAX_BYTES: usize = 64;

    /// `text` as an id, when it is 1 to [`ClientMsgId::MAX_BYTES`] bytes.
    pub fn new(text: &str) -> Result<Self, BadClientMsgId> {
        if text.is_empty() || text.len() > Self::MAX_BYTES {
            return Err(BadClientMsgId);
        }
        Ok(Self(text.into()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_msg_id_has_one_to_64_bytes() {
        assert_eq!(ClientMsgId::new(""), Err(BadClientMsgId));
        assert_eq!(ClientMsgId::new(&"é".repeat(33)), Err(BadClientMsgId));
        let longest = "x".repeat(64);
        assert_eq!(ClientMsgId::new(&longest).map(|c| c.as_str().len()), Ok(64));
        assert_eq!(
            BadClientMsgId.to_string(),
            "clientMsgId must be a string of 1 to 64 bytes"
        );
    }

    #[test]
    fn a_channel_reads_back_what_it_writes_and_nothing_else() {
        for channel in [
            Channel::User(0),
            Channel::Group(u64::MAX),
            Channel::User(42),
        ] {
            assert_eq!(channel.to_string().parse(), Ok(channel));
        }
        assert_eq!(Channel::User(7).to_string(), "u:7");
        assert_eq!(Channel::Group(9).to_string(), "g:9");
        for bad in ["", "u", "u:", "x:1", "u:-1", "g:1.5", "u:1:2", "U:1"] {
            assert_eq!(bad.parse::<Channel>(), Err(()), "{bad}");
        }
    }
}
