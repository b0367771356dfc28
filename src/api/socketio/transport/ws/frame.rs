//! WebSocket frames of gru's own transport: the client's masked frames read, the server's
//! frames written. Header parsing and formatting are tungstenite's ([`FrameHeader`]); what is
//! left here is the frame loop: unmasking, reassembling a fragmented text message within the
//! payload limit, and the few control frames.

use std::io::Cursor;

use bytes::{Buf, Bytes, BytesMut};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

/// What the client sent, frame by frame as far as the transport cares.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Incoming {
    /// A whole text message (engine.io packets travel as text).
    Text(String),
    /// A ping: answered with a pong carrying its payload.
    Ping(Bytes),
    /// A pong (unasked; ignored).
    Pong,
    /// The client closes, with its status code when it gave one.
    Close(Option<u16>),
}

/// Why the connection must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum FrameError {
    /// Broken framing: reserved bits, an unmasked frame, an unknown opcode, a fragmented
    /// control frame, a continuation out of place.
    #[error("WebSocket protocol error")]
    Protocol,
    /// A binary message: Gru's packets are text, and socket.io attachments are refused.
    #[error("binary frames are not accepted")]
    Binary,
    /// A message over `spear.max_payload_bytes`.
    #[error("message too large")]
    TooLarge,
    /// A text message that is not UTF-8.
    #[error("text that is not UTF-8")]
    NotUtf8,
}

/// Reads frames out of what arrives; holds memory only while a frame is incomplete.
pub(super) struct Reader {
    /// Bytes read and not yet a whole frame.
    buf: BytesMut,
    /// A fragmented text message being reassembled.
    partial: Option<BytesMut>,
    /// Largest message accepted.
    max: usize,
}

impl Reader {
    /// A reader of messages up to `max` bytes.
    pub(super) fn new(max: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            partial: None,
            max,
        }
    }

    /// Takes bytes read from the connection.
    pub(super) fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Whether nothing is held (no partial frame or message).
    pub(super) fn is_idle(&self) -> bool {
        self.buf.is_empty() && self.partial.is_none()
    }

    /// Frees the buffers while nothing is held: an idle connection keeps no read memory.
    pub(super) fn release(&mut self) {
        if self.is_idle() {
            self.buf = BytesMut::new();
        }
    }

    /// The next complete frame of interest, `Ok(None)` when more bytes are needed.
    pub(super) fn next(&mut self) -> Result<Option<Incoming>, FrameError> {
        loop {
            let mut cursor = Cursor::new(&self.buf[..]);
            let Some((header, len)) =
                FrameHeader::parse(&mut cursor).map_err(|_| FrameError::Protocol)?
            else {
                return Ok(None);
            };
            let header_len =
                usize::try_from(cursor.position()).map_err(|_| FrameError::Protocol)?;
            let len = usize::try_from(len).map_err(|_| FrameError::TooLarge)?;
            let held = self.partial.as_ref().map_or(0, BytesMut::len);
            if len > self.max.saturating_sub(held) {
                return Err(FrameError::TooLarge);
            }
            if self.buf.len() < header_len + len {
                // Room for the rest of the frame, once.
                self.buf.reserve(header_len + len - self.buf.len());
                return Ok(None);
            }
            self.buf.advance(header_len);
            let mut payload = self.buf.split_to(len);
            if header.rsv1 || header.rsv2 || header.rsv3 {
                return Err(FrameError::Protocol);
            }
            let mask = header.mask.ok_or(FrameError::Protocol)?;
            unmask(&mut payload, mask);
            if let Some(incoming) = self.frame(header.opcode, header.is_final, payload)? {
                return Ok(Some(incoming));
            }
        }
    }

    /// One unmasked frame: a message when it completes one.
    fn frame(
        &mut self,
        opcode: OpCode,
        fin: bool,
        payload: BytesMut,
    ) -> Result<Option<Incoming>, FrameError> {
        match opcode {
            OpCode::Control(control) => {
                if !fin || payload.len() > 125 {
                    return Err(FrameError::Protocol);
                }
                match control {
                    Control::Ping => Ok(Some(Incoming::Ping(payload.freeze()))),
                    Control::Pong => Ok(Some(Incoming::Pong)),
                    Control::Close => Ok(Some(Incoming::Close(close_code(&payload)))),
                    Control::Reserved(_) => Err(FrameError::Protocol),
                }
            }
            OpCode::Data(Data::Binary) => Err(FrameError::Binary),
            OpCode::Data(Data::Reserved(_)) => Err(FrameError::Protocol),
            OpCode::Data(Data::Text) => {
                if self.partial.is_some() {
                    return Err(FrameError::Protocol);
                }
                if fin {
                    return text(payload).map(Some);
                }
                self.partial = Some(payload);
                Ok(None)
            }
            OpCode::Data(Data::Continue) => {
                let Some(partial) = self.partial.as_mut() else {
                    return Err(FrameError::Protocol);
                };
                partial.extend_from_slice(&payload);
                if !fin {
                    return Ok(None);
                }
                let whole = self.partial.take().unwrap_or_default();
                text(whole).map(Some)
            }
        }
    }
}

/// A whole text message, checked to be UTF-8 (in place: the bytes become the string).
fn text(payload: BytesMut) -> Result<Incoming, FrameError> {
    String::from_utf8(Vec::from(payload))
        .map(Incoming::Text)
        .map_err(|_| FrameError::NotUtf8)
}

