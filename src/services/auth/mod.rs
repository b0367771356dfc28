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
