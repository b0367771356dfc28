//! Reading presence: from Redis (the union over live spears) or, on a single-spear deployment
//! with the in-process relay, from the spear's own roster. Entries of a spear whose heartbeat
//! key expired are never counted, whether or not they were removed yet.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::keys::Keys;
use crate::config::NodeId;
use crate::net::redis::{RedisError, RedisLink};
use crate::services::spear::roster::RosterView;

/// Online users of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupOnline {
    /// The group.
    pub group_id: u64,
    /// Every online member, ascending, once.
    pub user_ids: Vec<u64>,
    /// Members per spear.
    pub by_spear: BTreeMap<NodeId, Vec<u64>>,
}

/// One live spear's load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpearStat {
    /// The spear's node id.
    pub node_id: NodeId,
    /// Users with at least one connection there.
    pub users: u64,
    /// Groups with at least one member there.
    pub groups: u64,
}

/// One group on a spear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpearGroup {
    /// The group.
    pub group_id: u64,
    /// Its members on that spear.
    pub users: u64,
}

/// A user's connections on one spear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserOnSpear {
    /// The spear's node id.
    pub node_id: NodeId,
    /// The user's connections there.
    pub connections: u64,
}

/// Where a user is online.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserPresence {
    /// The user.
    pub user_id: u64,
    /// Whether the user has any connection.
    pub online: bool,
    /// Where.
    pub spears: Vec<UserOnSpear>,
}

