//! A spear's place in the registry: register, renew the lease, deregister on shutdown.
//!
//! The lease is what makes a spear visible to ticket: if this process dies, renewals stop and
//! the leader removes it through the log once the lease ends.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::net::grpc::ClusterClient;
use crate::raft::Member;

/// How long a graceful shutdown waits for the deregistration to be committed.
const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(2);

/// Keeps `me` registered, renewing every `renew`, until `cancel`; then deregisters.
pub async fn run_registration(
    me: Member,
    client: Arc<ClusterClient>,
    renew: Duration,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(renew);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut registered = false;
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
            Ok(Ok(ttl)) => {
                if !registered {
                    tracing::info!(lease = ?ttl, "spear registered with the cluster");
                    registered = true;
                }
            }
            Ok(Err(e)) => {
                if registered {
                    tracing::warn!(error = %e, "spear lease renewal failed");
                }
                registered = false;
            }
            Err(_) => {
                if registered {
                    tracing::warn!("spear lease renewal timed out");
                }
                registered = false;
            }
        }
    }
    match tokio::time::timeout(DEREGISTER_TIMEOUT, client.deregister_spear(me.id)).await {
        Ok(Ok(())) => tracing::info!("spear deregistered"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "spear deregistration failed; its lease will expire")
        }
        Err(_) => tracing::warn!("spear deregistration timed out; its lease will expire"),
    }
}
