//! Tokens as the cluster's parties mint them, signed with the harness's secrets
//! ([`BUSINESS_SECRET`], [`SPEAR_SECRET`]).

use gru::services::auth::{Claims, TokenKey, TokenKind};

use crate::{BUSINESS_SECRET, SPEAR_SECRET};

/// A token1 as a business system would mint it for user `uid` named `name`, valid ten minutes.
pub fn token1(uid: u64, name: &str) -> String {
    TokenKey::new(TokenKind::Business, BUSINESS_SECRET.as_bytes()).sign(Claims {
        typ: TokenKind::Business,
        uid,
        name: name.into(),
        app: "web".into(),
        exp: gru::clock::unix_ms() / 1000 + 600,
        groups: None,
        spears: None,
    })
}

/// A spear token signed with the cluster's secret, for `spears`, expiring at `exp` (Unix s).
pub fn spear_token(uid: u64, spears: Vec<u64>, exp: u64) -> String {
    TokenKey::new(TokenKind::Spear, SPEAR_SECRET.as_bytes()).sign(Claims {
        typ: TokenKind::Spear,
        uid,
        name: "test".into(),
        app: "web".into(),
        exp,
        groups: None,
        spears: Some(spears),
    })
}
