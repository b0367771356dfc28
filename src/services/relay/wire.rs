//! What every relay backend puts on the wire. A message travels as `<origin spear id>:<place>:<msg
//! JSON>`, so that a spear can tell its own echo and the message's place in its channel's
//! history before it reads the message; `<place>` is `<epoch>.<position>`, or `-` for a
//! message that has none (history off or unavailable). Its channel is named by its
//! [`Channel`](crate::services::channel::Channel) name (inside a Redis channel's hash tag, or as
//! a RocketMQ tag).

use serde_json::value::RawValue;

use super::Position;
use crate::config::NodeId;

/// `cluster_name` as it may appear in a Redis key or channel: braces, which would move the hash
/// tag, become `_`.
pub(super) fn in_redis(cluster_name: &str) -> String {
    cluster_name
        .chars()
        .map(|c| if c == '{' || c == '}' { '_' } else { c })
        .collect()
}

/// The wire payload of `message` sent by spear `origin`, at `position` in its channel.
pub(super) fn encode(origin: NodeId, position: Option<Position>, message: &str) -> Vec<u8> {
    let head = match position {
        Some(p) => format!("{origin}:{}.{}:", p.epoch, p.offset),
        None => format!("{origin}:-:"),
    };
    let mut wire = Vec::with_capacity(head.len() + message.len());
    wire.extend_from_slice(head.as_bytes());
    wire.extend_from_slice(message.as_bytes());
    wire
}

/// `<epoch>.<offset>` or `-`; `None` when it is neither.
fn place(text: &[u8]) -> Option<Option<Position>> {
    if text == b"-" {
        return Some(None);
    }
    let (epoch, offset) = std::str::from_utf8(text).ok()?.split_once('.')?;
    let position = Position {
        epoch: epoch.parse().ok()?,
        offset: offset.parse().ok()?,
    };
    (position.epoch > 0 && position.offset > 0).then_some(Some(position))
}

/// A payload read off a channel, its origin known, its message not yet checked.
#[derive(Debug)]
pub(super) struct Arrival {
    /// The spear that published it.
    pub(super) origin: NodeId,
    /// Its place in its channel's history.
    pub(super) position: Option<Position>,
    wire: Vec<u8>,
    /// Where the message starts in `wire`.
    start: usize,
}

impl Arrival {
    /// Reads the origin and place of `wire`; `None` when they are not there.
    pub(super) fn parse(wire: Vec<u8>) -> Option<Self> {
        let split = wire.iter().position(|b| *b == b':')?;
        let origin = std::str::from_utf8(&wire[..split]).ok()?.parse().ok()?;
        let rest = &wire[split + 1..];
        let end = rest.iter().position(|b| *b == b':')?;
        let position = place(&rest[..end])?;
        Some(Self {
            origin,
            position,
            start: split + 1 + end + 1,
            wire,
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
    fn a_payload_names_its_origin_and_carries_the_message_as_it_was() {
        let wire = encode(42, None, r#"{"id": 1}"#);
        assert_eq!(wire, br#"42:-:{"id": 1}"#);
        let arrival = Arrival::parse(wire).expect("parses");
        assert_eq!((arrival.origin, arrival.position), (42, None));
        let message = arrival.into_message().expect("JSON");
        assert_eq!(message.get(), r#"{"id": 1}"#);
        let at = Position {
            epoch: 77,
            offset: 5,
        };
        let wire = encode(3, Some(at), r#"{"a":"x:y"}"#);
        assert_eq!(wire, br#"3:77.5:{"a":"x:y"}"#);
        let arrival = Arrival::parse(wire).expect("parses");
        assert_eq!((arrival.origin, arrival.position), (3, Some(at)));
        assert_eq!(
            arrival.into_message().expect("JSON").get(),
            r#"{"a":"x:y"}"#
        );
    }

    #[test]
    fn malformed_payloads_are_refused() {
        for bad in [
            &b"no origin"[..],
            b"x:-:{}",
            b":-:{}",
            b"1:{}",
            b"1:7:{}",
            b"1:0.1:{}",
            b"1:1.0:{}",
            b"1:a.b:{}",
            b"1:1.2.3:{}",
        ] {
            assert!(Arrival::parse(bad.to_vec()).is_none(), "{bad:?}");
        }
        let not_json = Arrival::parse(b"1:-:{".to_vec()).expect("origin");
        assert!(not_json.into_message().is_none());
        let not_utf8 = Arrival::parse(b"1:-:\"\xff\"".to_vec()).expect("origin");
        assert!(not_utf8.into_message().is_none());
    }
}
