//! `[auth]`: token secrets, the keys of the server API and of the admin surface, and the gossip
//! keys. The one required section: secrets have no default.
//!
//! Declared as in `sections.rs`, but with required fields: serde's attributes give the defaults of
//! the others, and each table's `example` is its smallest valid form.

use serde::{Deserialize, Serialize};

use super::knob::Knob;
use super::table::{config_table, toml_enum};

config_table! {
    /// `[auth]`: token secrets and policies.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct AuthSection {
        /// Shared with the business system, which signs token1 with it.
        pub business_secret: String => Knob::plain().min_bytes(16),
        /// Ticket signs spear tokens with it and spears verify them. It must differ so that
        /// whoever holds the business secret cannot mint spear tokens.
        pub spear_secret: String => Knob::plain().min_bytes(16).rule("≠ `business_secret`"),
        /// Lifetime of the tokens ticket issues.
        #[serde(default = "default_token_ttl_secs")]
        pub token_ttl_secs: u64 => Knob::secs().min(1),
        /// Accept Gru's legacy MD5 tokens, which never expire.
        #[serde(default)]
        pub legacy_md5: bool => Knob::plain(),
        /// Refuse subscriptions to groups the user's token does not list.
        #[serde(default)]
        pub enforce_groups: bool => Knob::plain(),
        /// During a rotation: a second business secret that verifies token1 and never signs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub previous_business_secret: Option<String> => Knob::plain()
            .min_bytes(16)
            .rule("≠ `business_secret`, ≠ either spear secret"),
        /// During a rotation: a second spear secret that verifies spear tokens and never signs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub previous_spear_secret: Option<String> => Knob::plain()
            .min_bytes(16)
            .rule("≠ `spear_secret`, ≠ either business secret"),
        /// `[[auth.api_keys]]`: the keys business servers call the server API with
        /// (`docs/api.md`, "Server API").
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub api_keys: Vec<ApiKeySection> => Knob::plain()
            .unset("none (the server API then answers 401)"),
        /// `[[auth.admin_keys]]`: the keys of the admin surface (`listen.admin`: the dashboard,
        /// the monitor, presence, the cluster view, ids, `/metrics`, and `gru status`, `drain`,
        /// `meta`, `cluster`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub admin_keys: Vec<AdminKeySection> => Knob::plain()
            .unset("none (every admin route then answers 401)"),
        /// The cluster's gossip keys. Every gossip datagram is sealed with the first
        /// (HMAC-SHA256 over the datagram and the time it was sent) and accepted only when a
        /// listed key verifies it and its time is within 30 s of the receiver's clock; anything
        /// else is dropped before gossip sees it. Rotate by adding the new key second, then
        /// making it first, then removing the old one, each step on every node
        /// (`docs/security.md`, "Gossip"). Write it before the `[[auth.…]]` tables, which end
        /// the `[auth]` table.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub gossip_keys: Vec<String> => Knob::plain().min_bytes(32).rule(
            "at least one with more than one node; each unique, not another secret or key of \
             `[auth]`",
        ),
    }
    example = "business_secret = \"0123456789abcdef\"\nspear_secret = \"fedcba9876543210\"";
}

/// The default of `auth.token_ttl_secs`: one day.
pub(super) fn default_token_ttl_secs() -> u64 {
    86_400
}

/// What an admin key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminScope {
    /// Everything on the admin surface, changes included (drain, membership, disconnects,
    /// ids).
    Admin,
    /// Only what reads: the dashboard, the monitor, presence, the cluster view, `/metrics`.
    Read,
}

toml_enum!(AdminScope { Admin, Read });

impl AdminScope {
    /// The default of a key: everything.
    pub fn all() -> Vec<AdminScope> {
        vec![AdminScope::Admin]
    }

    /// The scope's name in the config and in errors.
    pub fn name(self) -> &'static str {
        match self {
            AdminScope::Admin => "admin",
            AdminScope::Read => "read",
        }
    }
}

