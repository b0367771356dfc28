//! Token checks on any string a client can present as token1 or token2: signed tokens under
//! key rings with and without a previous secret, and Gru's legacy MD5 pair. Nothing may panic,
//! and a token is never accepted by a ring that holds none of the keys that could sign it. The
//! same bytes as an `Authorization` header of the server API: only the exact key passes.

#![no_main]

use gru::config::{ApiKeySection, ApiScope};
use gru::services::auth::{legacy, ApiKeys, KeyRing, TokenKind};
use libfuzzer_sys::fuzz_target;

/// The server API key the header check holds.
const API_SECRET: &str = "fuzz-server-api-key-000000000000000001";

fuzz_target!(|data: &[u8]| {
    let keys = ApiKeys::new(&[ApiKeySection {
        name: "fuzz".into(),
        secret: API_SECRET.into(),
        scopes: vec![ApiScope::Publish],
    }]);
    let exact = data.len() >= 7
        && data[..7].eq_ignore_ascii_case(b"bearer ")
        && data[7..].trim_ascii() == API_SECRET.as_bytes();
    assert_eq!(keys.check(Some(data), ApiScope::Publish).is_ok(), exact);
    assert!(keys.check(Some(data), ApiScope::Connections).is_err());
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let rotating = KeyRing::new(
        TokenKind::Spear,
        "fuzz-spear-secret-00000002",
        Some("fuzz-spear-secret-00000001"),
    );
    let business = KeyRing::new(TokenKind::Business, "fuzz-business-secret-0001", None);
    // Neither ring can be forged by fuzzing: any acceptance would be a signature bypass.
    assert!(rotating.verify(token, 1_764_000_000).is_err());
    assert!(business.verify(token, 1_764_000_000).is_err());
    let _ = legacy::same(token, "0123456789abcdef0123456789abcdef");
    let middle = token
        .char_indices()
        .map(|(i, _)| i)
        .nth(token.chars().count() / 2)
        .unwrap_or(token.len());
    let (head, tail) = token.split_at(middle);
    let _ = legacy::token2(7, head, tail, token, "salt");
});
