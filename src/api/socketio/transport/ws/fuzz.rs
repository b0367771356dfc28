//! The lean transport's reading of a client's bytes, laid open for the fuzz target
//! (`fuzz/fuzz_targets/ws_frames.rs`): the same frame reader and packet decoders the
//! connection's task runs, without a socket.

use engineioxide_core::{Packet as EioPacket, ProtocolVersion, Str};

use super::frame::{Incoming, Reader};
use super::packets;

/// What the transport makes of `data` from a client, arriving in pieces of `piece` bytes, with
/// messages of at most `max` bytes: one line per frame read, or for the error that ends the
/// connection, in order. A text message is decoded as an engine.io packet of protocol 3 and of
/// protocol 4, and a message packet as a socket.io packet. However the bytes are cut, the lines
/// are the same.
#[doc(hidden)]
pub fn read_client_bytes(data: &[u8], piece: usize, max: usize) -> Vec<String> {
    let mut reader = Reader::new(max);
    let mut lines = Vec::new();
    for chunk in data.chunks(piece.max(1)) {
        reader.feed(chunk);
        loop {
            match reader.next() {
                Ok(None) => break,
                Ok(Some(Incoming::Text(text))) => lines.push(decoded(&text)),
                Ok(Some(other)) => lines.push(format!("{other:?}")),
                Err(e) => {
                    lines.push(format!("ends: {e}"));
                    return lines;
                }
            }
        }
        reader.release();
    }
    lines
}

/// A text message as engine.io 3 and 4 read it, and the socket.io packet it carries.
fn decoded(text: &str) -> String {
    [ProtocolVersion::V3, ProtocolVersion::V4]
        .into_iter()
        .map(
            |version| match EioPacket::parse(version, Str::from(text.to_string())) {
                Ok(EioPacket::Message(msg)) => format!("message {:?}", packets::decode(msg)),
                Ok(packet) => format!("{packet:?}"),
                Err(e) => format!("not engine.io: {e}"),
            },
        )
        .collect::<Vec<_>>()
        .join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame (payloads under 126 bytes).
    fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1, 2, 3, 4];
        let mut out = vec![0x80 | opcode, 0x80 | payload.len() as u8];
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[test]
    fn every_cut_of_the_same_bytes_reads_the_same() {
        let mut data = client_frame(0x1, br#"42["msg",{"to":"u:2"}]"#);
        data.extend(client_frame(0x9, b"hi"));
        data.extend(client_frame(0x1, b"3"));
        data.extend(client_frame(0x2, b"\x00"));
        let whole = read_client_bytes(&data, data.len(), 1024);
        assert_eq!(whole.len(), 4, "{whole:?}");
        assert!(whole[0].contains("Event"), "{}", whole[0]);
        assert!(whole[3].starts_with("ends: binary"), "{}", whole[3]);
        for piece in 1..8 {
            assert_eq!(
                read_client_bytes(&data, piece, 1024),
                whole,
                "pieces of {piece}"
            );
        }
    }
}
