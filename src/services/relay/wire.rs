//! What every relay backend puts on the wire. A message travels as `<origin spear id>:<msg
//! JSON>`, so that a spear can tell its own echo before it reads the message; its audience is
//! named `u:<uid>` or `g:<gid>` (inside a Redis channel's hash tag, or as a RocketMQ tag).

use serde_json::value::RawValue;

use super::Audience;
use crate::config::NodeId;

/// `cluster_name` as it may appear in a Redis key or channel: braces, which would move the hash
/// tag, become `_`.
pub(super) fn in_redis(cluster_name: &str) -> String {
    cluster_name
        .chars()
        .map(|c| if c == '{' || c == '}' { '_' } else { c })
        .collect()
}

/// The name of `audience` on the wire: `u:<uid>` or `g:<gid>`.
pub(super) fn tag(audience: Audience) -> String {
    match audience {
        Audience::User(uid) => format!("u:{uid}"),
        Audience::Group(gid) => format!("g:{gid}"),
    }
}

/// The audience `tag` names, if it is one.
pub(super) fn audience(tag: &str) -> Option<Audience> {
    let (kind, id) = tag.split_once(':')?;
    let id = id.parse().ok()?;
    match kind {
        "u" => Some(Audience::User(id)),
        "g" => Some(Audience::Group(id)),
        _ => None,
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
    fn tags_round_trip_and_others_are_refused() {
        for a in [Audience::User(123), Audience::Group(10)] {
            assert_eq!(audience(&tag(a)), Some(a));
        }
        assert_eq!(tag(Audience::User(7)), "u:7");
        for bad in ["x:1", "u:abc", "u1", "u:", ":1", "u:-1"] {
            assert_eq!(audience(bad), None, "{bad}");
        }
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