/// The status code of a close frame's payload, when it has one.
fn close_code(payload: &[u8]) -> Option<u16> {
    match payload {
        [a, b, ..] => Some(u16::from_be_bytes([*a, *b])),
        _ => None,
    }
}

/// Undoes the client's masking (RFC 6455 §5.3).
fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    for (i, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
}

/// A server frame (unmasked, final) of `opcode` carrying `payload`, header and payload in one
/// buffer: what is written to every recipient of a message as it is.
fn frame(opcode: OpCode, payload: &[u8]) -> Bytes {
    let header = FrameHeader {
        opcode,
        ..FrameHeader::default()
    };
    let len = payload.len() as u64;
    let mut out = Vec::with_capacity(header.len(len) + payload.len());
    // Writing into a Vec cannot fail.
    let _ = header.format(len, &mut out);
    out.extend_from_slice(payload);
    Bytes::from(out)
}

/// A text frame of `payload`.
pub(super) fn text_frame(payload: &[u8]) -> Bytes {
    frame(OpCode::Data(Data::Text), payload)
}

/// A pong answering a ping's `payload`.
pub(super) fn pong_frame(payload: &[u8]) -> Bytes {
    frame(OpCode::Control(Control::Pong), payload)
}

/// A close frame with status `code`, or without one.
pub(super) fn close_frame(code: Option<u16>) -> Bytes {
    let payload = code.map(u16::to_be_bytes);
    frame(
        OpCode::Control(Control::Close),
        payload.as_ref().map_or(&[][..], |p| &p[..]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame: masked with `mask`, as a browser sends it.
    fn client_frame(opcode: OpCode, fin: bool, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let header = FrameHeader {
            is_final: fin,
            opcode,
            mask: Some(mask),
            ..FrameHeader::default()
        };
        let mut out = Vec::new();
        header
            .format(payload.len() as u64, &mut out)
            .expect("a Vec takes it");
        let mut body = payload.to_vec();
        unmask(&mut body, mask);
        out.extend_from_slice(&body);
        out
    }

    const TEXT: OpCode = OpCode::Data(Data::Text);
    const MASK: [u8; 4] = [1, 2, 3, 4];

    #[test]
    fn a_masked_text_frame_read_in_pieces_is_one_message() {
        let bytes = client_frame(TEXT, true, b"42[\"msg\",{}]", MASK);
        let mut reader = Reader::new(1024);
        for byte in &bytes[..bytes.len() - 1] {
            reader.feed(&[*byte]);
            assert_eq!(reader.next(), Ok(None));
        }
        reader.feed(&bytes[bytes.len() - 1..]);
        assert_eq!(
            reader.next(),
            Ok(Some(Incoming::Text("42[\"msg\",{}]".to_string())))
        );
        assert!(reader.is_idle());
    }

    #[test]
    fn fragments_are_joined_and_a_ping_between_them_is_answered() {
        let mut bytes = client_frame(TEXT, false, b"42[\"m", MASK);
        bytes.extend(client_frame(
            OpCode::Control(Control::Ping),
            true,
            b"p",
            MASK,
        ));
        bytes.extend(client_frame(
            OpCode::Data(Data::Continue),
            true,
            b"sg\"]",
            MASK,
        ));
        let mut reader = Reader::new(1024);
        reader.feed(&bytes);
        assert_eq!(
            reader.next(),
            Ok(Some(Incoming::Ping(Bytes::from_static(b"p"))))
        );
        assert_eq!(
            reader.next(),
            Ok(Some(Incoming::Text("42[\"msg\"]".to_string())))
        );
    }

    #[test]
    fn what_the_transport_refuses_is_named() {
        let cases: [(Vec<u8>, FrameError); 5] = [
            (
                client_frame(OpCode::Data(Data::Binary), true, b"x", MASK),
                FrameError::Binary,
            ),
            (
                client_frame(TEXT, true, &[0xff, 0xfe], MASK),
                FrameError::NotUtf8,
            ),
            (
                client_frame(TEXT, true, &[b'a'; 65], MASK),
                FrameError::TooLarge,
            ),
            (
                client_frame(OpCode::Data(Data::Continue), true, b"x", MASK),
                FrameError::Protocol,
            ),
            // An unmasked client frame.
            (text_frame(b"4x").to_vec(), FrameError::Protocol),
        ];
        for (bytes, expected) in cases {
            let mut reader = Reader::new(64);
            reader.feed(&bytes);
            assert_eq!(reader.next(), Err(expected), "{bytes:?}");
        }
        // Too large is found from the header, before the payload arrives.
        let big = client_frame(TEXT, true, &[b'a'; 1000], MASK);
        let mut reader = Reader::new(64);
        reader.feed(&big[..8]);
        assert_eq!(reader.next(), Err(FrameError::TooLarge));
    }

    #[test]
    fn a_close_frame_carries_its_code_and_server_frames_are_unmasked() {
        let mut reader = Reader::new(64);
        reader.feed(&client_frame(
            OpCode::Control(Control::Close),
            true,
            &1000u16.to_be_bytes(),
            MASK,
        ));
        assert_eq!(reader.next(), Ok(Some(Incoming::Close(Some(1000)))));
        assert_eq!(&text_frame(b"3")[..], &[0x81, 1, b'3']);
        assert_eq!(&close_frame(Some(1009))[..], &[0x88, 2, 0x03, 0xf1]);
        assert_eq!(&close_frame(None)[..], &[0x88, 0]);
        let long = text_frame(&[b'a'; 300]);
        assert_eq!(&long[..4], &[0x81, 126, 1, 44]);
        assert_eq!(long.len(), 304);
    }
}
