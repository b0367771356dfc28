//! The names the RocketMQ relay uses: each spear's topic and consumer group (which it alone
//! reads), the producer group, and the Redis keys of the routes (which spears hold a user or a
//! group).
//!
//! | name | holds |
//! | --- | --- |
//! | topic and consumer group `gru_<cluster>_spear_<SID>` | messages for spear SID's recipients |
//! | producer group `gru_<cluster>_producer_<SID>` | spear SID's sends |
//! | `gru:<cluster>:route:{u:UID}` / `{g:GID}` (Redis set) | the spears with a recipient of user UID / group GID, one entry per spear generation |
//! | `gru:<cluster>:route:{s:SID:GEN}` (Redis set) | the routes spear SID wrote in its generation GEN (their index, for clean-up) |
//! | `gru:<cluster>:route:{spears}` (Redis set) | the entry of every generation that may have written routes |
//!
//! A generation is a spear's run of route writes, named by when it began (Unix ms): a spear
//! begins one when it starts and whenever the registry gives it a new registration, so that
//! removing a dead generation's entries never touches those a live spear writes. Its entry is
//! one integer, `GEN × 2²⁰ + SID`, so that a route set stays a Redis `intset` (64 bytes for
//! one to three entries, where entries like `SID:GEN` make a 192-byte hashtable of one);
//! spears whose id does not fit 20 bits write `SID:GEN`. An entry of an earlier gru, `SID`
//! alone, reads as spear SID's generation 0.

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

    /// The hash tag of the index of spear `sid`'s generation `generation`.
    pub(super) fn index_tag(sid: NodeId, generation: u64) -> String {
        format!("s:{sid}:{generation}")
    }

    /// The index of the routes spear `sid` wrote in generation `generation`.
    pub(super) fn index(&self, sid: NodeId, generation: u64) -> String {
        self.route(&Self::index_tag(sid, generation))
    }

    /// The index a spear of an earlier gru kept (its routes' entries were `SID` alone).
    pub(super) fn unversioned_index(&self, sid: NodeId) -> String {
        self.route(&format!("s:{sid}"))
    }

    /// The hash tag of the set of generations.
    pub(super) const GENERATIONS_TAG: &'static str = "spears";

    /// The set of every generation that may have written routes.
    pub(super) fn generations(&self) -> String {
        self.route(Self::GENERATIONS_TAG)
    }
}

/// A spear's generation of route entries: the entry it puts in a route set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Generation {
    /// The spear.
    pub(super) sid: NodeId,
    /// When the generation began (Unix ms on the spear's clock), unique per spear.
    pub(super) began_ms: u64,
}

/// Bits of a packed entry that hold the spear id.
const SID_BITS: u32 = 20;
/// Generations that fit a packed entry (`i64`, as Redis keeps integers): until the year 2248.
const GEN_LIMIT: u64 = 1 << (63 - SID_BITS);

impl Generation {
    /// Its entry in a route set and in the set of generations: `GEN × 2²⁰ + SID`, or
    /// `SID:GEN` when either does not fit.
    pub(super) fn entry(&self) -> String {
        if self.sid < (1 << SID_BITS) && self.began_ms < GEN_LIMIT {
            ((self.began_ms << SID_BITS) | self.sid).to_string()
        } else {
            format!("{}:{}", self.sid, self.began_ms)
        }
    }

    /// The generation of `entry`; `None` for anything a spear did not write.
    pub(super) fn parse(entry: &str) -> Option<Self> {
        if let Some((sid, began)) = entry.split_once(':') {
            return Some(Self {
                sid: sid.parse().ok()?,
                began_ms: began.parse().ok()?,
            });
        }
        let packed: u64 = entry.parse().ok()?;
        if packed >= GEN_LIMIT << SID_BITS {
            return None;
        }
        Some(Self {
            sid: packed & ((1 << SID_BITS) - 1),
            began_ms: packed >> SID_BITS,
        })
    }
}

/// The spear a route set's entry points to; `None` for anything a spear did not write.
pub(super) fn spear_of(entry: &str) -> Option<NodeId> {
    Generation::parse(entry).map(|g| g.sid)
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
        assert_eq!(n.index(4, 1700), "gru:prod eu_1_:route:{s:4:1700}");
        assert_eq!(n.unversioned_index(4), "gru:prod eu_1_:route:{s:4}");
        assert_eq!(n.generations(), "gru:prod eu_1_:route:{spears}");
    }

    #[test]
    fn route_entries_name_their_spear_and_generation() {
        let g = Generation {
            sid: 4,
            began_ms: 1_700_000_000_123,
        };
        assert_eq!(g.entry(), ((1_700_000_000_123u64 << 20) + 4).to_string());
        assert!(
            g.entry().parse::<i64>().is_ok(),
            "an integer Redis keeps as such"
        );
        assert_eq!(Generation::parse(&g.entry()), Some(g));
        assert_eq!(spear_of(&g.entry()), Some(4));
        let big = Generation {
            sid: 1 << 20,
            began_ms: 1_700_000_000_123,
        };
        assert_eq!(big.entry(), "1048576:1700000000123");
        assert_eq!(Generation::parse(&big.entry()), Some(big));
        assert_eq!(
            Generation::parse("4"),
            Some(Generation {
                sid: 4,
                began_ms: 0
            }),
            "an earlier gru's entry"
        );
        for junk in [
            "",
            "x",
            "4:",
            ":5",
            "4:x",
            "-1:5",
            "4:5:6",
            "-4",
            "18446744073709551615",
        ] {
            assert_eq!(spear_of(junk), None, "{junk:?}");
        }
    }
}
