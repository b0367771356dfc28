//! What the Redis relay puts on the wire. A message for user U goes to channel
//! `gru:<cluster>:msg:{u:U}`, a group message to `gru:<cluster>:msg:{g:G}`: the cluster prefix
//! (the one presence keys carry too) lets clusters share a Redis, and the hash tag keeps a
//! channel in one slot of a Redis Cluster. The payload is the relay's wire form (`wire.rs`).

use super::super::{wire, Channel};

/// The channel names of one cluster.
#[derive(Debug, Clone)]
pub(super) struct Channels {
    /// `gru:<cluster>:msg:`.
    prefix: String,
}

impl Channels {
    /// The channels of cluster `cluster_name` (braces, which would change the hash tag, are
    /// replaced, as in the presence keys).
    pub(super) fn new(cluster_name: &str) -> Self {
        let name = wire::in_redis(cluster_name);
        Self {
            prefix: format!("gru:{name}:msg:"),
        }
    }

    /// The Redis channel of `channel`.
    pub(super) fn of(&self, channel: Channel) -> String {
        format!("{}{{{}}}", self.prefix, channel)
    }

    /// Who channel `name` is for, if it is one of this cluster's.
    pub(super) fn channel_of(&self, name: &[u8]) -> Option<Channel> {
        let name = std::str::from_utf8(name).ok()?;
        let rest = name.strip_prefix(&self.prefix)?.strip_prefix('{')?;
        rest.strip_suffix('}')?.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_round_trip_and_foreign_ones_are_ignored() {
        let c = Channels::new("prod");
        assert_eq!(c.of(Channel::User(123)), "gru:prod:msg:{u:123}");
        assert_eq!(c.of(Channel::Group(10)), "gru:prod:msg:{g:10}");
        for a in [Channel::User(123), Channel::Group(10)] {
            assert_eq!(c.channel_of(c.of(a).as_bytes()), Some(a));
        }
        assert_eq!(c.channel_of(b"gru:other:msg:{u:1}"), None);
        assert_eq!(c.channel_of(b"gru:prod:msg:{x:1}"), None);
        assert_eq!(c.channel_of(b"gru:prod:msg:{u:abc}"), None);
        assert_eq!(c.channel_of(b"gru:prod:msg:{u:1"), None);
        assert_eq!(c.channel_of(b"gru:prod:msg:{u:\xff}"), None);
    }

    #[test]
    fn braces_in_the_cluster_name_cannot_move_the_hash_tag() {
        assert_eq!(
            Channels::new("a{b}").of(Channel::User(7)),
            "gru:a_b_:msg:{u:7}"
        );
    }
}
