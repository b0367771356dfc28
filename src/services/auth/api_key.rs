//! The server API's keys: a business server presents a secret as a bearer token, and gets back
//! the name and scopes of the key it matched, or why not.
//!
//! Secrets are kept only as SHA-256 digests and compared in constant time, every key each
//! time, so neither the answer nor its timing tells how close a guess was.

use sha2::{Digest, Sha256};

use crate::config::{ApiKeySection, ApiScope};

/// Who called: the key a bearer secret matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCaller {
    /// The key's name.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<ApiScope>,
}

impl ApiCaller {
    /// Whether the key may do `scope`.
    pub fn may(&self, scope: ApiScope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// Why a request was not let in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    /// No credentials.
    #[error("missing API key: send `Authorization: Bearer <key>` (keys are in [[auth.api_keys]])")]
    Missing,
    /// Credentials of another kind than a bearer key.
    #[error("the Authorization header must be `Bearer <key>`")]
    Malformed,
    /// No key in force has this secret.
    #[error("unknown API key")]
    Unknown,
    /// The key exists but may not do this.
    #[error("API key {name:?} may not {scope} (its scopes lack \"{scope}\")", scope = scope.name())]
    Forbidden {
        /// The key.
        name: String,
        /// What it lacks.
        scope: ApiScope,
    },
}

#[derive(Clone)]
struct Entry {
    digest: [u8; 32],
    caller: ApiCaller,
}

/// The keys in force (part of `AuthKeys`, replaced whole on reload).
#[derive(Clone, Default)]
pub struct ApiKeys(Vec<Entry>);

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|e| e.caller.name.as_str()).collect();
        f.debug_tuple("ApiKeys").field(&names).finish()
    }
}

fn digest(secret: &[u8]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

impl ApiKeys {
    /// The keys of `[[auth.api_keys]]`.
    pub fn new(keys: &[ApiKeySection]) -> Self {
        Self(
            keys.iter()
                .map(|k| Entry {
                    digest: digest(k.secret.as_bytes()),
                    caller: ApiCaller {
                        name: k.name.clone(),
                        scopes: k.scopes.clone(),
                    },
                })
                .collect(),
        )
    }

    /// The caller whose `Authorization` header value this is, allowed to do `scope`.
    pub fn check(
        &self,
        authorization: Option<&[u8]>,
        scope: ApiScope,
    ) -> Result<ApiCaller, ApiKeyError> {
        let header = authorization.ok_or(ApiKeyError::Missing)?;
        let secret = bearer(header).ok_or(ApiKeyError::Malformed)?;
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
        let caller = found.ok_or(ApiKeyError::Unknown)?;
        if !caller.may(scope) {
            return Err(ApiKeyError::Forbidden {
                name: caller.name.clone(),
                scope,
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
                name: "b".into(),
                scope: ApiScope::Connections
            })
        );
        assert_eq!(
            keys.check(None, ApiScope::Publish),
            Err(ApiKeyError::Missing)
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
            Err(ApiKeyError::Unknown),
            "one byte short"
        );
        let debug = format!("{keys:?}");
        assert!(
            debug.contains("\"a\"") && !debug.contains("secret"),
            "{debug}"
        );
    }
}
