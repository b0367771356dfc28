//! gru's own WebSocket transport reading a client's bytes: frames (masking, lengths,
//! fragments, control frames, the payload limit), then engine.io and socket.io packets. No
//! input may panic, and the first byte cuts the rest into pieces: however the bytes arrive,
//! the transport must read the same frames and end at the same error.

#![no_main]

use gru::api::socketio::read_client_bytes;
use libfuzzer_sys::fuzz_target;

/// A small payload limit, so that inputs reach it.
const MAX: usize = 300;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, data)) = data.split_first() else {
        return;
    };
    let whole = read_client_bytes(data, data.len(), MAX);
    let pieces = read_client_bytes(data, usize::from(cut % 16) + 1, MAX);
    assert_eq!(whole, pieces);
});
