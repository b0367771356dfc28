//! The names the RocketMQ relay uses: each spear's topic and consumer group (which it alone
//! reads), the producer group, and the Redis keys of the routes (which spears hold a user or a
//! group).
//!
//! | name | holds |
//! | --- | --- |
//! | topic and consumer group `gru_<cluster>_spear_<SID>` | messages for spear SID's recipients |
//! | producer group `gru_<cluster>_producer_<SID>` | spear SID's sends |
//! | `gru:<cluster>:route:{u:UID}` / `{g:GID}` (Redis set) | spears with a recipient of user UID / group GID |
//! | `gru:<cluster>:route:{s:SID}` (Redis set) | the routes spear SID wrote (its index, for clean-up) |

use super::super::wire;
use crate::config::NodeId;

/// The names of one cluster.
#[derive(Debug, Clone)]
pub(super) struct Names {
    /// `gru_<cluster>_`: RocketMQ allows only `[A-Za-z0-9_-]` in names.
    mq_prefix: String,
    /// `gru:<cluster>:route:`.
    route_prefix: String,
}

impl Names {
    /// The names of cluster `cluster_name`. Characters RocketMQ does not allow become `_` in
    /// its names; braces, which would move a Redis hash tag, become `_` in the keys.
    pub(super) fn new(cluster_name: &str) -> Self {
        let mq: String = cluster_name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let keys = wire::in_redis(cluster_name);
        Self {
            mq_prefix: format!("gru_{mq}_"),
            route_prefix: format!("gru:{keys}:route:"),
        }
    }

    /// The topic spear `sid` reads, which is also its consumer group.
    pub(super) fn topic(&self, sid: NodeId) -> String {
        format!("{}spear_{sid}", self.mq_prefix)
    }

    /// The producer group of spear `sid`.
    pub(super) fn producer_group(&self, sid: NodeId) -> String {
        format!("{}producer_{sid}", self.mq_prefix)
    }

    /// The route key of the channel named `tag` (`u:7`, see `wire.rs`).
    pub(super) fn route(&self, tag: &str) -> String {
        format!("{}{{{tag}}}", self.route_prefix)
    }

    /// The hash tag of spear `sid`'s index.
    pub(super) fn index_tag(sid: NodeId) -> String {
        format!("s:{sid}")
    }

    /// Spear `sid`'s index of the routes it wrote.
    pub(super) fn index(&self, sid: NodeId) -> String {
        self.route(&Self::index_tag(sid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_what_rocketmq_and_a_redis_cluster_accept() {
        let n = Names::new("prod eu{1}");
        assert_eq!(n.topic(4), "gru_prod_eu_1__spear_4");
        assert_eq!(n.producer_group(4), "gru_prod_eu_1__producer_4");
        assert_eq!(n.route("u:7"), "gru:prod eu_1_:route:{u:7}");
        assert_eq!(n.index(4), "gru:prod eu_1_:route:{s:4}");
    }
}
