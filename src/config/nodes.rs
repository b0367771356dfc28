//! `[[nodes]]`: one entry per node of the cluster, with its roles, data directory and addresses.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::knob::Knob;
use super::table::{config_table, toml_enum};

/// A node's id in `cluster.toml` (≥ 1).
pub type NodeId = u64;

/// What a node does. A node may carry several roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A Raft member: membership, spear registry, ids (`"core"`).
    Core,
    /// Holds client connections over socket.io (`"spear"`).
    Spear,
    /// Places users on spears and signs their spear tokens (`"ticket"`).
    Ticket,
    /// Presence and statistics API (`"stat"`).
    Stat,
}

toml_enum!(Role {
    Core,
    Spear,
    Ticket,
    Stat
});

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Core => "core",
            Role::Spear => "spear",
            Role::Ticket => "ticket",
            Role::Stat => "stat",
        })
    }
}

config_table! {
    /// `[[nodes]]`: one node.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct NodeConfig {
        /// The node's id. Overrides and `--node` address the node by it.
        pub id: NodeId => Knob::plain().min(1).rule("unique"),
        /// What the node does: `core` is a Raft member (membership, spear registry, ids),
        /// `spear` holds client connections, `ticket` places users on spears and signs their
        /// tokens, `stat` serves presence and statistics.
        pub roles: Vec<Role> => Knob::plain().rule("at least one, none twice"),
        /// Where the node keeps its data (the Raft store is `data_dir/raft`). A relative path is
        /// relative to the config file's directory ([relative paths](#relative-paths)).
        pub data_dir: PathBuf => Knob::plain().rule("not empty, unique over all nodes"),
        /// `true`: the node joins a running cluster (learner, catch up, voter) instead of being
        /// one of the initial voters that form it.
        #[serde(default)]
        pub join: bool => Knob::plain().rule("only on a core node"),
        /// `[nodes.listen]`: the addresses the node binds.
        pub listen: ListenAddrs => Knob::plain(),
        /// `[nodes.advertise]`: the addresses others use to reach the node, when they differ
        /// from `listen`.
        #[serde(default)]
        pub advertise: AdvertiseAddrs => Knob::plain().unset("the `listen` addresses"),
    }
    example = "id = 1\nroles = [\"core\"]\ndata_dir = \"data\"\n\
               [listen]\ngrpc = \"127.0.0.1:1\"\nhttp = \"127.0.0.1:2\"\ngossip = \"127.0.0.1:3\"";
}

impl NodeConfig {
    /// Whether the node carries `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Whether the node is a Raft member.
    pub fn is_core(&self) -> bool {
        self.has_role(Role::Core)
    }

    /// Where others reach the node's internal gRPC: `advertise.grpc`, else `listen.grpc`.
    pub fn advertised_grpc(&self) -> String {
        advertised(&self.advertise.grpc, self.listen.grpc)
    }

    /// Where others reach the node's HTTP API: `advertise.http`, else `listen.http`.
    pub fn advertised_http(&self) -> String {
        advertised(&self.advertise.http, self.listen.http)
    }

    /// Where clients reach the node's socket.io: `advertise.sio`, else `listen.sio`; `None`
    /// when the node serves no socket.io.
    pub fn advertised_sio(&self) -> Option<String> {
        self.advertise
            .sio
            .clone()
            .or_else(|| self.listen.sio.map(|addr| addr.to_string()))
    }

    /// Where others reach the node's admin surface: `advertise.admin`, else `listen.admin`;
    /// `None` when the node serves none.
    pub fn advertised_admin(&self) -> Option<String> {
        self.advertise
            .admin
            .clone()
            .or_else(|| self.listen.admin.map(|addr| addr.to_string()))
    }

    /// Where others reach the node's gossip: `advertise.gossip`, else `listen.gossip`.
    pub fn advertised_gossip(&self) -> String {
        advertised(&self.advertise.gossip, self.listen.gossip)
    }
}

