//! Every decoder of a socket.io event payload, on any bytes a client can send: as JSON text
//! inside a string (Gru's clients) and as a JSON value, and the `resume` object of `auth`.
//! None may panic; every refusal must speak of fields and JSON types, not of Rust types.

#![no_main]

use gru::api::socketio::protocol::{
    decode, online_group, resume_points, AuthPayload, GroupsPayload, MsgPayload,
    SubscribePayload,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn check<T: serde::de::DeserializeOwned>(raw: Value) {
    if let Err(message) = decode::<T>(raw) {
        assert!(!message.contains("untagged"), "{message}");
        assert!(!message.contains("struct "), "{message}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut shapes = vec![Value::String(text.to_string())];
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        shapes.push(value);
    }
    for raw in shapes {
        check::<AuthPayload>(raw.clone());
        check::<SubscribePayload>(raw.clone());
        check::<MsgPayload>(raw.clone());
        check::<GroupsPayload>(raw.clone());
        // The `resume` object of `auth` and of the handshake.
        if let Err(message) = resume_points(raw.clone(), 7, 33) {
            assert!(!message.contains("struct "), "{message}");
        }
        let _ = online_group(raw);
    }
});
