//! Where presence lives in Redis. Every key carries a hash tag (`{s:4}`, `{u:123}`, `{g:10}`),
//! so that what one command or pipeline touches sits in one slot of a Redis Cluster:
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `P{s:SID}:alive` | string, expires | the spear's heartbeat (its run id) |
//! | `P{s:SID}:users` | hash | uid → connections on spear SID (its index, and users per spear) |
//! | `P{s:SID}:groups` | hash | gid → online members on spear SID |
//! | `P{u:UID}` | hash | spear id → connections of user UID |
//! | `P{g:GID}` | set | spears with members of group GID |
//! | `P{g:GID}:SID` | set | members of group GID on spear SID |
//! | `Pspears` | set | spears that have written presence |
//!
//! `P` is `gru:<cluster name>:`, so clusters can share a Redis. The relay's channels, under the
//! same prefix, are the relay's own (`services::relay`).

use crate::config::NodeId;
use crate::services::channel::Channel;

/// Key names of one cluster.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// The names of cluster `cluster_name` (braces, which would change the hash tag, are
    /// replaced).
    pub fn new(cluster_name: &str) -> Self {
        let name: String = cluster_name
            .chars()
            .map(|c| if c == '{' || c == '}' { '_' } else { c })
            .collect();
        Self {
            prefix: format!("gru:{name}:"),
        }
    }

    /// The hash tag of spear `sid`'s keys.
    pub fn spear_tag(sid: NodeId) -> String {
        format!("s:{sid}")
    }
    /// The hash tag of user `uid`'s key.
    pub fn user_tag(uid: u64) -> String {
        Channel::User(uid).to_string()
    }
    /// The hash tag of group `gid`'s keys.
    pub fn group_tag(gid: u64) -> String {
        Channel::Group(gid).to_string()
    }
    /// The hash tag of the spear list.
    pub const SPEARS_TAG: &'static str = "spears";

    /// Spear `sid`'s heartbeat.
    pub fn alive(&self, sid: NodeId) -> String {
        format!("{}{{s:{sid}}}:alive", self.prefix)
    }
    /// uid → connections on spear `sid`.
    pub fn spear_users(&self, sid: NodeId) -> String {
        format!("{}{{s:{sid}}}:users", self.prefix)
    }
    /// gid → members on spear `sid`.
    pub fn spear_groups(&self, sid: NodeId) -> String {
        format!("{}{{s:{sid}}}:groups", self.prefix)
    }
    /// Spear → connections of user `uid`.
    pub fn user(&self, uid: u64) -> String {
        format!("{}{{u:{uid}}}", self.prefix)
    }
    /// Spears with members of group `gid`.
    pub fn group_spears(&self, gid: u64) -> String {
        format!("{}{{g:{gid}}}", self.prefix)
    }
    /// Members of group `gid` on spear `sid`.
    pub fn group_members(&self, gid: u64, sid: NodeId) -> String {
        format!("{}{{g:{gid}}}:{sid}", self.prefix)
    }
    /// Spears that wrote presence.
    pub fn spears(&self) -> String {
        format!("{}{{spears}}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_one_thing_share_a_hash_tag() {
        let k = Keys::new("prod");
        assert_eq!(k.alive(4), "gru:prod:{s:4}:alive");
        assert_eq!(k.spear_users(4), "gru:prod:{s:4}:users");
        assert_eq!(k.group_spears(10), "gru:prod:{g:10}");
        assert_eq!(k.group_members(10, 4), "gru:prod:{g:10}:4");
        assert_eq!(k.user(7), "gru:prod:{u:7}");
        assert_eq!(Keys::new("a{b}").spears(), "gru:a_b_:{spears}");
    }
}
