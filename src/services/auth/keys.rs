//! The secrets in force, as one value that is swapped whole when `[auth]` is reloaded.
//!
//! Each kind of token has a [`KeyRing`]: the current secret signs and verifies, and during a
//! rotation the previous one still verifies, so tokens signed before the change keep working
//! until the operator removes it (`docs/security.md`).

use std::sync::{Arc, RwLock};

use super::api_key::{AdminKeys, ApiKeys};
use super::legacy;
use super::token::{Claims, TokenError, TokenKey, TokenKind};
use crate::config::AuthSection;

/// The secrets of one kind of token: the current one, and the one being replaced.
#[derive(Clone, Debug)]
pub struct KeyRing {
    current: TokenKey,
    previous: Option<TokenKey>,
}

impl KeyRing {
    /// A ring for `kind` from the current secret and, during a rotation, the previous one.
    pub fn new(kind: TokenKind, current: &str, previous: Option<&str>) -> Self {
        Self {
            current: TokenKey::new(kind, current.as_bytes()),
            previous: previous.map(|p| TokenKey::new(kind, p.as_bytes())),
        }
    }

    /// Signs with the current secret.
    pub fn sign(&self, claims: Claims) -> String {
        self.current.sign(claims)
    }

    /// Verifies with the current secret, then with the previous one when the signature alone
    /// did not match (an expired or malformed token is refused whatever the key).
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        match (self.current.verify(token, now), &self.previous) {
            (Err(TokenError::BadSignature), Some(previous)) => previous.verify(token, now),
            (result, _) => result,
        }
    }
}

/// Gru's MD5 salts in force (`auth.legacy_md5`): current first, then the previous ones.
#[derive(Clone, Debug)]
pub struct LegacySalts {
    business: Vec<String>,
    spear: Vec<String>,
}

impl LegacySalts {
    fn new(auth: &AuthSection) -> Self {
        let both = |current: &String, previous: &Option<String>| {
            std::iter::once(current.clone())
                .chain(previous.clone())
                .collect()
        };
        Self {
            business: both(&auth.business_secret, &auth.previous_business_secret),
            spear: both(&auth.spear_secret, &auth.previous_spear_secret),
        }
    }

    /// Whether `token1` is a user's legacy token1 under any business salt in force.
    pub fn token1_ok(&self, uid: u64, name: &str, app: &str, token1: &str) -> bool {
        self.business
            .iter()
            .any(|salt| legacy::same(&legacy::token1(uid, name, app, salt), token1))
    }

    /// Whether `token2` is the legacy token2 for `token1` under any spear salt in force.
    pub fn token2_ok(&self, uid: u64, name: &str, app: &str, token1: &str, token2: &str) -> bool {
        self.spear
            .iter()
            .any(|salt| legacy::same(&legacy::token2(uid, name, app, token1, salt), token2))
    }

    /// The legacy token2 ticket hands out, under the current spear salt.
    pub fn token2(&self, uid: u64, name: &str, app: &str, token1: &str) -> String {
        let salt = self.spear.first().map(String::as_str).unwrap_or_default();
        legacy::token2(uid, name, app, token1, salt)
    }
}

/// Everything token checks need from `[auth]`.
#[derive(Clone, Debug)]
pub struct AuthKeys {
    /// token1 (business system).
    pub business: KeyRing,
    /// token2 (ticket to spear).
    pub spear: KeyRing,
    /// Lifetime of issued spear tokens, seconds.
    pub ttl_secs: u64,
    /// Gru's MD5 salts, when `auth.legacy_md5` is on.
    pub legacy: Option<LegacySalts>,
    /// Refuse groups a token does not list.
    pub enforce_groups: bool,
    /// The server API's keys.
    pub api: ApiKeys,
    /// The admin surface's keys.
    pub admin: AdminKeys,
    /// The secret this node presents to other nodes' admin surfaces (the first admin key that
    /// may read; every node has the same `[auth]`).
    pub peer_admin_key: Option<String>,
}

