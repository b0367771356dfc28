//! engine.io and socket.io packets of the lean transport, through the socketioxide project's
//! protocol crates (`engineioxide-core`, `socketioxide-core`, `socketioxide-parser-common`):
//! nothing of either protocol is parsed by hand here. Each outgoing packet becomes its final
//! WebSocket frame at once, so one encoding serves every connection it goes to.

use bytes::Bytes;
use engineioxide_core::{OpenPacket, Packet as EioPacket, Sid};
use serde::Serialize;
use socketioxide_core::packet::{ConnectPacket, Packet, PacketData};
use socketioxide_core::parser::{Parse, ParseConfig, ParserState};
use socketioxide_core::{Str, Value};
use socketioxide_parser_common::CommonParser;

use super::conn::Eio;
use super::frame::text_frame;

/// The only namespace a spear serves.
const NS: &str = "/";

/// What the open packet tells the client.
#[derive(Debug, Clone, Copy)]
pub(super) struct OpenFields {
    pub(super) ping_interval: std::time::Duration,
    pub(super) ping_timeout: std::time::Duration,
    pub(super) max_payload: u64,
}

/// The engine.io open packet of session `sid`: no upgrades (it is a WebSocket already).
pub(super) fn open_frame(sid: Sid, fields: OpenFields) -> Bytes {
    let open = OpenPacket {
        sid,
        upgrades: Default::default(),
        ping_interval: fields.ping_interval,
        ping_timeout: fields.ping_timeout,
        max_payload: fields.max_payload,
    };
    engine_frame(EioPacket::Open(open))
}

/// An engine.io packet as a frame.
pub(super) fn engine_frame(packet: EioPacket) -> Bytes {
    text_frame(String::from(packet).as_bytes())
}

/// A socket.io packet as a frame: an engine.io message carrying it.
fn socket_frame(packet: Packet) -> Option<Bytes> {
    match CommonParser.encode(packet) {
        Value::Str(text, None) => {
            let mut payload = Vec::with_capacity(text.len() + 1);
            payload.push(b'4');
            payload.extend_from_slice(text.as_bytes());
            Some(text_frame(&payload))
        }
        // Gru sends no binary data.
        _ => None,
    }
}

/// Event `event` with `data`, as the frame every recipient gets.
pub(super) fn event_frame<T: ?Sized + Serialize>(event: &str, data: &T) -> Option<Bytes> {
    let value = CommonParser.encode_value(data, Some(event)).ok()?;
    socket_frame(Packet::event(NS, value))
}

/// The ack `id` carrying `data`.
pub(super) fn ack_frame<T: ?Sized + Serialize>(id: i64, data: &T) -> Option<Bytes> {
    let value = CommonParser.encode_value(data, None).ok()?;
    socket_frame(Packet::ack(NS, value, id))
}

/// The namespace's connect packet: with the socket id for socket.io 5, bare for 4.
pub(super) fn connect_frame(eio: Eio, sid: Sid) -> Option<Bytes> {
    let payload = match eio {
        Eio::V4 => Some(CommonParser.encode_default(&ConnectPacket { sid }).ok()?),
        Eio::V3 => None,
    };
    socket_frame(Packet::connect(NS, payload))
}

/// The namespace's connect error with `message`.
pub(super) fn connect_error_frame(message: &str) -> Option<Bytes> {
    socket_frame(Packet::connect_error(NS, message))
}

/// The namespace's disconnect packet.
pub(super) fn disconnect_frame() -> Option<Bytes> {
    socket_frame(Packet::disconnect(NS))
}

/// What a client's socket.io packet asks for.
#[derive(Debug)]
pub(super) enum FromClient {
    /// Connect to the namespace, with the handshake's auth payload.
    Connect(Option<serde_json::Value>),
    /// Leave the namespace.
    Disconnect,
    /// An event, its payload (`None`: none, or not JSON the events take) and its ack id.
    Event {
        name: String,
        data: Option<serde_json::Value>,
        ack: Option<i64>,
    },
    /// An ack of a server event (the spear asks for none: ignored).
    Ack,
}

