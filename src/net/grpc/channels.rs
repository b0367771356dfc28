//! One lazily connected tonic channel per peer address, shared by Raft and the control plane.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// A cache of channels by `host:port`.
#[derive(Clone)]
pub struct ChannelPool {
    inner: Arc<Mutex<HashMap<String, Channel>>>,
    connect_timeout: Duration,
    local_ip: Option<IpAddr>,
    tls: Option<ClientTlsConfig>,
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
            local_ip: None,
            tls: None,
        }
    }

    /// Connections speak mutual TLS with `tls` (`net::tls`), when given.
    pub fn with_tls(mut self, tls: Option<ClientTlsConfig>) -> Self {
        self.tls = tls;
        self
    }

    /// Connections leave from `ip` (a node's own internal address), so that a multi-homed host
    /// talks to its peers from the address it advertises.
    pub fn with_local_ip(mut self, ip: IpAddr) -> Self {
        if !ip.is_unspecified() {
            self.local_ip = Some(ip);
        }
        self
    }

    /// The channel to `addr`, created on first use. Connecting happens on the first call.
    pub fn get(&self, addr: &str) -> Result<Channel, BadAddress> {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(channel) = map.get(addr) {
            return Ok(channel.clone());
        }
        let bad = |e: &dyn std::fmt::Display| BadAddress {
            addr: addr.to_string(),
            reason: e.to_string(),
        };
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut endpoint =
            Endpoint::from_shared(format!("{scheme}://{addr}")).map_err(|e| bad(&e))?;
        if let Some(tls) = &self.tls {
            endpoint = endpoint.tls_config(tls.clone()).map_err(|e| bad(&e))?;
        }
        let channel = endpoint
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5))
            .local_address(self.local_ip)
            .connect_lazy();
        map.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }
}
