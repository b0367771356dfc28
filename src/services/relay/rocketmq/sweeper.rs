//! Dead spears' routes: every spear of the RocketMQ relay looks, every [`SWEEP_EVERY`], for
//! generations of other spears in the set of generations that began more than a lease ago,
//! and removes those whose spear the registry (read through the leader) no longer holds: a
//! spear killed for good stops getting copies once its lease has ended, instead of having
//! them kept in its topic until the broker's retention drops them.
//!
//! Why this is safe for live spears: a spear out of the registry for a whole lease while a
//! leader runs is cut off and has moved its clients away (`Standing::Fenced`); when the
//! registry takes it back it gets a new registration, begins a new generation and writes
//! every route again ([`Routes`](super::routes::Routes)), and removing the old generation's
//! entries cannot touch the new one's. A generation younger than a lease is never removed:
//! a spear that just started writes routes before its first registration is committed.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::names::{Generation, Names};
use super::routes::{all_generations, remove_generation};
use crate::clock::unix_ms;
use crate::config::NodeId;
use crate::net::redis::RedisLink;
use crate::services::relay::LiveSpears;

/// How often the set of generations is looked at.
pub(super) const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// One spear's sweeper of dead spears' routes.
pub(super) struct Sweeper {
    pub(super) link: Arc<RedisLink>,
    pub(super) names: Names,
    pub(super) me: NodeId,
    pub(super) live: Arc<dyn LiveSpears>,
    pub(super) lease: Duration,
}

impl Sweeper {
    /// Sweeps every [`SWEEP_EVERY`] until `cancel`.
    pub(super) async fn run(self, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            match self.sweep().await {
                Ok(()) => failing = false,
                // Said once per run of failures: Redis or the leader is away, which their own
                // warnings already say.
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "could not sweep dead spears' routes; trying every second");
                }
                Err(e) => tracing::debug!(error = %e, "dead spears' routes not swept this time"),
            }
        }
    }

    /// Removes the routes of every generation whose spear the registry holds dead.
    async fn sweep(&self) -> Result<(), String> {
        let listed = all_generations(&self.link, &self.names)
            .await
            .map_err(|e| e.to_string())?;
        let old = older_than(listed, self.me, unix_ms(), self.lease);
        if old.is_empty() {
            return Ok(());
        }
        let live = self.live.live().await?;
        for generation in dead(old, &live) {
            let routes = remove_generation(&self.link, &self.names, generation)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(
                spear = generation.sid,
                generation = generation.began_ms,
                routes,
                "removed the routes of a spear the registry holds dead"
            );
        }
        Ok(())
    }
}

/// Of `listed`, the other spears' generations that began at least `lease` before `now_ms`.
fn older_than(
    listed: Vec<Generation>,
    me: NodeId,
    now_ms: u64,
    lease: Duration,
) -> Vec<Generation> {
    let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
    listed
        .into_iter()
        .filter(|g| g.sid != me && now_ms.saturating_sub(g.began_ms) >= lease_ms)
        .collect()
}

/// Of `old`, those whose spear is not in `live`.
fn dead(old: Vec<Generation>, live: &HashSet<NodeId>) -> impl Iterator<Item = Generation> + '_ {
    old.into_iter().filter(|g| !live.contains(&g.sid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(sid: NodeId, began_ms: u64) -> Generation {
        Generation { sid, began_ms }
    }

    #[test]
    fn only_other_spears_generations_older_than_a_lease_are_candidates() {
        let lease = Duration::from_secs(3);
        let listed = vec![g(1, 1_000), g(2, 1_000), g(3, 9_000), g(4, 7_000)];
        assert_eq!(
            older_than(listed, 1, 10_000, lease),
            vec![g(2, 1_000), g(4, 7_000)],
            "not mine, and not one that began less than a lease ago"
        );
    }

    #[test]
    fn a_generation_whose_spear_is_registered_stays() {
        let live: HashSet<NodeId> = [2].into_iter().collect();
        let gone: Vec<Generation> = dead(vec![g(2, 1), g(4, 1), g(4, 2)], &live).collect();
        assert_eq!(gone, vec![g(4, 1), g(4, 2)]);
    }
}
