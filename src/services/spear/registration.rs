//! A spear's place in the registry: register, renew the lease, deregister on shutdown, and
//! judge from the renewals and the cores' gossip where the spear stands ([`Standing`]).
//!
//! The lease is what makes a spear visible to ticket: if this process dies, renewals stop and
//! the leader removes it through the log once the lease ends.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::standing::Standing;
use crate::config::NodeId;
use crate::net::gossip::Gossip;
use crate::net::grpc::ClusterClient;
use crate::raft::Member;

/// How long a graceful shutdown waits for the deregistration to be committed.
const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(2);

/// Keeps `me` registered, renewing every `renew`, until `cancel`; then deregisters. After
/// each renewal it judges the spear's [`Standing`] from the age of the last successful
/// renewal against `lease` and what the live cores gossip about the leader, and publishes it
/// on `standing` when it changes: a fenced spear moves its clients away (`api::socketio`), a
/// degraded one keeps them. Each renewal also publishes on `registered_at` when the current
/// registration began (the leader's `registered_at_ms`): a new value means the previous one
/// ended, and with it what the cluster removes of a spear it holds dead (its RocketMQ routes).
pub async fn run_registration(
    me: Member,
    client: Arc<ClusterClient>,
    gossip: Arc<Gossip>,
    (renew, lease): (Duration, Duration),
    (standing, registered_at): (watch::Sender<Standing>, watch::Sender<Option<u64>>),
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(renew);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut registered = false;
    let mut last_ok: Option<Instant> = None;
    let mut failed_in_a_row = 0u32;
    // Since when the cores have shown the leader they show now.
    let mut leader_seen: Option<(NodeId, Instant)> = None;
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        // A renewal that takes longer than the interval is abandoned; the next one starts fresh.
        let outcome = tokio::select! {
            () = cancel.cancelled() => break,
            r = tokio::time::timeout(renew, client.spear_heartbeat((&me).into())) => r,
        };
        match outcome {
            Ok(Ok(grant)) => {
                if !registered {
                    tracing::info!(lease = ?grant.ttl, "spear registered with the cluster");
                    registered = true;
                }
                if grant.registered_at_ms != 0 {
                    registered_at.send_if_modified(|was| {
                        let changed = *was != Some(grant.registered_at_ms);
                        *was = Some(grant.registered_at_ms);
                        changed
                    });
                }
                last_ok = Some(Instant::now());
                failed_in_a_row = 0;
            }
            Ok(Err(e)) => {
                if registered {
                    tracing::warn!(error = %e, "spear lease renewal failed");
                }
                registered = false;
                failed_in_a_row = failed_in_a_row.saturating_add(1);
            }
            Err(_) => {
                if registered {
                    tracing::warn!("spear lease renewal timed out");
                }
                registered = false;
                failed_in_a_row = failed_in_a_row.saturating_add(1);
            }
        }
        let sightings = gossip.leader_sightings().await;
        leader_seen = match (sightings.leader, leader_seen) {
            (Some((leader, _)), Some((was, since))) if was == leader => Some((leader, since)),
            (Some((leader, _)), _) => Some((leader, Instant::now())),
            (None, _) => None,
        };
        let now = Standing::judge(
            (last_ok.map(|at| at.elapsed()), failed_in_a_row),
            leader_seen.map(|(leader, since)| (leader, since.elapsed())),
            lease,
        );
        standing.send_if_modified(|was| {
            if *was == now {
                return false;
            }
            announce(*was, now, lease, sightings.cores);
            *was = now;
            true
        });
    }
    match tokio::time::timeout(DEREGISTER_TIMEOUT, client.deregister_spear(me.id)).await {
        Ok(Ok(())) => tracing::info!("spear deregistered"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "spear deregistration failed; its lease will expire")
        }
        Err(_) => tracing::warn!("spear deregistration timed out; its lease will expire"),
    }
}

/// Logs a change of standing, as an operator needs to read it.
fn announce(was: Standing, now: Standing, lease: Duration, cores: usize) {
    match now {
        Standing::Fenced { leader } => tracing::warn!(
            ?lease,
            leader,
            "no lease renewal for a whole lease while the other members see a leader: this spear is cut off and moves its clients away"
        ),
        Standing::Degraded => tracing::warn!(
            ?lease,
            live_cores = cores,
            "no lease renewal for a whole lease and no core sees a leader (no quorum): keeping every client on the last known state; strict ids are refused until a leader is back"
        ),
        Standing::Serving if was != Standing::Joining => {
            tracing::info!(was = was.name(), "lease renewed: back in the cluster")
        }
        Standing::Serving | Standing::Joining => {}
    }
}
