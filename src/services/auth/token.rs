//! Signed tokens: `v1.<payload>.<signature>`, both parts base64url without padding; the
//! payload is JSON [`Claims`], the signature HMAC-SHA256 over `v1.<payload>` with the
//! secret of the token's kind. Verification compares signatures in constant time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::config::NodeId;

const VERSION: &str = "v1";
/// Longest token accepted, so a hostile client cannot make us decode megabytes.
const MAX_TOKEN_LEN: usize = 4096;

/// Which secret signs a token, and so what it grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenKind {
    /// token1: issued by the business system (business secret), presented to ticket.
    #[serde(rename = "t1")]
    Business,
    /// token2: issued by ticket for one spear (spear secret), presented to that spear.
    #[serde(rename = "t2")]
    Spear,
}

/// What a token says about its holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The token's kind; checked against the key that verifies it.
    pub typ: TokenKind,
    /// The user id.
    pub uid: u64,
    /// The user's display name.
    pub name: String,
    /// The client application type (`web`, `android`, …).
    pub app: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// The groups the user may join, when the issuer restricts them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<u64>>,
    /// The spears a spear token is good for: the placement and its backups, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spears: Option<Vec<NodeId>>,
}

/// One of the fields that name a token's holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HolderField {
    /// [`Claims::uid`].
    UserId,
    /// [`Claims::name`].
    UserName,
    /// [`Claims::app`].
    AppType,
}

impl Claims {
    /// The fields in which these claims name another holder than `uid`, `name` and `app`, in
    /// that order; empty when the token is theirs.
    pub fn other_holder(&self, uid: u64, name: &str, app: &str) -> Vec<HolderField> {
        [
            (self.uid != uid, HolderField::UserId),
            (self.name != name, HolderField::UserName),
            (self.app != app, HolderField::AppType),
        ]
        .into_iter()
        .filter_map(|(differs, field)| differs.then_some(field))
        .collect()
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not of the form `v1.<payload>.<signature>`, or not decodable.
    #[error("malformed token")]
    Malformed,
    /// The signature does not match (wrong secret or altered token).
    #[error("bad token signature")]
    BadSignature,
    /// Signed for the other kind.
    #[error("wrong kind of token")]
    WrongKind,
    /// Past its expiry.
    #[error("token expired")]
    Expired,
}

/// A secret that signs and verifies tokens of one kind.
#[derive(Clone)]
pub struct TokenKey {
    kind: TokenKind,
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("TokenKey")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl TokenKey {
    /// A key for `kind` from `secret` (any length; config requires at least 16 bytes).
    pub fn new(kind: TokenKind, secret: &[u8]) -> Self {
        // HMAC accepts keys of every length, so this cannot fail.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        Self { kind, mac }
    }

    /// Signs `claims` (whose `typ` is set to this key's kind).
    pub fn sign(&self, mut claims: Claims) -> String {
        claims.typ = self.kind;
        // Serializing plain data to JSON cannot fail.
        let payload = serde_json::to_vec(&claims).unwrap_or_default();
        let signed = format!("{VERSION}.{}", URL_SAFE_NO_PAD.encode(payload));
        let mut mac = self.mac.clone();
        mac.update(signed.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signed}.{sig}")
    }

    /// Checks `token` at time `now` (Unix seconds) and returns its claims.
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let (signed, sig) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let (version, payload) = signed.split_once('.').ok_or(TokenError::Malformed)?;
        if version != VERSION {
            return Err(TokenError::Malformed);
        }
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac.clone();
        mac.update(signed.as_bytes());
        mac.verify_slice(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        if claims.typ != self.kind {
            return Err(TokenError::WrongKind);
        }
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        Claims {
            typ: TokenKind::Business,
            uid: 123,
            name: "Zhang".into(),
            app: "web".into(),
            exp,
            groups: Some(vec![10, 11]),
            spears: None,
        }
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let key = TokenKey::new(TokenKind::Business, b"0123456789abcdef-business");
        let token = key.sign(claims(1_000));
        assert_eq!(key.verify(&token, 999), Ok(claims(1_000)));
        assert_eq!(key.verify(&token, 1_000), Err(TokenError::Expired));
    }

    #[test]
    fn other_holder_names_each_field_that_differs() {
        let c = claims(1_000);
        assert_eq!(c.other_holder(123, "Zhang", "web"), []);
        assert_eq!(c.other_holder(123, "Li", "web"), [HolderField::UserName]);
        assert_eq!(
            c.other_holder(124, "Zhang", "android"),
            [HolderField::UserId, HolderField::AppType]
        );
    }

    #[test]
    fn altered_forged_and_cross_kind_tokens_are_refused() {
        let business = TokenKey::new(TokenKind::Business, b"0123456789abcdef-business");
        let other = TokenKey::new(TokenKind::Business, b"another-secret-0123456789");
        let spear = TokenKey::new(TokenKind::Spear, b"0123456789abcdef-business");
        let token = business.sign(claims(1_000));
        assert_eq!(other.verify(&token, 0), Err(TokenError::BadSignature));
        assert_eq!(spear.verify(&token, 0), Err(TokenError::WrongKind));

        let (signed, sig) = token.rsplit_once('.').expect("three parts");
        let mut forged = claims(u64::MAX);
        forged.uid = 1;
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).expect("json"));
        let tampered = format!("v1.{forged_payload}.{sig}");
        assert_eq!(business.verify(&tampered, 0), Err(TokenError::BadSignature));
        assert_eq!(
            business.verify(&format!("{signed}.AAAA"), 0),
            Err(TokenError::BadSignature)
        );
        for junk in [
            "",
            "v1",
            "v1.x",
            "v2.e30.AAAA",
            "v1.!!.!!",
            &"a".repeat(5000),
        ] {
            assert!(business.verify(junk, 0).is_err(), "{junk:?} accepted");
        }
    }
}
