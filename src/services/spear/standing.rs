//! Where a spear stands with the cluster, judged from its lease renewals and what the core
//! nodes gossip about the leader (static stability: a control plane without a quorum cuts no
//! client; only a spear cut off from a cluster that works without it moves its clients away).

use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use crate::config::NodeId;

/// A spear's standing with the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Not registered yet: ticket does not place users here; clients that come are served.
    Joining,
    /// Its lease was renewed within the last lease: ticket places users here.
    Serving,
    /// No renewal for a whole lease, and no live core sees a leader: the core has lost its
    /// quorum. The spear keeps its clients and serves them on the last known state (delivery,
    /// history, unique ids); what needs the leader (strict ids) is refused until it is back.
    Degraded,
    /// No renewal for a whole lease while the cores see `leader` live: this spear is cut off
    /// from a cluster that works without it. It moves its clients away and takes no new ones
    /// until a renewal succeeds.
    Fenced {
        /// The leader the others see.
        leader: NodeId,
    },
}

impl Standing {
    /// Judges a spear whose last successful renewal is `renewed_ago` old (`None`: never) and
    /// whose last `failed_in_a_row` attempts failed, while the cores have shown `leader` live
    /// for `leader_seen_for` (`None`: no live core sees a leader now), against a lease of
    /// `lease`. A leader must have been seen for a whole lease too: one that just came back
    /// gets that long to take this spear's renewal. And one failed attempt is never enough:
    /// after the whole machine stalled (a paused VM), the lease looks old although nothing
    /// was tried in between.
    pub fn judge(
        (renewed_ago, failed_in_a_row): (Option<Duration>, u32),
        leader_seen_for: Option<(NodeId, Duration)>,
        lease: Duration,
    ) -> Self {
        match renewed_ago {
            None => Self::Joining,
            Some(age) if age < lease || failed_in_a_row < 2 => Self::Serving,
            Some(_) => match leader_seen_for {
                Some((leader, seen)) if seen >= lease => Self::Fenced { leader },
                _ => Self::Degraded,
            },
        }
    }

    /// Whether clients are moved away and new ones refused.
    pub fn is_fenced(&self) -> bool {
        matches!(self, Self::Fenced { .. })
    }

    /// The state's name in `/api/v1/spear`, `gru status` and `/metrics`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Joining => "joining",
            Self::Serving => "serving",
            Self::Degraded => "degraded",
            Self::Fenced { .. } => "fenced",
        }
    }

    /// Every state's name, for gauges that show each.
    pub const NAMES: [&'static str; 4] = ["joining", "serving", "degraded", "fenced"];

    /// Why the spear is in this state, for operators.
    pub fn reason(&self) -> String {
        match self {
            Self::Joining => "not registered with the cluster yet".into(),
            Self::Serving => "lease renewed".into(),
            Self::Degraded => "no leader: the core has lost its quorum; serving the clients \
                              held on the last known state, strict ids refused until a leader \
                              is back"
                .into(),
            Self::Fenced { leader } => format!(
                "cut off from the cluster: the other members see leader {leader}, which this \
                 spear cannot reach; its clients were moved away"
            ),
        }
    }

    /// The standing as `/api/v1/spear` shows it.
    pub fn report(&self) -> StandingReport {
        StandingReport {
            state: self.name(),
            reason: self.reason(),
        }
    }
}

/// A spear's standing as the HTTP API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StandingReport {
    /// `joining`, `serving`, `degraded` or `fenced`.
    pub state: &'static str,
    /// Why, in words.
    pub reason: String,
}

/// The spear's standing as it changes (the registration writes it).
pub type StandingWatch = watch::Receiver<Standing>;

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(3);

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn a_renewed_lease_serves_and_a_spear_never_registered_is_joining() {
        assert_eq!(
            Standing::judge((None, 9), Some((1, secs(9.0))), LEASE),
            Standing::Joining
        );
        assert_eq!(
            Standing::judge((Some(secs(2.9)), 0), None, LEASE),
            Standing::Serving
        );
    }

    #[test]
    fn without_a_leader_anywhere_the_spear_degrades_and_keeps_its_clients() {
        let s = Standing::judge((Some(secs(3.0)), 3), None, LEASE);
        assert_eq!(s, Standing::Degraded);
        assert!(!s.is_fenced());
    }

    #[test]
    fn a_leader_the_others_see_for_a_lease_fences_the_spear() {
        let s = Standing::judge((Some(secs(3.0)), 3), Some((2, secs(3.0))), LEASE);
        assert_eq!(s, Standing::Fenced { leader: 2 });
        assert!(s.is_fenced());
        assert!(s.reason().contains("leader 2"));
    }

    #[test]
    fn a_leader_just_back_gets_a_lease_to_take_the_renewal() {
        assert_eq!(
            Standing::judge((Some(secs(20.0)), 20), Some((2, secs(1.0))), LEASE),
            Standing::Degraded
        );
    }

    #[test]
    fn one_failed_attempt_after_a_stall_is_not_enough() {
        let after_stall =
            |failed| Standing::judge((Some(secs(8.0)), failed), Some((2, secs(8.0))), LEASE);
        assert_eq!(after_stall(1), Standing::Serving);
        assert_eq!(after_stall(2), Standing::Fenced { leader: 2 });
    }

    #[test]
    fn every_state_has_a_listed_name() {
        for s in [
            Standing::Joining,
            Standing::Serving,
            Standing::Degraded,
            Standing::Fenced { leader: 1 },
        ] {
            assert!(Standing::NAMES.contains(&s.name()));
        }
    }
}