/// Presence could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StatError {
    /// Redis did not answer.
    #[error("presence unavailable: {0}")]
    Redis(#[from] RedisError),
    /// This node has no source of presence.
    #[error("presence unavailable on this node: {0}")]
    NoSource(&'static str),
}

/// Where this node reads presence from.
#[derive(Clone)]
pub enum Presence {
    /// Redis, shared by every spear.
    Redis {
        /// The connection.
        link: Arc<RedisLink>,
        /// Key names.
        keys: Keys,
    },
    /// The one spear of a `relay.kind = "local"` deployment, in this process.
    Local {
        /// The spear's node id.
        me: NodeId,
        /// Its roster.
        roster: Arc<dyn RosterView>,
    },
    /// Nothing to read (a non-spear node of a local-relay deployment).
    None(&'static str),
}

impl Presence {
    /// Where a node reads presence: Redis when it has a link (every spear writes there), else
    /// the node's own spear (`me` and its roster) when it is the one spear, else nowhere.
    pub fn decide(
        redis: Option<&Arc<RedisLink>>,
        keys: Keys,
        spear: Option<(NodeId, Arc<dyn RosterView>)>,
    ) -> Self {
        match (redis, spear) {
            (Some(link), _) => Presence::Redis {
                link: link.clone(),
                keys,
            },
            (None, Some((me, roster))) => Presence::Local { me, roster },
            (None, None) => {
                Presence::None("relay.kind is \"local\" and this node is not the spear")
            }
        }
    }

    /// Online members of `gid` across live spears.
    pub async fn group_online(&self, gid: u64) -> Result<GroupOnline, StatError> {
        let by_spear = match self {
            Presence::Redis { link, keys } => {
                let spears: Vec<NodeId> = link
                    .query(redis::cmd("SMEMBERS").arg(keys.group_spears(gid)))
                    .await?;
                let live = live_spears(link, keys, spears).await?;
                let mut pipe = redis::pipe();
                for sid in &live {
                    pipe.cmd("SMEMBERS").arg(keys.group_members(gid, *sid));
                }
                let members: Vec<Vec<u64>> = if live.is_empty() {
                    Vec::new()
                } else {
                    link.query_pipeline(&pipe).await?
                };
                live.into_iter()
                    .zip(members)
                    .filter(|(_, m)| !m.is_empty())
                    .map(|(sid, mut m)| {
                        m.sort_unstable();
                        (sid, m)
                    })
                    .collect()
            }
            Presence::Local { me, roster } => {
                let members = roster.members(gid);
                if members.is_empty() {
                    BTreeMap::new()
                } else {
                    BTreeMap::from([(*me, members)])
                }
            }
            Presence::None(why) => return Err(StatError::NoSource(why)),
        };
        let mut user_ids: Vec<u64> = by_spear.values().flatten().copied().collect();
        user_ids.sort_unstable();
        user_ids.dedup();
        Ok(GroupOnline {
            group_id: gid,
            user_ids,
            by_spear,
        })
    }

    /// Every live spear with its users and groups.
    pub async fn spears(&self) -> Result<Vec<SpearStat>, StatError> {
        match self {
            Presence::Redis { link, keys } => {
                let spears: Vec<NodeId> = link
                    .query(redis::cmd("SMEMBERS").arg(keys.spears()))
                    .await?;
                let mut out = Vec::new();
                for sid in live_spears(link, keys, spears).await? {
                    let mut pipe = redis::pipe();
                    pipe.cmd("HLEN")
                        .arg(keys.spear_users(sid))
                        .cmd("HLEN")
                        .arg(keys.spear_groups(sid));
                    let (users, groups): (u64, u64) = link.query_pipeline(&pipe).await?;
                    out.push(SpearStat {
                        node_id: sid,
                        users,
                        groups,
                    });
                }
                Ok(out)
            }
            Presence::Local { me, roster } => {
                let (users, groups) = roster.counts();
                Ok(vec![SpearStat {
                    node_id: *me,
                    users: users as u64,
                    groups: groups as u64,
                }])
            }
            Presence::None(why) => Err(StatError::NoSource(why)),
        }
    }

    /// The groups on spear `sid`, ascending; empty when it is not a live spear.
    pub async fn spear_groups(&self, sid: NodeId) -> Result<Vec<SpearGroup>, StatError> {
        let pairs: Vec<(u64, u64)> = match self {
            Presence::Redis { link, keys } => {
                if live_spears(link, keys, vec![sid]).await?.is_empty() {
                    return Ok(Vec::new());
                }
                let map: BTreeMap<u64, u64> = link
                    .query(redis::cmd("HGETALL").arg(keys.spear_groups(sid)))
                    .await?;
                map.into_iter().collect()
            }
            Presence::Local { me, roster } if *me == sid => roster
                .snapshot()
                .groups
                .into_iter()
                .map(|(g, m)| (g, m.len() as u64))
                .collect(),
            Presence::Local { .. } => Vec::new(),
            Presence::None(why) => return Err(StatError::NoSource(why)),
        };
        Ok(pairs
            .into_iter()
            .map(|(group_id, users)| SpearGroup { group_id, users })
            .collect())
    }

    /// Where user `uid` is online.
    pub async fn user(&self, uid: u64) -> Result<UserPresence, StatError> {
        let spears: Vec<UserOnSpear> = match self {
            Presence::Redis { link, keys } => {
                let map: BTreeMap<NodeId, u64> = link
                    .query(redis::cmd("HGETALL").arg(keys.user(uid)))
                    .await?;
                let live = live_spears(link, keys, map.keys().copied().collect()).await?;
                live.into_iter()
                    .filter_map(|sid| {
                        map.get(&sid).map(|n| UserOnSpear {
                            node_id: sid,
                            connections: *n,
                        })
                    })
                    .collect()
            }
            Presence::Local { me, roster } => match roster.connections_of(uid) {
                0 => Vec::new(),
                n => vec![UserOnSpear {
                    node_id: *me,
                    connections: u64::from(n),
                }],
            },
            Presence::None(why) => return Err(StatError::NoSource(why)),
        };
        Ok(UserPresence {
            user_id: uid,
            online: !spears.is_empty(),
            spears,
        })
    }
}

/// The spears among `spears` whose heartbeat key exists, ascending.
async fn live_spears(
    link: &RedisLink,
    keys: &Keys,
    mut spears: Vec<NodeId>,
) -> Result<Vec<NodeId>, RedisError> {
    spears.sort_unstable();
    spears.dedup();
    // Heartbeat keys live in different slots, so each is its own query on a cluster.
    let checks = spears.iter().map(|sid| async move {
        link.query::<bool>(redis::cmd("EXISTS").arg(keys.alive(*sid)))
            .await
            .map(|alive| alive.then_some(*sid))
    });
    let mut live = Vec::new();
    for outcome in futures_util::future::join_all(checks).await {
        if let Some(sid) = outcome? {
            live.push(sid);
        }
    }
    Ok(live)
}
