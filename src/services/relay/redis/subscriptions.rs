//! The spear's channel subscriptions, as the relay's [`Wanted`] set: one ordered task keeps
//! them, and sends them all again when they may have been lost.

use std::sync::Arc;

use super::super::wanted::Apply;
use crate::net::redis::RedisLink;

/// Subscribes and unsubscribes on the link's pub/sub connection.
pub(super) struct Subscribe(pub(super) Arc<RedisLink>);

impl Apply for Subscribe {
    const WHAT: &'static str = "subscriptions";

    async fn add(&self, channels: &[String]) -> bool {
        self.0.subscribe(channels).await.is_ok()
    }

    async fn remove(&self, channels: &[String]) -> bool {
        self.0.unsubscribe(channels).await.is_ok()
    }

    fn reconnections(&self) -> u64 {
        self.0.health().outages()
    }
}
