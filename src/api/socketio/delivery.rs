//! What reaches clients: the sequencer's live messages to every connection live on a channel
//! ([`RoomDelivery`]), and a joining connection's backlog to it alone ([`LinkCatcher`]), both
//! through [`Links`].

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::events::Client;
use super::link::Unsent;
use super::links::Links;
use super::SpearContext;
use crate::services::channel::Channel;
use crate::services::history::{Catcher, Outlet, Resync};
use crate::services::relay::{Delivery, Envelope};
use crate::services::spear::SpearCounters;

/// Hands what the spear's sequencer delivers to the connections live on each channel.
#[derive(Clone)]
pub struct RoomDelivery {
    links: Links,
    counters: Arc<SpearCounters>,
}

impl RoomDelivery {
    /// Delivers to `links`, counting into `counters`.
    pub fn new(links: Links, counters: Arc<SpearCounters>) -> Self {
        Self { links, counters }
    }
}

impl Outlet for RoomDelivery {
    fn deliver(&self, envelope: Envelope) -> BoxFuture<'_, Delivery> {
        Box::pin(async move {
            let sent = self
                .links
                .deliver(envelope.channel, "msg", &envelope.payload)
                .await;
            match sent {
                Ok(()) => {
                    self.counters.delivered();
                    Delivery::Done
                }
                // Only a client whose send queue is full (it does not read) misses it.
                Err(_) => Delivery::SlowClient,
            }
        })
    }

    fn resync(&self, channel: Channel, notice: Resync) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if self
                .links
                .deliver(channel, "resync", &notice)
                .await
                .is_err()
            {
                tracing::debug!("a resync notice missed a client that does not read");
            }
        })
    }
}

/// A connection catching up on one channel: replayed messages go to it alone, then it goes
/// live on the channel.
pub(super) struct LinkCatcher<'a> {
    client: Client,
    channel: Channel,
    ctx: &'a SpearContext,
}

impl<'a> LinkCatcher<'a> {
    /// How long a replay waits for a connection whose send queue is full.
    const PATIENCE: Duration = Duration::from_secs(10);

    pub(super) fn new(client: Client, channel: Channel, ctx: &'a SpearContext) -> Self {
        Self {
            client,
            channel,
            ctx,
        }
    }
}

impl Catcher for LinkCatcher<'_> {
    fn send(&self, message: Box<serde_json::value::RawValue>) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + Self::PATIENCE;
            loop {
                match self.client.link.emit("msg", &message) {
                    Ok(()) => return true,
                    Err(Unsent::Full) if tokio::time::Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err(_) => return false,
                }
            }
        })
    }

    fn resync(&self, notice: &Resync) {
        if self.client.link.emit("resync", notice).is_err() {
            tracing::debug!("a resync notice was not sent");
        }
    }

    fn go_live(&self) {
        self.ctx.links.join(self.channel, &self.client.link);
    }

    fn may_open(&self) -> bool {
        let Some(uid) = self.client.state.uid() else {
            return false;
        };
        self.ctx.publisher.reach().open(uid, self.channel)
    }
}