config_table! {
    /// `[[auth.admin_keys]]`: one key of the admin surface (`listen.admin`: `docs/security.md`,
    /// "Surfaces").
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct AdminKeySection {
        /// Logged at each login; `GET /api/v1/ids` is rated per name.
        pub name: String => Knob::plain().rule("1–64 of `A-Z a-z 0-9 . _ -`, unique"),
        /// Sent as `Authorization: Bearer <secret>` (scripts, Prometheus, `gru status`,
        /// `gru drain`, `gru meta`, `gru cluster`, which take it from `--key`, `GRU_ADMIN_KEY` or
        /// the config's first admin key), or typed into the dashboard's login page for a
        /// session cookie.
        pub secret: String => Knob::plain().min_bytes(32).rule(
            "printable ASCII without spaces, unique over API and admin keys, not a token secret",
        ),
        /// `read`: GET requests (the dashboard's pages, the cluster view, presence, `/metrics`)
        /// and nothing else: the key to give Prometheus. `admin`: everything, including ids,
        /// drains, metadata, membership and disconnecting users. A key without the scope a
        /// request needs gets 403.
        #[serde(default = "AdminScope::all")]
        pub scopes: Vec<AdminScope> => Knob::plain().rule("not empty"),
    }
    example = "name = \"ops\"\nsecret = \"0123456789abcdef0123456789abcdef\"";
}

/// What a server-API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiScope {
    /// Publish messages.
    Publish,
    /// List and disconnect users' connections.
    Connections,
}

toml_enum!(ApiScope {
    Publish,
    Connections
});

impl ApiScope {
    /// Every scope: the default of a key.
    pub fn all() -> Vec<ApiScope> {
        vec![ApiScope::Publish, ApiScope::Connections]
    }

    /// The scope's name in the config and in errors.
    pub fn name(self) -> &'static str {
        match self {
            ApiScope::Publish => "publish",
            ApiScope::Connections => "connections",
        }
    }
}

config_table! {
    /// `[[auth.api_keys]]`: one key of the server API.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ApiKeySection {
        /// Rate limits and idempotency keys are per name; recipients see it as the
        /// `sender.name` of what the key publishes (unless a message names another); logged on
        /// reload.
        pub name: String => Knob::plain().rule("1–64 of `A-Z a-z 0-9 . _ -`, unique"),
        /// Sent as `Authorization: Bearer <secret>`. Kept only as a SHA-256 digest in memory and
        /// compared in constant time.
        pub secret: String => Knob::plain()
            .min_bytes(32)
            .rule("printable ASCII without spaces, unique, not a token secret"),
        /// `publish`: `POST /api/v1/publish` and `/publish/batch`. `connections`: list and
        /// disconnect a user's connections. A key without the route's scope gets 403.
        #[serde(default = "ApiScope::all")]
        pub scopes: Vec<ApiScope> => Knob::plain().rule("not empty"),
    }
    example = "name = \"backend\"\nsecret = \"0123456789abcdef0123456789abcdef\"";
}

#[cfg(test)]
mod tests {
    use super::super::table::Knobs;
    use super::*;

    #[test]
    fn left_out_auth_fields_take_their_defaults() {
        let auth = AuthSection::defaults();
        assert_eq!(auth.token_ttl_secs, 86_400);
        assert!(!auth.legacy_md5 && !auth.enforce_groups);
        assert!(auth.api_keys.is_empty() && auth.gossip_keys.is_empty());
        assert_eq!(ApiKeySection::defaults().scopes, ApiScope::all());
        assert_eq!(AdminKeySection::defaults().scopes, AdminScope::all());
    }

    /// `name()` spells a scope as serde does; the config and the errors must agree.
    #[test]
    fn scope_names_are_their_toml_names() {
        for scope in [ApiScope::Publish, ApiScope::Connections] {
            assert_eq!(toml::Value::try_from(scope).ok(), Some(scope.name().into()));
        }
        for scope in [AdminScope::Admin, AdminScope::Read] {
            assert_eq!(toml::Value::try_from(scope).ok(), Some(scope.name().into()));
        }
    }
}
