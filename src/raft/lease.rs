//! Spear lease expiry: the leader removes spears whose lease ended, through the log.
//!
//! A newly elected leader first waits one full lease length: spears could not renew while
//! there was no leader, so their leases are honoured as if renewed at the election.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::NodeId;
use crate::raft::control::{ControlError, ControlPlane};

/// What the sweeper needs from the control plane; [`ControlPlane`] is the real one, the unit
/// tests use a fake instead of a Raft group.
trait LeaseControl: Send + Sync {
    /// The current term and whether this node leads in it.
    fn leadership(&self) -> (u64, bool);

    /// The spear lease length.
    fn lease_ttl(&self) -> Duration;

    /// Removes every spear whose lease has ended by the leader's clock; returns their ids.
    fn expire_spears(&self) -> BoxFuture<'_, Result<Vec<NodeId>, ControlError>>;
}

impl LeaseControl for ControlPlane {
    fn leadership(&self) -> (u64, bool) {
        ControlPlane::leadership(self)
    }

    fn lease_ttl(&self) -> Duration {
        ControlPlane::lease_ttl(self)
    }

    fn expire_spears(&self) -> BoxFuture<'_, Result<Vec<NodeId>, ControlError>> {
        Box::pin(ControlPlane::expire_spears(self))
    }
}

/// Runs until `cancel`: every `every`, on the leader, expires ended leases.
pub async fn run_lease_sweeper(
    control: Arc<ControlPlane>,
    every: Duration,
    cancel: CancellationToken,
) {
    sweep_leases(control.as_ref(), every, cancel).await;
}

