//! Bearer keys: a caller presents a secret (`Authorization: Bearer …`, or the dashboard's
//! login form), and gets back the name and scopes of the key it matched, or why not. The
//! server API's keys (`[[auth.api_keys]]`) and the admin surface's (`[[auth.admin_keys]]`)
//! are both [`BearerKeys`], each with its own scopes.
//!
//! Secrets are kept only as SHA-256 digests and compared in constant time, every key each
//! time, so neither the answer nor its timing tells how close a guess was.

use sha2::{Digest, Sha256};

use crate::config::{AdminKeySection, AdminScope, ApiKeySection, ApiScope};

/// What a kind of key may be allowed to do.
pub trait KeyScope: Copy + Eq + std::fmt::Debug + Send + Sync + 'static {
    /// The config table its keys are in, for errors.
    const SECTION: &'static str;
    /// What its keys are called in errors ("API key").
    const KIND: &'static str;
    /// The scope's name in the config and in errors.
    fn name(self) -> &'static str;
    /// Whether a key holding `self` may do `wanted`.
    fn covers(self, wanted: Self) -> bool {
        self == wanted
    }
}

impl KeyScope for ApiScope {
    const SECTION: &'static str = "[[auth.api_keys]]";
    const KIND: &'static str = "API key";
    fn name(self) -> &'static str {
        ApiScope::name(self)
    }
}

impl KeyScope for AdminScope {
    const SECTION: &'static str = "[[auth.admin_keys]]";
    const KIND: &'static str = "admin key";
    fn name(self) -> &'static str {
        AdminScope::name(self)
    }
    /// `admin` may do everything `read` may.
    fn covers(self, wanted: Self) -> bool {
        self == AdminScope::Admin || self == wanted
    }
}

/// Who called: the key a secret matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller<S> {
    /// The key's name.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<S>,
}

impl<S: KeyScope> Caller<S> {
    /// Whether the key may do `scope`.
    pub fn may(&self, scope: S) -> bool {
        self.scopes.iter().any(|s| s.covers(scope))
    }
}

/// A server-API caller.
pub type ApiCaller = Caller<ApiScope>;
/// An admin-surface caller.
pub type AdminCaller = Caller<AdminScope>;

/// Why a request was not let in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// No credentials.
    #[error("missing {kind}: send `Authorization: Bearer <key>` (keys are in {section})")]
    Missing {
        /// What the keys are called.
        kind: &'static str,
        /// Where the keys are configured.
        section: &'static str,
    },
    /// Credentials of another kind than a bearer key.
    #[error("the Authorization header must be `Bearer <key>`")]
    Malformed,
    /// No key in force has this secret.
    #[error("unknown {kind}")]
    Unknown {
        /// What the keys are called.
        kind: &'static str,
    },
    /// The key exists but may not do this.
    #[error("{kind} {name:?} may not {scope} (its scopes lack \"{scope}\")")]
    Forbidden {
        /// What the keys are called.
        kind: &'static str,
        /// The key.
        name: String,
        /// What it lacks.
        scope: &'static str,
    },
}

/// The server API's errors (the same as every key's).
pub type ApiKeyError = KeyError;

#[derive(Clone)]
struct Entry<S> {
    digest: [u8; 32],
    caller: Caller<S>,
}

/// The keys of one kind in force (part of `AuthKeys`, replaced whole on reload).
#[derive(Clone)]
pub struct BearerKeys<S>(Vec<Entry<S>>);

/// The server API's keys.
pub type ApiKeys = BearerKeys<ApiScope>;
/// The admin surface's keys.
pub type AdminKeys = BearerKeys<AdminScope>;

impl<S> Default for BearerKeys<S> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<S> std::fmt::Debug for BearerKeys<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|e| e.caller.name.as_str()).collect();
        f.debug_tuple("BearerKeys").field(&names).finish()
    }
}