fn advertised(given: &Option<String>, listen: SocketAddr) -> String {
    given.clone().unwrap_or_else(|| listen.to_string())
}

config_table! {
    /// `[nodes.listen]`: the socket addresses a node binds.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ListenAddrs {
        /// Internal gRPC: Raft and the control plane. Cluster traffic only: never expose it to
        /// clients.
        pub grpc: SocketAddr => Knob::plain(),
        /// The public surface: `/healthz`, and ticket on ticket nodes. Nothing else is served
        /// here (`docs/security.md`, "Surfaces").
        pub http: SocketAddr => Knob::plain(),
        /// socket.io for clients. Other nodes ignore it.
        #[serde(default)]
        pub sio: Option<SocketAddr> => Knob::plain().rule("required on spear nodes"),
        /// Gossip between members.
        pub gossip: SocketAddr => Knob::plain(),
        /// The admin surface: dashboard, playground, monitor API, presence, cluster view, ids,
        /// `/metrics`, and what the CLI's `status`, `drain`, `meta` and `cluster` call; every
        /// route behind `[[auth.admin_keys]]`. Left out, the node serves none of it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub admin: Option<SocketAddr> => Knob::plain()
            .rule("may equal `http` only on a loopback address"),
        /// The server API business servers call (`docs/api.md`), behind `[[auth.api_keys]]`.
        /// Left out, the spear serves none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub server_api: Option<SocketAddr> => Knob::plain()
            .rule("spear nodes only; may equal `http` only on a loopback address"),
    }
    example = "grpc = \"127.0.0.1:1\"\nhttp = \"127.0.0.1:2\"\ngossip = \"127.0.0.1:3\"";
}

impl ListenAddrs {
    /// The addresses `gru dev` uses unless told otherwise: gRPC 127.0.0.1:7000, every HTTP
    /// surface on 127.0.0.1:8080, socket.io 127.0.0.1:31001, gossip 127.0.0.1:7946.
    pub fn dev_default() -> Self {
        let local = |port| SocketAddr::from(([127, 0, 0, 1], port));
        Self::dev(local(7000), local(8080), local(31001), local(7946))
    }

    /// `gru dev`'s addresses: every HTTP surface on `http` (loopback, for the developer).
    pub fn dev(grpc: SocketAddr, http: SocketAddr, sio: SocketAddr, gossip: SocketAddr) -> Self {
        Self {
            grpc,
            http,
            sio: Some(sio),
            gossip,
            admin: Some(http),
            server_api: Some(http),
        }
    }

    /// Each address with its field name, the optional ones as `None` when not set.
    pub(super) fn named(&self) -> [(&'static str, Option<SocketAddr>); 6] {
        [
            ("grpc", Some(self.grpc)),
            ("http", Some(self.http)),
            ("sio", self.sio),
            ("gossip", Some(self.gossip)),
            ("admin", self.admin),
            ("server_api", self.server_api),
        ]
    }
}

config_table! {
    /// `[nodes.advertise]`: the `host:port` others should use; each defaults to the listen
    /// address.
    ///
    /// Needed when the bound address is not the reachable one: a wildcard bind (`0.0.0.0`), NAT
    /// or container networking.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct AdvertiseAddrs {
        /// Where the other nodes reach the internal gRPC.
        pub grpc: Option<String> = None => Knob::plain().rule(HOST_PORT).unset("`listen.grpc`"),
        /// Where clients reach the HTTP API.
        pub http: Option<String> = None => Knob::plain().rule(HOST_PORT).unset("`listen.http`"),
        /// Where clients reach socket.io.
        pub sio: Option<String> = None => Knob::plain().rule(HOST_PORT).unset("`listen.sio`"),
        /// Where the other nodes reach gossip.
        pub gossip: Option<String> = None => Knob::plain()
            .rule(HOST_PORT)
            .unset("`listen.gossip`"),
        /// Where operators and the other nodes (the dashboard's aggregator, `gru status`) reach
        /// the admin surface.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub admin: Option<String> = None => Knob::plain()
            .rule(HOST_PORT)
            .unset("`listen.admin`"),
    }
}

