//! A spear's place in the registry: register, renew the lease, deregister on shutdown.
//!
//! The lease is what makes a spear visible to ticket: if this process dies, renewals stop and
//! the leader removes it through the log once the lease ends.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::net::grpc::ClusterClient;
use crate::raft::Member;

/// How long a graceful shutdown waits for the deregistration to be committed.
const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether this spear is in the cluster: `false` from its first renewal until no renewal has
/// succeeded for a whole lease (the leader has then removed it, or cannot be reached to keep
/// it: ticket places nobody here), and again once a renewal succeeds. A fenced spear moves its
/// clients away (`api::socketio`).
pub type Fenced = watch::Receiver<bool>;

/// Keeps `me` registered, renewing every `renew`, until `cancel`; then deregisters. `fenced`
/// says whether the last successful renewal is older than `lease`.
pub async fn run_registration(
    me: Member,
    client: Arc<ClusterClient>,
    (renew, lease): (Duration, Duration),
    fenced: watch::Sender<bool>,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(renew);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut registered = false;
    let mut last_ok: Option<Instant> = None;
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
                last_ok = Some(Instant::now());
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
        let out = last_ok.is_some_and(|at| at.elapsed() >= lease);
        fenced.send_if_modified(|was| {
            if *was == out {
                return false;
            }
            if out {
                tracing::warn!(?lease, "no lease renewal for a whole lease: this spear is out of the cluster and moves its clients away");
            } else {
                tracing::info!("back in the cluster: this spear takes clients again");
            }
            *was = out;
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
