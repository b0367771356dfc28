//! Who a request is from when proxies stand in front of gru (`http.trusted_proxies`): from a
//! trusted proxy, the client `X-Forwarded-For` names; from anyone else, the TCP peer — a
//! client cannot pick its own address for the per-address limits by sending the header.

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The address a request is counted under by the per-address limits (a request extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<Vec<IpNet>>);

impl TrustedProxies {
    /// The proxies of `http.trusted_proxies` (validated: entries that do not parse are left
    /// out).
    pub fn new(entries: &[String]) -> Self {
        Self(Arc::new(
            entries
                .iter()
                .filter_map(|e| crate::config::parse_network(e))
                .collect(),
        ))
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client of a request that came from `peer` with `headers`: the peer itself unless it
    /// is a trusted proxy; then, walking `X-Forwarded-For` from its end (the address the last
    /// proxy saw), the first address that is not a trusted proxy. A header that does not parse
    /// leaves the last trusted address believed.
    pub fn client_of(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect::<Vec<_>>();
        for hop in forwarded.iter().rev() {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !self.trusts(ip) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().expect("value"));
        }
        h
    }

    #[test]
    fn only_a_trusted_proxy_names_the_client() {
        let proxies = TrustedProxies::new(&["10.0.0.0/8".into(), "192.168.1.5".into()]);
        let client: IpAddr = "203.0.113.9".parse().expect("ip");
        let proxy: IpAddr = "10.1.2.3".parse().expect("ip");
        // A client sending the header itself is counted as itself.
        assert_eq!(
            proxies.client_of(client, &headers(&["198.51.100.1"])),
            client
        );
        // Through the proxy: the address it appended.
        assert_eq!(
            proxies.client_of(proxy, &headers(&["198.51.100.1, 203.0.113.9"])),
            client,
            "a forged first entry is not believed"
        );
        // Through two trusted proxies, in two header lines.
        assert_eq!(
            proxies.client_of(proxy, &headers(&["203.0.113.9", "192.168.1.5"])),
            client
        );
        // No header, or garbage: the proxy itself.
        assert_eq!(proxies.client_of(proxy, &HeaderMap::new()), proxy);
        assert_eq!(proxies.client_of(proxy, &headers(&["not-an-ip"])), proxy);
        // Nobody trusted: the header is ignored.
        let none = TrustedProxies::default();
        assert_eq!(none.client_of(proxy, &headers(&["203.0.113.9"])), proxy);
    }
}
