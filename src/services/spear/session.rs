//! A connection's authenticated user, and how its spear token is checked.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::protocol::AuthPayload;
use crate::config::{AuthSection, NodeId};
use crate::services::auth::{legacy, TokenKey, TokenKind};

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
    /// Message rate limiter, shared by every clone of the session.
    pub limiter: Arc<RateLimiter>,
}

/// A fixed one-second window: at most `per_sec` events per wall-clock second.
#[derive(Debug)]
pub struct RateLimiter {
    per_sec: u32,
    /// High 32 bits: the second; low 32 bits: events in it.
    window: AtomicU64,
}

impl RateLimiter {
    /// A limiter allowing `per_sec` events per second.
    pub fn new(per_sec: u32) -> Self {
        Self {
            per_sec,
            window: AtomicU64::new(0),
        }
    }

    /// Counts one event at `now_sec`; false when the limit is reached.
    pub fn allow(&self, now_sec: u64) -> bool {
        let second = now_sec & 0xffff_ffff;
        let mut current = self.window.load(Ordering::Relaxed);
        loop {
            let (sec, count) = (current >> 32, current & 0xffff_ffff);
            let next = if sec == second {
                (sec << 32) | (count + 1)
            } else {
                (second << 32) | 1
            };
            if sec == second && count >= u64::from(self.per_sec) {
                return false;
            }
            match self.window.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(seen) => current = seen,
            }
        }
    }
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

/// Checks spear tokens for this spear.
#[derive(Clone)]
pub struct Verifier {
    node_id: NodeId,
    key: TokenKey,
    legacy_salts: Option<(String, String)>,
    max_msgs_per_sec: u32,
}

impl Verifier {
    /// A verifier for spear `node_id` with the cluster's secrets.
    pub fn new(node_id: NodeId, auth: &AuthSection, max_msgs_per_sec: u32) -> Self {
        Self {
            node_id,
            key: TokenKey::new(TokenKind::Spear, auth.spear_secret.as_bytes()),
            legacy_salts: auth
                .legacy_md5
                .then(|| (auth.business_secret.clone(), auth.spear_secret.clone())),
            max_msgs_per_sec,
        }
    }

    /// Checks a signed spear token alone (the modern handshake).
    pub fn verify_token(&self, token2: &str, now_sec: u64) -> Result<Session, AuthError> {
        let claims = self
            .key
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
            limiter: Arc::new(RateLimiter::new(self.max_msgs_per_sec)),
        })
    }

    /// Checks Gru's `auth` event: a signed token2 for this user, or (legacy mode) the MD5
    /// token pair.
    pub fn verify_auth(&self, p: &AuthPayload, now_sec: u64) -> Result<Session, AuthError> {
        let token2 = p
            .token2
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        if token2.starts_with("v1.") {
            let session = self.verify_token(token2, now_sec)?;
            if session.uid != p.id {
                return Err(AuthError::Invalid("the token is for another user".into()));
            }
            return Ok(session);
        }
        let Some((salt1, salt2)) = &self.legacy_salts else {
            return Err(AuthError::Invalid("not a signed token".into()));
        };
        let app = p.app_type.clone().unwrap_or_default();
        let token1 = p.token1.as_deref().unwrap_or_default();
        let good = legacy::same(&legacy::token1(p.id, &p.name, &app, salt1), token1)
            && legacy::same(&legacy::token2(p.id, &p.name, &app, token1, salt2), token2);
        if !good {
            return Err(AuthError::Invalid("legacy tokens do not match".into()));
        }
        Ok(Session {
            uid: p.id,
            name: p.name.clone(),
            app,
            allowed_groups: None,
            limiter: Arc::new(RateLimiter::new(self.max_msgs_per_sec)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::auth::Claims;

    fn auth(legacy_md5: bool) -> AuthSection {
        AuthSection {
            business_secret: "business-secret-0123456789".into(),
            spear_secret: "spear-secret-0123456789abcd".into(),
            token_ttl_secs: 600,
            legacy_md5,
            enforce_groups: false,
        }
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

    fn payload(id: u64, token2: &str) -> AuthPayload {
        AuthPayload {
            id,
            name: "Zhang".into(),
            app_type: Some("web".into()),
            token1: None,
            token2: Some(token2.into()),
        }
    }

    #[test]
    fn signed_tokens_bind_user_spear_and_expiry() {
        let v = Verifier::new(4, &auth(false), 10);
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
        p.token1 = Some(t1);
        assert!(Verifier::new(4, &auth(false), 10)
            .verify_auth(&p, 0)
            .is_err());
        assert!(Verifier::new(4, &auth(true), 10).verify_auth(&p, 0).is_ok());
        p.id = 124;
        assert!(Verifier::new(4, &auth(true), 10)
            .verify_auth(&p, 0)
            .is_err());
    }

    #[test]
    fn the_rate_limiter_counts_per_second() {
        let l = RateLimiter::new(3);
        assert!((0..3).all(|_| l.allow(7)));
        assert!(!l.allow(7));
        assert!(l.allow(8));
    }
}
