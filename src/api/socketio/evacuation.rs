//! Moving every client away: when the spear stops (`server_shutdown`, then closed), drains
//! (`gru drain`: waves of `server_shutdown`, each client closed), or finds itself out of the
//! cluster (fenced). Each tells clients to reconnect through ticket.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::closer::CloseReason;
use super::links::Links;
use super::SpearContext;
use crate::services::spear::{DrainState, StandingWatch};

/// What a draining spear tells its clients and new connections.
pub(super) const DRAINING: &str = "this spear is being drained: reconnect through ticket";

/// What a spear out of the cluster tells its clients and new connections.
pub(super) const OUT_OF_CLUSTER: &str =
    "this spear lost contact with the cluster: reconnect through ticket";

/// What a stopping spear tells its clients.
pub(super) const SHUTTING_DOWN: &str = "this spear is shutting down";

/// How long a drain waits before its first wave: ticket must have heard (by gossip) that the
/// spear takes no users, or the clients it moves would be sent back to it.
pub(super) const DRAIN_SETTLE: Duration = Duration::from_secs(2);

/// Tells every client `msg` (`server_shutdown`, reconnect through ticket) and disconnects it.
fn move_everyone(links: &Links, msg: &str) {
    let notice = json!({"reconnect": "ticket", "msg": msg});
    for link in links.all() {
        let _ = link.emit("server_shutdown", &notice);
        if link.disconnect().is_err() {
            tracing::debug!(sid = %link.id(), "a client that does not read was not told to go");
        }
    }
}

/// The spear stops: every client is told and disconnected (the listener cuts what is still
/// open after the drain time).
pub(super) fn farewell(links: &Links) {
    move_everyone(links, SHUTTING_DOWN);
}

/// Whenever the spear drains, tells its clients to reconnect through ticket and closes them,
/// a wave at a time as the drain's plan says, after `settle`. Never returns.
pub(super) async fn move_clients_when_draining(ctx: Arc<SpearContext>, settle: Duration) {
    let mut state = ctx.drain.watch();
    loop {
        let now = *state.borrow_and_update();
        let plan = match now {
            DrainState::Draining(plan) => plan,
            DrainState::Serving => {
                if state.changed().await.is_err() {
                    break;
                }
                continue;
            }
        };
        // Anything that changes the drain (stopped, another plan) starts over.
        tokio::select! {
            () = tokio::time::sleep(settle) => {}
            changed = state.changed() => {
                if changed.is_err() { break; }
                continue;
            }
        }
        let notice = json!({"reconnect": "ticket", "msg": DRAINING});
        loop {
            let wave = usize::try_from(plan.wave.get()).unwrap_or(usize::MAX);
            let leaving = ctx.links.some(wave);
            for link in &leaving {
                let _ = link.emit("server_shutdown", &notice);
                ctx.closer.close(link, CloseReason::Draining, None);
            }
            if !leaving.is_empty() {
                ctx.drain.moved(leaving.len() as u64);
                tracing::info!(
                    moved = leaving.len(),
                    left = ctx.counters.connections(),
                    "drain wave"
                );
            }
            tokio::select! {
                () = tokio::time::sleep(plan.every.max(Duration::from_millis(10))) => {}
                _ = state.changed() => break,
            }
        }
    }
    std::future::pending::<()>().await;
}

/// Whenever this spear is fenced (cut off from a cluster that works without it), tells every
/// client to reconnect through ticket and disconnects it: ticket no longer places anyone here,
/// and a spear cut off from the others cannot promise its clients their messages. A degraded
/// spear (no leader anywhere) keeps its clients. Never returns (pends once the registration is
/// gone, at shutdown).
pub(super) async fn move_clients_when_fenced(links: Links, mut standing: StandingWatch) {
    while standing.changed().await.is_ok() {
        if !standing.borrow_and_update().is_fenced() {
            continue;
        }
        move_everyone(&links, OUT_OF_CLUSTER);
    }
    std::future::pending::<()>().await;
}
