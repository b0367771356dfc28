//! `relay.kind = "local"`: a single-spear deployment, where every recipient is on the spear
//! that received the message and delivers it itself. Nothing is carried, nothing arrives, and
//! the transport never fails.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio::sync::oneshot;

use super::{Backend, Envelope, Relay, RelayError, TransportStatus};
use crate::services::spear::roster::{Change, ChangeSink};

/// The relay of the one spear of a deployment.
#[derive(Debug, Default)]
pub struct LocalRelay;

impl LocalRelay {
    /// The relay handle.
    pub fn start() -> Relay {
        Relay::new(Arc::new(Self), Arc::default())
    }
}

impl ChangeSink for LocalRelay {
    fn changed(&self, _: Change) -> Option<oneshot::Receiver<()>> {
        // Every recipient is here: there is nothing to subscribe to.
        None
    }
}

impl Backend for LocalRelay {
    fn publish<'a>(&'a self, _: &'a Envelope) -> BoxFuture<'a, Result<(), RelayError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn status(&self) -> TransportStatus {
        TransportStatus {
            kind: "local",
            connected: true,
            outages: 0,
            channels: 0,
        }
    }
}
