//! What arrives from Redis: the link's pub/sub pushes, read by one task in arrival order.
//! Messages of this cluster's channels go to the [`Inbound`] sink, except this spear's own
//! echoes; a closed connection marks the link down and the subscriptions for repair.

use std::sync::Arc;

use redis::{PushInfo, PushKind, Value};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

use super::super::wanted::Wanted;
use super::super::{hand_on, Inbound, RelayStats};
use super::channels::Channels;
use crate::config::NodeId;
use crate::net::redis::RedisLink;

/// The receiving side of one spear's Redis relay.
pub(super) struct Receiver<I> {
    pub(super) me: NodeId,
    pub(super) channels: Channels,
    pub(super) link: Arc<RedisLink>,
    pub(super) subscriptions: Arc<Wanted>,
    pub(super) stats: Arc<RelayStats>,
    pub(super) inbound: I,
}

impl<I: Inbound> Receiver<I> {
    /// Reads `pushes` until `cancel`.
    pub(super) async fn run(
        self,
        mut pushes: UnboundedReceiver<PushInfo>,
        cancel: CancellationToken,
    ) {
        loop {
            let push = tokio::select! {
                () = cancel.cancelled() => return,
                push = pushes.recv() => match push {
                    Some(p) => p,
                    None => return,
                },
            };
            match push.kind {
                PushKind::Message | PushKind::SMessage => self.arrived(push.data).await,
                PushKind::Disconnection => {
                    self.link.health().failed("the Redis connection closed");
                    self.subscriptions.lost();
                }
                _ => {}
            }
        }
    }

    async fn arrived(&self, data: Vec<Value>) {
        let mut parts = data.into_iter();
        let (Some(Value::BulkString(channel)), Some(Value::BulkString(wire))) =
            (parts.next(), parts.next())
        else {
            RelayStats::bump(&self.stats.received);
            RelayStats::bump(&self.stats.dropped);
            return;
        };
        let to = self.channels.channel_of(&channel);
        hand_on(self.me, &self.stats, &self.inbound, to, wire).await;
    }
}
