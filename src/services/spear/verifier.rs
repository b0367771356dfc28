//! A connection's authenticated user, and how its spear token is checked.

use std::sync::Arc;

use crate::config::NodeId;
use crate::services::auth::AuthStore;

/// What a client presents in Gru's `auth` event, however the edge decoded it.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    /// The user id.
    pub id: u64,
    /// The user's name.
    pub name: &'a str,
    /// The app type, if the client sent one.
    pub app_type: Option<&'a str>,
    /// The business token (legacy scheme only).
    pub token1: Option<&'a str>,
    /// The spear token from ticket.
    pub token2: Option<&'a str>,
}

/// The user bound to a connection by `auth` (or the handshake token).
#[derive(Debug, Clone)]
pub struct Session {
    /// The user id.
    pub uid: u64,
    /// The user's name.
    pub name: String,
    /// The app type.
    pub app: String,
    /// The groups the token allows, when it restricts them.
    pub allowed_groups: Option<Arc<[u64]>>,
    /// When the token expires, Unix seconds; `None` for Gru's legacy tokens, which never do.
    pub expires_at: Option<u64>,
}

/// Why authentication failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No usable token.
    #[error("token2 is required")]
    Missing,
    /// The token is invalid, expired, for another user or another spear.
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// Checks spear tokens for this spear, with the keys in force.
#[derive(Clone)]
pub struct Verifier {
    node_id: NodeId,
    keys: AuthStore,
}

impl Verifier {
    /// A verifier for spear `node_id` over the node's keys (which a reload replaces).
    pub fn new(node_id: NodeId, keys: AuthStore) -> Self {
        Self { node_id, keys }
    }

    /// Whether groups outside a token's list are refused.
    pub fn enforce_groups(&self) -> bool {
        self.keys.current().enforce_groups
    }

    /// Checks a signed spear token alone (the modern handshake).
    pub fn verify_token(&self, token2: &str, now_sec: u64) -> Result<Session, AuthError> {
        let claims = self
            .keys
            .current()
            .spear
            .verify(token2, now_sec)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        if !claims
            .spears
            .as_deref()
            .unwrap_or_default()
            .contains(&self.node_id)
        {
            return Err(AuthError::Invalid(format!(
                "the token is not for spear {}",
                self.node_id
            )));
        }
        Ok(Session {
            uid: claims.uid,
            name: claims.name,
            app: claims.app,
            allowed_groups: claims.groups.map(Arc::from),
            expires_at: Some(claims.exp),
        })
    }

    /// Checks Gru's `auth` event: a signed token2 for this user, or (legacy mode) the MD5
    /// token pair.
    pub fn verify_auth(&self, p: &Credentials<'_>, now_sec: u64) -> Result<Session, AuthError> {
        let token2 = p
            .token2
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        if token2.starts_with("v1.") {
            let session = self.verify_token(token2, now_sec)?;
            if session.uid != p.id {
                return Err(AuthError::Invalid("the token is for another user".into()));
            }
            return Ok(session);
        }
        let keys = self.keys.current();
        let Some(salts) = &keys.legacy else {
            return Err(AuthError::Invalid("not a signed token".into()));
        };
        let app = p.app_type.unwrap_or_default().to_string();
        let token1 = p.token1.unwrap_or_default();
        let good = salts.token1_ok(p.id, p.name, &app, token1)
            && salts.token2_ok(p.id, p.name, &app, token1, token2);
        if !good {
            return Err(AuthError::Invalid("legacy tokens do not match".into()));
        }
        Ok(Session {
            uid: p.id,
            name: p.name.to_string(),
            app,
            allowed_groups: None,
            expires_at: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AuthSection;
    use crate::services::auth::{legacy, Claims, TokenKey, TokenKind};

    fn verifier(node: NodeId, auth: &AuthSection) -> Verifier {
        Verifier::new(node, AuthStore::new(auth))
    }

    fn auth(legacy_md5: bool) -> AuthSection {
        crate::services::auth::test_section(legacy_md5)
    }

    fn token2(uid: u64, spears: Vec<u64>, exp: u64) -> String {
        TokenKey::new(TokenKind::Spear, b"spear-secret-0123456789abcd").sign(Claims {
            typ: TokenKind::Spear,
            uid,
            name: "Zhang".into(),
            app: "web".into(),
            exp,
            groups: Some(vec![10]),
            spears: Some(spears),
        })
    }

    fn payload(id: u64, token2: &str) -> Credentials<'_> {
        Credentials {
            id,
            name: "Zhang",
            app_type: Some("web"),
            token1: None,
            token2: Some(token2),
        }
    }

    #[test]
    fn signed_tokens_bind_user_spear_and_expiry() {
        let v = verifier(4, &auth(false));
        let s = v
            .verify_auth(&payload(123, &token2(123, vec![5, 4], 100)), 50)
            .expect("valid");
        assert_eq!(
            (s.uid, s.allowed_groups.as_deref()),
            (123, Some(&[10u64][..]))
        );
        assert!(
            v.verify_auth(&payload(124, &token2(123, vec![4], 100)), 50)
                .is_err(),
            "other user"
        );
        assert!(
            v.verify_auth(&payload(123, &token2(123, vec![5], 100)), 50)
                .is_err(),
            "other spear"
        );
        assert!(
            v.verify_auth(&payload(123, &token2(123, vec![4], 100)), 100)
                .is_err(),
            "expired"
        );
        assert_eq!(
            v.verify_auth(&payload(123, ""), 50).unwrap_err(),
            AuthError::Missing
        );
    }

    #[test]
    fn legacy_tokens_only_in_legacy_mode() {
        let t1 = legacy::token1(123, "Zhang", "web", "business-secret-0123456789");
        let t2 = legacy::token2(123, "Zhang", "web", &t1, "spear-secret-0123456789abcd");
        let mut p = payload(123, &t2);
        p.token1 = Some(&t1);
        assert!(verifier(4, &auth(false)).verify_auth(&p, 0).is_err());
        assert!(verifier(4, &auth(true)).verify_auth(&p, 0).is_ok());
        p.id = 124;
        assert!(verifier(4, &auth(true)).verify_auth(&p, 0).is_err());
    }
}
