//! The one choice of relay backend: `relay.kind` picks a backend folder, and each backend
//! builds itself from the same [`RelaySetup`]. Adding a backend is its folder, its `mod` line
//! in `relay/mod.rs`, one arm here, and its config section.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use redis::PushInfo;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Inbound, LocalRelay, Relay};
use crate::config::{ClusterConfig, NodeId, RelayKind};
use crate::net::redis::RedisLink;

/// What a spear's relay is built from.
pub struct RelaySetup<'a, I> {
    /// The cluster's config: `relay.kind` and the backends' sections.
    pub config: &'a ClusterConfig,
    /// This spear.
    pub me: NodeId,
    /// The node's Redis link and its pub/sub messages, when the relay travels between spears.
    pub redis: Option<(Arc<RedisLink>, UnboundedReceiver<PushInfo>)>,
    /// Where messages from other spears go.
    pub inbound: I,
    /// The spear registry, for a backend that removes what dead spears left in its transport
    /// (the RocketMQ relay's routes); `None`: nothing is removed.
    pub registry: Option<SpearRegistry>,
    /// Stops the backend's workers.
    pub cancel: CancellationToken,
}

/// Which spears the registry holds alive, read through the leader (a follower's copy may lag
/// behind a registration).
pub trait LiveSpears: Send + Sync + 'static {
    /// The registered spears; an error when no leader answered.
    fn live(&self) -> BoxFuture<'_, Result<HashSet<NodeId>, String>>;
}

/// What a relay knows of the spear registry.
#[derive(Clone)]
pub struct SpearRegistry {
    /// The spears it holds alive.
    pub live: Arc<dyn LiveSpears>,
    /// When this spear's current registration began (the leader's `registered_at_ms`;
    /// `None` before the first): a new value means the previous registration ended, and the
    /// cluster may have removed what it held for this spear.
    pub registered_at: watch::Receiver<Option<u64>>,
    /// `spear.lease_ttl_ms`.
    pub lease: Duration,
}

/// A relay, with what its backend runs.
pub struct BuiltRelay {
    /// The handle spears publish through.
    pub relay: Relay,
    /// Its workers, named, stopped by the setup's `cancel`.
    pub workers: Vec<(&'static str, JoinHandle<()>)>,
    /// What stops the backend's client, once its workers have stopped (RocketMQ's).
    pub close: Option<BoxFuture<'static, ()>>,
}

impl BuiltRelay {
    /// A relay that runs nothing of its own.
    pub(super) fn alone(relay: Relay) -> Self {
        Self {
            relay,
            workers: Vec::new(),
            close: None,
        }
    }
}

/// Why a relay could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RelayBuildError {
    /// `relay.kind` names a backend this gru was built without, or one that travels between
    /// spears on a node without a Redis link (`validate()` refuses both; a config built in
    /// code can still get here).
    #[error("invalid config: `relay.kind`: this relay is not built into this gru, or its links are missing")]
    Unbuilt,
    /// The RocketMQ client could not be set up.
    #[cfg(feature = "rocketmq")]
    #[error(transparent)]
    RocketMq(#[from] super::rocketmq::MqError),
}

/// The relay `setup.config.relay.kind` names.
pub async fn build<I: Inbound>(setup: RelaySetup<'_, I>) -> Result<BuiltRelay, RelayBuildError> {
    match setup.config.relay.kind {
        RelayKind::Local => Ok(BuiltRelay::alone(LocalRelay::start())),
        RelayKind::Redis => super::redis::build(setup),
        #[cfg(feature = "rocketmq")]
        RelayKind::RocketMq => super::rocketmq::build(setup).await,
        #[cfg(not(feature = "rocketmq"))]
        RelayKind::RocketMq => Err(RelayBuildError::Unbuilt),
    }
}
