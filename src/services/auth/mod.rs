//! Tokens, shared by ticket (which checks token1 and signs spear tokens) and spear (which
//! verifies spear tokens locally, with no round trip).
//!
//! The default scheme is an HMAC-SHA256 signed, expiring token ([`token`]). Gru's MD5 scheme
//! ([`legacy`]) has no expiry and is accepted only when `auth.legacy_md5 = true`. The keys in
//! force ([`keys`]) include, during a rotation, the previous secret of each kind.

pub mod api_key;
pub mod keys;
pub mod legacy;
pub mod token;

pub use api_key::{
    AdminCaller, AdminKeys, ApiCaller, ApiKeyError, ApiKeys, BearerKeys, Caller, KeyError, KeyScope,
};
pub use keys::{AuthKeys, AuthStore, KeyRing};
pub use token::{Claims, HolderField, TokenError, TokenKey, TokenKind};

/// The `[auth]` section the unit tests of token checks share (spear and ticket check the same
/// tokens): fixed secrets, a 10-minute token lifetime, no keys.
#[cfg(test)]
pub(crate) fn test_section(legacy_md5: bool) -> crate::config::AuthSection {
    crate::config::AuthSection {
        business_secret: "business-secret-0123456789".into(),
        spear_secret: "spear-secret-0123456789abcd".into(),
        token_ttl_secs: 600,
        legacy_md5,
        enforce_groups: false,
        previous_business_secret: None,
        previous_spear_secret: None,
        api_keys: Vec::new(),
        admin_keys: Vec::new(),
        gossip_keys: Vec::new(),
    }
}
