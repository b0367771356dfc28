//! What the Redis relay puts on the wire. A message for user U goes to channel
//! `gru:<cluster>:msg:{u:U}`, a group message to `gru:<cluster>:msg:{g:G}`: the cluster prefix
//! (the one presence keys carry too) lets clusters share a Redis, and the hash tag keeps a
//! channel in one slot of a Redis Cluster. The payload is `<origin spear id>:<msg JSON>`, so a
//! spear can tell its own echo before it reads the message.

use serde_json::value::RawValue;

use super::super::Audience;
use crate::config::NodeId;

/// The channel names of one cluster.
#[derive(Debug, Clone)]
pub(super) struct Channels {
    /// `gru:<cluster>:msg:`.
    prefix: String,
}

impl Channels {
    /// The channels of cluster `cluster_name` (braces, which would change the hash tag, are
    /// replaced, as in the presence keys).
    pub(super) fn new(cluster_name: &str) -> Self {
        let name: String = cluster_name
            .chars()
            .map(|c| if c == '{' || c == '}' { '_' } else { c })
            .collect();
        Self {
            prefix: format!("gru:{name}:msg:"),
        }
    }

    /// The channel of `audience`.
    pub(super) fn of(&self, audience: Audience) -> String {
        match audience {
            Audience::User(uid) => format!("{}{{u:{uid}}}", self.prefix),
            Audience::Group(gid) => format!("{}{{g:{gid}}}", self.prefix),
        }
    }

    /// Who channel `name` is for, if it is one of this cluster's.
    pub(super) fn audience(&self, name: &[u8]) -> Option<Audience> {
        let name = std::str::from_utf8(name).ok()?;
        let rest = name.strip_prefix(&self.prefix)?.strip_prefix('{')?;
        let (kind, id) = rest.strip_suffix('}')?.split_once(':')?;
        let id = id.parse().ok()?;
        match kind {
            "u" => Some(Audience::User(id)),
            "g" => Some(Audience::Group(id)),
            _ => None,
        }
    }
}

/// The wire payload of `message` sent by spear `origin`.
pub(super) fn encode(origin: NodeId, message: &str) -> Vec<u8> {
    let origin = origin.to_string();
    let mut wire = Vec::with_capacity(origin.len() + 1 + message.len());
    wire.extend_from_slice(origin.as_bytes());
    wire.push(b':');
    wire.extend_from_slice(message.as_bytes());
    wire
}

/// A payload read off a channel, its origin known, its message not yet checked.
#[derive(Debug)]
pub(super) struct Arrival {
    /// The spear that published it.
    pub(super) origin: NodeId,
    wire: Vec<u8>,
    /// Where the message starts in `wire`.
    start: usize,
}

impl Arrival {
    /// Reads the origin of `wire`; `None` when there is none.
    pub(super) fn parse(wire: Vec<u8>) -> Option<Self> {
        let split = wire.iter().position(|b| *b == b':')?;
        let origin = std::str::from_utf8(&wire[..split]).ok()?.parse().ok()?;
        Some(Self {
            origin,
            wire,
            start: split + 1,
        })
    }

    /// The message, checked to be JSON but not parsed into a tree: the sending spear wrote it,
    /// and it goes out to the clients byte for byte. `None` when it is not JSON.
    pub(super) fn into_message(self) -> Option<Box<RawValue>> {
        let mut wire = self.wire;
        wire.drain(..self.start);
        RawValue::from_string(String::from_utf8(wire).ok()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_round_trip_and_foreign_ones_are_ignored() {
        let c = Channels::new("prod");
        assert_eq!(c.of(Audience::User(123)), "gru:prod:msg:{u:123}");
        assert_eq!(c.of(Audience::Group(10)), "gru:prod:msg:{g:10}");
        for a in [Audience::User(123), Audience::Group(10)] {
            assert_eq!(c.audience(c.of(a).as_bytes()), Some(a));
        }
        assert_eq!(c.audience(b"gru:other:msg:{u:1}"), None);
        assert_eq!(c.audience(b"gru:prod:msg:{x:1}"), None);
        assert_eq!(c.audience(b"gru:prod:msg:{u:abc}"), None);
        assert_eq!(c.audience(b"gru:prod:msg:{u:1"), None);
        assert_eq!(c.audience(b"gru:prod:msg:{u:\xff}"), None);
    }

    #[test]
    fn braces_in_the_cluster_name_cannot_move_the_hash_tag() {
        assert_eq!(
            Channels::new("a{b}").of(Audience::User(7)),
            "gru:a_b_:msg:{u:7}"
        );
    }

    #[test]
    fn a_payload_names_its_origin_and_carries_the_message_as_it_was() {
        let wire = encode(42, r#"{"id": 1}"#);
        assert_eq!(wire, br#"42:{"id": 1}"#);
        let arrival = Arrival::parse(wire).expect("parses");
        assert_eq!(arrival.origin, 42);
        let message = arrival.into_message().expect("JSON");
        assert_eq!(message.get(), r#"{"id": 1}"#);
    }

    #[test]
    fn malformed_payloads_are_refused() {
        assert!(Arrival::parse(b"no origin".to_vec()).is_none());
        assert!(Arrival::parse(b"x:{}".to_vec()).is_none());
        assert!(Arrival::parse(b":{}".to_vec()).is_none());
        let not_json = Arrival::parse(b"1:{".to_vec()).expect("origin");
        assert!(not_json.into_message().is_none());
        let not_utf8 = Arrival::parse(b"1:\"\xff\"".to_vec()).expect("origin");
        assert!(not_utf8.into_message().is_none());
    }
}