fn digest(secret: &[u8]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

impl ApiKeys {
    /// The keys of `[[auth.api_keys]]`.
    pub fn new(keys: &[ApiKeySection]) -> Self {
        Self::of(keys.iter().map(|k| (&k.name, &k.secret, &k.scopes[..])))
    }
}

impl AdminKeys {
    /// The keys of `[[auth.admin_keys]]`.
    pub fn new(keys: &[AdminKeySection]) -> Self {
        Self::of(keys.iter().map(|k| (&k.name, &k.secret, &k.scopes[..])))
    }
}

impl<S: KeyScope> BearerKeys<S> {
    fn of<'a>(keys: impl Iterator<Item = (&'a String, &'a String, &'a [S])>) -> Self {
        Self(
            keys.map(|(name, secret, scopes)| Entry {
                digest: digest(secret.as_bytes()),
                caller: Caller {
                    name: name.clone(),
                    scopes: scopes.to_vec(),
                },
            })
            .collect(),
        )
    }

    /// The key whose secret this is, whatever it may do (a constant-time look over all).
    pub fn find(&self, secret: &[u8]) -> Option<&Caller<S>> {
        let presented = digest(secret);
        let mut found = None;
        for entry in &self.0 {
            let diff = entry
                .digest
                .iter()
                .zip(presented.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 {
                found = Some(&entry.caller);
            }
        }
        found
    }

    /// The key named `name`, if it is still in force.
    pub fn named(&self, name: &str) -> Option<&Caller<S>> {
        self.0.iter().map(|e| &e.caller).find(|c| c.name == name)
    }

    /// The caller whose `Authorization` header value this is, allowed to do `scope`.
    pub fn check(&self, authorization: Option<&[u8]>, scope: S) -> Result<Caller<S>, KeyError> {
        let header = authorization.ok_or(KeyError::Missing {
            kind: S::KIND,
            section: S::SECTION,
        })?;
        let secret = bearer(header).ok_or(KeyError::Malformed)?;
        let caller = self
            .find(secret)
            .ok_or(KeyError::Unknown { kind: S::KIND })?;
        if !caller.may(scope) {
            return Err(KeyError::Forbidden {
                kind: S::KIND,
                name: caller.name.clone(),
                scope: scope.name(),
            });
        }
        Ok(caller.clone())
    }
}

/// The secret of `Bearer <secret>` (the scheme's case does not matter, RFC 7235).
fn bearer(header: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = header.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let secret = rest.trim_ascii();
    (!secret.is_empty()).then_some(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, secret: &str, scopes: Vec<ApiScope>) -> ApiKeySection {
        ApiKeySection {
            name: name.into(),
            secret: secret.into(),
            scopes,
        }
    }

    #[test]
    fn a_bearer_secret_finds_its_key_and_scope() {
        let keys = ApiKeys::new(&[
            key("a", "secret-a-000000000000000000000000000", ApiScope::all()),
            key(
                "b",
                "secret-b-000000000000000000000000000",
                vec![ApiScope::Publish],
            ),
        ]);
        let ok = keys
            .check(
                Some(b"Bearer secret-a-000000000000000000000000000"),
                ApiScope::Connections,
            )
            .expect("key a");
        assert_eq!(ok.name, "a");
        let b = keys.check(
            Some(b"bearer  secret-b-000000000000000000000000000 "),
            ApiScope::Publish,
        );
        assert_eq!(b.map(|c| c.name), Ok("b".to_string()));
        assert_eq!(
            keys.check(
                Some(b"Bearer secret-b-000000000000000000000000000"),
                ApiScope::Connections
            ),
            Err(ApiKeyError::Forbidden {
                kind: "API key",
                name: "b".into(),
                scope: "connections"
            })
        );
        assert_eq!(
            keys.check(None, ApiScope::Publish),
            Err(ApiKeyError::Missing {
                kind: "API key",
                section: "[[auth.api_keys]]"
            })
        );
        for bad in [&b"Basic abc"[..], b"Bearer", b"Bearer   ", b"secret-a"] {
            assert_eq!(
                keys.check(Some(bad), ApiScope::Publish),
                Err(ApiKeyError::Malformed),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            keys.check(
                Some(b"Bearer secret-a-00000000000000000000000000"),
                ApiScope::Publish
            ),
            Err(ApiKeyError::Unknown { kind: "API key" }),
            "one byte short"
        );
        let debug = format!("{keys:?}");
        assert!(
            debug.contains("\"a\"") && !debug.contains("secret"),
            "{debug}"
        );
    }
}