/// Why a client's packet ends its connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum Refused {
    /// Not a socket.io packet, or for another namespace.
    #[error("not a socket.io packet of this namespace: {0}")]
    Malformed(String),
    /// A packet with binary attachments (Gru's events take none).
    #[error("binary attachments are not accepted")]
    Binary,
}

/// Decodes one socket.io packet (the payload of an engine.io message).
pub(super) fn decode(text: Str) -> Result<FromClient, Refused> {
    let config = ParseConfig {
        max_incoming_binaries: 0,
        max_incoming_binary_buf_size: 0,
        ..ParseConfig::default()
    };
    let packet = CommonParser
        .decode_str(&config, &ParserState::default(), text)
        .map_err(|e| match e {
            socketioxide_core::parser::ParseError::TooManyAttachments { .. } => Refused::Binary,
            other => Refused::Malformed(other.to_string()),
        })?;
    if packet.ns != NS {
        return Err(Refused::Malformed(format!("namespace {}", packet.ns)));
    }
    match packet.inner {
        PacketData::Connect(auth) => {
            let auth = auth.and_then(|v| CommonParser.decode_default(Some(&v)).ok());
            Ok(FromClient::Connect(auth))
        }
        PacketData::Disconnect => Ok(FromClient::Disconnect),
        PacketData::Event(mut value, ack) => {
            let name = CommonParser
                .read_event(&value)
                .map_err(|e| Refused::Malformed(e.to_string()))?
                .to_string();
            let data = CommonParser.decode_value(&mut value, true).ok();
            Ok(FromClient::Event { name, data, ack })
        }
        PacketData::EventAck(..) => Ok(FromClient::Ack),
        PacketData::BinaryEvent(..) | PacketData::BinaryAck(..) => Err(Refused::Binary),
        PacketData::ConnectError(_) => Err(Refused::Malformed("connect error".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(frame: &Bytes) -> &str {
        // Small frames: a two-byte header.
        std::str::from_utf8(&frame[2..]).expect("text")
    }

    #[test]
    fn outgoing_packets_are_engine_messages_of_socket_packets() {
        let event = event_frame("msg", &serde_json::json!({"a": 1})).expect("encodes");
        assert_eq!(payload(&event), r#"42["msg",{"a":1}]"#);
        let ack = ack_frame(7, &serde_json::json!({"ok": true})).expect("encodes");
        assert_eq!(payload(&ack), r#"437[{"ok":true}]"#);
        assert_eq!(
            payload(&connect_frame(Eio::V3, Sid::ZERO).expect("v3")),
            "40"
        );
        let v5 = connect_frame(Eio::V4, Sid::ZERO).expect("v5");
        assert!(
            payload(&v5).starts_with(r#"40{"sid":""#),
            "{}",
            payload(&v5)
        );
        assert_eq!(payload(&disconnect_frame().expect("41")), "41");
        let error = connect_error_frame("1001: draining").expect("44");
        assert_eq!(payload(&error), r#"44{"message":"1001: draining"}"#);
    }

    #[test]
    fn incoming_packets_decode_to_what_the_events_take() {
        match decode(Str::from(r#"25["msg",{"content":"hi"}]"#.to_string())) {
            Ok(FromClient::Event { name, data, ack }) => {
                assert_eq!(name, "msg");
                assert_eq!(data, Some(serde_json::json!({"content": "hi"})));
                assert_eq!(ack, Some(5));
            }
            other => panic!("{other:?}"),
        }
        match decode(Str::from(r#"0{"token":"t"}"#.to_string())) {
            Ok(FromClient::Connect(Some(auth))) => assert_eq!(auth["token"], "t"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode(Str::from("1".to_string())),
            Ok(FromClient::Disconnect)
        ));
        assert_eq!(
            decode(Str::from(
                r#"51-["msg",{"_placeholder":true,"num":0}]"#.to_string()
            ))
            .map(|_| ()),
            Err(Refused::Binary)
        );
        assert!(decode(Str::from("9".to_string())).is_err());
        assert!(decode(Str::from(r#"2/admin,["x"]"#.to_string())).is_err());
    }
}