/// The rule of an advertised address, checked by [`is_host_port`].
const HOST_PORT: &str = "`host:port`";

impl AdvertiseAddrs {
    /// Each address with its field name, `None` when not given.
    pub(super) fn named(&self) -> [(&'static str, Option<&str>); 5] {
        [
            ("grpc", self.grpc.as_deref()),
            ("http", self.http.as_deref()),
            ("sio", self.sio.as_deref()),
            ("gossip", self.gossip.as_deref()),
            ("admin", self.admin.as_deref()),
        ]
    }
}

/// Whether `value` is `host:port` or `[v6]:port` with a port in 1..=65535 and a host without
/// spaces. An IPv6 host must be bracketed, or its last group could not be told from the port.
pub(super) fn is_host_port(value: &str) -> bool {
    let Some((host, port)) = value.rsplit_once(':') else {
        return false;
    };
    let port_ok = port.parse::<u16>().is_ok_and(|p| p != 0);
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => {
            !host.is_empty()
                && !host.contains([':', '[', ']'])
                && !host.contains(char::is_whitespace)
        }
    };
    port_ok && host_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(advertise: AdvertiseAddrs) -> NodeConfig {
        NodeConfig {
            id: 1,
            roles: vec![Role::Core, Role::Spear],
            data_dir: "d".into(),
            join: false,
            listen: ListenAddrs::dev_default(),
            advertise,
        }
    }

    #[test]
    fn advertised_addresses_fall_back_to_listen() {
        let n = node(AdvertiseAddrs::default());
        assert_eq!(n.advertised_grpc(), "127.0.0.1:7000");
        assert_eq!(n.advertised_http(), "127.0.0.1:8080");
        assert_eq!(n.advertised_sio().as_deref(), Some("127.0.0.1:31001"));
        assert_eq!(n.advertised_gossip(), "127.0.0.1:7946");
    }

    #[test]
    fn advertised_addresses_win_when_given() {
        let n = node(AdvertiseAddrs {
            grpc: Some("core1.internal:7000".into()),
            sio: Some("chat.example.com:443".into()),
            ..AdvertiseAddrs::default()
        });
        assert_eq!(n.advertised_grpc(), "core1.internal:7000");
        assert_eq!(n.advertised_sio().as_deref(), Some("chat.example.com:443"));
        assert_eq!(n.advertised_http(), "127.0.0.1:8080");
    }

    #[test]
    fn roles_are_queried_and_printed_lowercase() {
        let n = node(AdvertiseAddrs::default());
        assert!(n.is_core() && n.has_role(Role::Spear) && !n.has_role(Role::Stat));
        let names: Vec<String> = [Role::Core, Role::Spear, Role::Ticket, Role::Stat]
            .iter()
            .map(Role::to_string)
            .collect();
        assert_eq!(names, ["core", "spear", "ticket", "stat"]);
        // Display spells a role as serde does: the config and the messages agree.
        for role in [Role::Core, Role::Spear, Role::Ticket, Role::Stat] {
            assert_eq!(
                toml::Value::try_from(role).ok(),
                Some(role.to_string().into())
            );
        }
    }

    #[test]
    fn host_port_needs_a_host_and_a_numeric_port() {
        for good in ["node1.internal:7101", "10.0.0.1:1", "[::1]:7000"] {
            assert!(is_host_port(good), "{good}");
        }
        let bad = [
            "node1",
            "node1:",
            ":7000",
            "node1:http",
            "node1:0",
            "::1:7000",
            "a b:1",
        ];
        for bad in bad {
            assert!(!is_host_port(bad), "{bad}");
        }
    }
}
