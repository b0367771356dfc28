//! Spear lease expiry: the leader removes spears whose lease ended, through the log.
//!
//! A newly elected leader first waits one full lease length: spears could not renew while
//! there was no leader, so their leases are honoured as if renewed at the election.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::raft::control::{ControlError, ControlPlane};

/// Runs until `cancel`: every `every`, on the leader, expires ended leases.
pub async fn run_lease_sweeper(
    control: Arc<ControlPlane>,
    every: Duration,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leading_since: Option<(u64, Instant)> = None;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !control.is_leader() {
            leading_since = None;
            continue;
        }
        let term = control.raft().metrics().borrow().current_term;
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