impl AuthKeys {
    /// The keys of `auth`.
    pub fn new(auth: &AuthSection) -> Self {
        Self {
            business: KeyRing::new(
                TokenKind::Business,
                &auth.business_secret,
                auth.previous_business_secret.as_deref(),
            ),
            spear: KeyRing::new(
                TokenKind::Spear,
                &auth.spear_secret,
                auth.previous_spear_secret.as_deref(),
            ),
            ttl_secs: auth.token_ttl_secs,
            legacy: auth.legacy_md5.then(|| LegacySalts::new(auth)),
            enforce_groups: auth.enforce_groups,
            api: ApiKeys::new(&auth.api_keys),
            admin: AdminKeys::new(&auth.admin_keys),
            peer_admin_key: auth.admin_keys.first().map(|k| k.secret.clone()),
        }
    }
}

/// The keys in force, shared by every token check of a node and replaced whole on reload.
#[derive(Clone, Debug)]
pub struct AuthStore(Arc<RwLock<Arc<AuthKeys>>>);

impl AuthStore {
    /// A store holding the keys of `auth`.
    pub fn new(auth: &AuthSection) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(AuthKeys::new(auth)))))
    }

    /// The keys in force now.
    pub fn current(&self) -> Arc<AuthKeys> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts the keys of `auth` in force; checks that started before keep the old ones.
    pub fn replace(&self, auth: &AuthSection) {
        let keys = Arc::new(AuthKeys::new(auth));
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = keys;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(uid: u64, exp: u64) -> Claims {
        Claims {
            typ: TokenKind::Spear,
            uid,
            name: "n".into(),
            app: "web".into(),
            exp,
            groups: None,
            spears: Some(vec![4]),
        }
    }

    #[test]
    fn a_ring_signs_with_the_current_secret_and_still_accepts_the_previous_one() {
        let old = KeyRing::new(TokenKind::Spear, "old-spear-secret-0001", None);
        let rotating = KeyRing::new(
            TokenKind::Spear,
            "new-spear-secret-0002",
            Some("old-spear-secret-0001"),
        );
        let done = KeyRing::new(TokenKind::Spear, "new-spear-secret-0002", None);
        let before = old.sign(claims(1, 100));
        let during = rotating.sign(claims(1, 100));
        assert_eq!(rotating.verify(&before, 50).map(|c| c.uid), Ok(1));
        assert_eq!(
            done.verify(&during, 50).map(|c| c.uid),
            Ok(1),
            "new key signs"
        );
        assert_eq!(
            done.verify(&before, 50),
            Err(TokenError::BadSignature),
            "the old key is gone"
        );
        assert_eq!(
            rotating.verify(&before, 100),
            Err(TokenError::Expired),
            "an expired token stays expired under either key"
        );
    }

    #[test]
    fn a_replaced_store_serves_the_new_keys() {
        let mut auth = AuthSection {
            business_secret: "business-secret-0001".into(),
            spear_secret: "spear-secret-00000001".into(),
            token_ttl_secs: 60,
            legacy_md5: true,
            enforce_groups: false,
            previous_business_secret: None,
            previous_spear_secret: None,
            api_keys: Vec::new(),
            admin_keys: Vec::new(),
            gossip_keys: Vec::new(),
        };
        let store = AuthStore::new(&auth);
        let t1 = legacy::token1(7, "n", "web", "business-secret-0001");
        assert!(store
            .current()
            .legacy
            .as_ref()
            .is_some_and(|l| l.token1_ok(7, "n", "web", &t1)));
        auth.previous_business_secret = Some(auth.business_secret.clone());
        auth.business_secret = "business-secret-0002".into();
        store.replace(&auth);
        let keys = store.current();
        let legacy = keys.legacy.as_ref().expect("legacy on");
        assert!(legacy.token1_ok(7, "n", "web", &t1), "previous salt");
        let t1_new = legacy::token1(7, "n", "web", "business-secret-0002");
        assert!(legacy.token1_ok(7, "n", "web", &t1_new), "current salt");
    }
}