async fn sweep_leases(control: &dyn LeaseControl, every: Duration, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leading_since: Option<(u64, Instant)> = None;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (term, leading) = control.leadership();
        if !leading {
            leading_since = None;
            continue;
        }
        let since = match leading_since {
            Some((t, since)) if t == term => since,
            _ => {
                let now = Instant::now();
                leading_since = Some((term, now));
                now
            }
        };
        if since.elapsed() < control.lease_ttl() {
            continue;
        }
        match control.expire_spears().await {
            Ok(ids) if !ids.is_empty() => {
                tracing::info!(spears = ?ids, "spear leases expired; removed from the registry");
            }
            Ok(_) | Err(ControlError::NotLeader { .. }) => {}
            Err(e) => tracing::warn!(error = %e, "could not expire spear leases"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Mutex;

    use super::*;
    use crate::clock::{TestClock, WallClock};
    use crate::raft::command::{Command, CommandResponse};
    use crate::raft::state::ClusterState;
    use crate::raft::types::Member;

    const START_MS: u64 = 1_800_000_000_000;
    const TTL: Duration = Duration::from_secs(3);
    const EVERY: Duration = Duration::from_millis(500);

    /// A control plane whose Raft group is one in-memory [`ClusterState`]: expiry is decided by
    /// the real state machine, with the fake leader's clock stamped into the command.
    struct FakeLeases {
        group: Mutex<(u64, bool)>,
        state: Mutex<ClusterState>,
        clock: TestClock,
        /// Calls of `expire_spears`.
        sweeps: AtomicU32,
    }

    impl FakeLeases {
        fn new(term: u64, leading: bool) -> Arc<Self> {
            Arc::new(Self {
                group: Mutex::new((term, leading)),
                state: Mutex::new(ClusterState::default()),
                clock: TestClock::starting_at(START_MS),
                sweeps: AtomicU32::new(0),
            })
        }

        fn set_term(&self, term: u64) {
            self.group.lock().expect("group lock").0 = term;
        }

        /// Spear `id` renews its lease, stamped `at_ms`.
        fn heartbeat(&self, id: NodeId, at_ms: u64) {
            let spear = Member::test_spear(id);
            let cmd = Command::SpearHeartbeat {
                spear,
                now_ms: at_ms,
                ttl_ms: TTL.as_millis() as u64,
            };
            self.state
                .lock()
                .expect("state lock")
                .apply(&cmd, &mut Vec::new());
        }

        fn spears(&self) -> BTreeSet<NodeId> {
            let state = self.state.lock().expect("state lock");
            state.spears.keys().copied().collect()
        }
    }

    impl LeaseControl for FakeLeases {
        fn leadership(&self) -> (u64, bool) {
            *self.group.lock().expect("group lock")
        }

        fn lease_ttl(&self) -> Duration {
            TTL
        }

        fn expire_spears(&self) -> BoxFuture<'_, Result<Vec<NodeId>, ControlError>> {
            Box::pin(async move {
                self.sweeps.fetch_add(1, Ordering::SeqCst);
                if !self.leadership().1 {
                    return Err(ControlError::NotLeader { leader: None });
                }
                let cmd = Command::ExpireSpears {
                    now_ms: self.clock.now_ms(),
                };
                let mut state = self.state.lock().expect("state lock");
                match state.apply(&cmd, &mut Vec::new()) {
                    CommandResponse::Expired { ids } => Ok(ids),
                    other => panic!("unexpected answer {other:?}"),
                }
            })
        }
    }

    /// Runs the sweeper on `control` until the returned token is cancelled (or dropped with
    /// the test's runtime).
    fn sweep(control: &Arc<FakeLeases>) -> CancellationToken {
        let (control, cancel) = (control.clone(), CancellationToken::new());
        let stop = cancel.clone();
        tokio::spawn(async move { sweep_leases(control.as_ref(), EVERY, stop).await });
        cancel
    }

    /// Lets `ms` of (paused) time pass while spear `live` renews its lease every second.
    async fn run_for(control: &FakeLeases, ms: u64, live: NodeId) {
        let until = Instant::now() + Duration::from_millis(ms);
        while Instant::now() < until {
            control.heartbeat(live, control.clock.now_ms());
            tokio::time::sleep_until(until.min(Instant::now() + Duration::from_secs(1))).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ended_leases_are_removed_after_a_lease_length_of_leading_and_live_ones_kept() {
        let control = FakeLeases::new(1, true);
        // Spear 4's lease ended before this term began; spear 5's ends 4 s into it; spear 6
        // keeps renewing.
        control.heartbeat(4, START_MS - 5_000);
        control.heartbeat(5, START_MS + 1_000);
        let _stop = sweep(&control).drop_guard();

        run_for(&control, 2_900, 6).await;
        assert_eq!(
            control.spears(),
            BTreeSet::from([4, 5, 6]),
            "a new leader honours every lease for one lease length"
        );
        run_for(&control, 700, 6).await;
        assert_eq!(control.spears(), BTreeSet::from([5, 6]));
        run_for(&control, 1_000, 6).await;
        assert_eq!(control.spears(), BTreeSet::from([6]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_follower_never_sweeps() {
        let control = FakeLeases::new(1, false);
        control.heartbeat(4, START_MS - 5_000);
        let _stop = sweep(&control).drop_guard();
        tokio::time::sleep(TTL * 4).await;
        assert_eq!(control.spears(), BTreeSet::from([4]));
        assert_eq!(
            control.sweeps.load(Ordering::SeqCst),
            0,
            "a follower proposed expiry"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_term_honours_leases_for_another_lease_length() {
        let control = FakeLeases::new(1, true);
        let _stop = sweep(&control).drop_guard();
        run_for(&control, 5_000, 6).await;
        // Spear 7's lease ends just as a new term (this node again) begins.
        control.heartbeat(7, START_MS + 5_000 - TTL.as_millis() as u64 + 100);
        control.set_term(2);
        run_for(&control, 2_900, 6).await;
        assert_eq!(control.spears(), BTreeSet::from([6, 7]));
        run_for(&control, 700, 6).await;
        assert_eq!(control.spears(), BTreeSet::from([6]));
    }
}
