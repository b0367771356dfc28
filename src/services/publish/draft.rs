//! A message before it has an id: where it goes, who sends it, its content — checked against
//! the content limit when it is made, the one place that limit is enforced.

use std::sync::Arc;

use super::message::Sender;
use crate::config::SpearSection;
use crate::services::channel::{Channel, ClientMsgId};
use crate::services::history::sent_record_bytes;

/// The largest content a message may have, in bytes: `spear.max_payload_bytes`, for clients
/// and business servers alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentLimit(usize);

impl ContentLimit {
    /// At most `bytes` bytes.
    pub fn new(bytes: usize) -> Self {
        Self(bytes)
    }

    /// The limit of `spear`.
    pub fn of(spear: &SpearSection) -> Self {
        Self(usize::try_from(spear.max_payload_bytes).unwrap_or(usize::MAX))
    }

    /// The limit, bytes.
    pub fn bytes(self) -> usize {
        self.0
    }
}

/// A content over its [`ContentLimit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("content is larger than {max} bytes (spear.max_payload_bytes)")]
pub struct ContentTooLarge {
    /// The limit.
    pub max: usize,
}

/// A message before it has an id. Only [`Draft::new`] makes one, so every draft's content is
/// within the limit.
#[derive(Debug, Clone)]
pub struct Draft {
    channel: Channel,
    target_kind: i64,
    from: Sender,
    content: Arc<str>,
    /// The sender's id for it: sent again with the same one, it is stored and delivered once.
    client_id: Option<ClientMsgId>,
}

impl Draft {
    /// A message to `channel` from `from`; `target_kind` is the target type a client gave
    /// (Gru echoes it), or -1. Refused when `content` is over `limit`.
    pub fn new(
        channel: Channel,
        target_kind: i64,
        from: Sender,
        content: Arc<str>,
        limit: ContentLimit,
    ) -> Result<Self, ContentTooLarge> {
        if content.len() > limit.bytes() {
            return Err(ContentTooLarge { max: limit.bytes() });
        }
        Ok(Self {
            channel,
            target_kind,
            from,
            content,
            client_id: None,
        })
    }

    /// The same message under its sender's id for it (`clientMsgId`): a resend with the same
    /// id within `history.resend_window_secs` is answered as the first send was.
    pub fn with_client_id(self, client_id: ClientMsgId) -> Self {
        Self {
            client_id: Some(client_id),
            ..self
        }
    }

    /// The same message to `channel` instead, sharing its content (one allocation however
    /// many recipients a request names).
    pub fn to(&self, channel: Channel) -> Self {
        Self {
            channel,
            ..self.clone()
        }
    }

    /// Its channel.
    pub fn channel(&self) -> Channel {
        self.channel
    }

    /// Its content.
    pub fn content(&self) -> &Arc<str> {
        &self.content
    }

    /// Who sends it.
    pub fn from(&self) -> &Sender {
        &self.from
    }

    /// Its sender's id for it, if given.
    pub fn client_id(&self) -> Option<&ClientMsgId> {
        self.client_id.as_ref()
    }

    /// What it makes its channel's history hold, bytes, as its sender's budget
    /// (`spear.max_history_bytes_per_min`) counts it: its content, and the record of its client
    /// message id when it has one (kept `history.resend_window_secs`).
    pub fn history_bytes(&self) -> u64 {
        let record = self
            .client_id
            .as_ref()
            .map_or(0, |id| sent_record_bytes(&self.from.key(), id));
        self.content.len() as u64 + record
    }

    /// What tells this message apart from another sent under the same client id by the same
    /// sender to the same channel: its target type and content (stable across builds: xxh3).
    pub fn fingerprint(&self) -> u64 {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        hasher.update(&self.target_kind.to_le_bytes());
        hasher.update(self.content.as_bytes());
        hasher.digest()
    }

    pub(super) fn into_parts(self) -> (Channel, i64, Sender, Arc<str>) {
        (self.channel, self.target_kind, self.from, self.content)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_content_over_the_limit_is_refused_and_one_at_it_is_not() {
        let limit = ContentLimit::new(3);
        let make = |content: &str| {
            Draft::new(Channel::User(1), -1, Sender::User(2), content.into(), limit)
        };
        assert!(make("abc").is_ok());
        let e = make("abcd").expect_err("over the limit");
        assert_eq!(e, ContentTooLarge { max: 3 });
        assert_eq!(
            e.to_string(),
            "content is larger than 3 bytes (spear.max_payload_bytes)"
        );
    }

    #[test]
    fn a_client_msg_id_is_charged_to_the_history_budget() {
        let draft = Draft::new(
            Channel::User(1),
            -1,
            Sender::User(2),
            "hello".into(),
            ContentLimit::new(10),
        )
        .expect("within the limit");
        assert_eq!(draft.history_bytes(), 5);
        let id = ClientMsgId::new(&"x".repeat(64)).expect("an id");
        let charged = draft.with_client_id(id.clone()).history_bytes();
        assert_eq!(charged, 5 + sent_record_bytes("u2", &id));
        assert!(charged > 5 + 64);
    }

    #[test]
    fn a_draft_to_another_channel_shares_its_content() {
        let one = Draft::new(
            Channel::User(1),
            -1,
            Sender::Server("s".into()),
            "hello".into(),
            ContentLimit::new(10),
        )
        .expect("within the limit");
        let two = one.to(Channel::User(2));
        assert_eq!(two.channel(), Channel::User(2));
        assert!(Arc::ptr_eq(one.content(), two.content()));
    }
}
