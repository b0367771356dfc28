//! One lazily connected tonic channel per peer address, shared by Raft and the control plane.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

/// A cache of channels by `host:port`.
#[derive(Clone)]
pub struct ChannelPool {
    inner: Arc<Mutex<HashMap<String, Channel>>>,
    connect_timeout: Duration,
}

/// The address is not a valid `host:port`.
#[derive(Debug, thiserror::Error)]
#[error("bad peer address {addr:?}: {reason}")]
pub struct BadAddress {
    addr: String,
    reason: String,
}

impl ChannelPool {
    /// A pool whose connections give up connecting after `connect_timeout`.
    pub fn new(connect_timeout: Duration) -> Self {
        Self {
            inner: Arc::default(),
            connect_timeout,
        }
    }

    /// The channel to `addr`, created on first use. Connecting happens on the first call.
    pub fn get(&self, addr: &str) -> Result<Channel, BadAddress> {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(channel) = map.get(addr) {
            return Ok(channel.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}")).map_err(|e| BadAddress {
            addr: addr.to_string(),
            reason: e.to_string(),
        })?;
        let channel = endpoint
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5))
            .connect_lazy();
        map.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }
}
