//! Who may talk to what: the one table of every HTTP route, the surface (listener) that
//! serves it, the nodes that mount it and who may call it. `docs/security.md` ("Surfaces")
//! shows this table as [`markdown`] renders it (a unit test keeps the two equal), and the
//! `surfaces` integration test probes every row on every listener of a cluster.

use crate::config::Role;

/// A listener and the surface it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Surface {
    /// `listen.http`: the health check and ticket, for anyone on the internet.
    Public,
    /// `listen.sio`: socket.io clients, for anyone on the internet (public too).
    SocketIo,
    /// `listen.admin`: operators, their scripts and Prometheus, behind `[[auth.admin_keys]]`.
    Admin,
    /// `listen.server_api`: business servers, behind `[[auth.api_keys]]`.
    ServerApi,
}

impl Surface {
    /// The name used in the table and in errors.
    pub fn name(self) -> &'static str {
        match self {
            Surface::Public => "public",
            Surface::SocketIo => "socket.io",
            Surface::Admin => "admin",
            Surface::ServerApi => "server API",
        }
    }

    /// The config field of its listener.
    pub fn listen_field(self) -> &'static str {
        match self {
            Surface::Public => "listen.http",
            Surface::SocketIo => "listen.sio",
            Surface::Admin => "listen.admin",
            Surface::ServerApi => "listen.server_api",
        }
    }
}

/// Which nodes serve a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mounted {
    /// Every node (that has the surface's listener).
    Every,
    /// Nodes with this role.
    With(Role),
    /// Every node, while `[metrics] enabled`.
    WithMetrics,
    /// Stat nodes running with `gru dev`'s public secrets (nowhere in a real cluster).
    DevStat,
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone who reaches the listener (the route checks what it needs itself: a token, the
    /// login form's key).
    Anyone,
    /// An admin key (or session) with the `read` scope.
    AdminRead,
    /// An admin key (or session) with the `admin` scope.
    Admin,
    /// An API key with the `publish` scope.
    Publish,
    /// An API key with the `connections` scope.
    Connections,
}

impl Access {
    fn name(self) -> &'static str {
        match self {
            Access::Anyone => "anyone",
            Access::AdminRead => "admin key, `read`",
            Access::Admin => "admin key, `admin`",
            Access::Publish => "API key, `publish`",
            Access::Connections => "API key, `connections`",
        }
    }

    /// Whether a request without credentials is refused with 401.
    pub fn needs_key(self) -> bool {
        self != Access::Anyone
    }
}

/// One route.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// The HTTP method.
    pub method: &'static str,
    /// The path, with `{name}` for a path parameter.
    pub path: &'static str,
    /// Where it is served.
    pub surface: Surface,
    /// On which nodes.
    pub mounted: Mounted,
    /// Who may call it.
    pub access: Access,
    /// What it is for.
    pub what: &'static str,
}

const fn route(
    method: &'static str,
    path: &'static str,
    surface: Surface,
    mounted: Mounted,
    access: Access,
    what: &'static str,
) -> Route {
    Route {
        method,
        path,
        surface,
        mounted,
        access,
        what,
    }
}

use Access::{Admin, AdminRead, Anyone, Connections, Publish};
use Mounted::{DevStat, Every, With, WithMetrics};
use Surface::{Admin as AdminSurface, Public, ServerApi, SocketIo};

/// Every HTTP route of a node. `gru dev` serves the public, admin and server API surfaces on
/// one loopback address (and answers only to a loopback `Host`); a cluster node serves each
/// on its own listener, or not at all when its `listen` field is left out.
#[rustfmt::skip]
pub const ROUTES: &[Route] = &[
    route("GET", "/healthz", Public, Every, Anyone, "health check (load balancers)"),
    route("GET", "/ticket", Public, With(Role::Ticket), Anyone, "Gru's ticket: a spear for a user (token1 in the query)"),
    route("GET", "/api/v1/ticket", Public, With(Role::Ticket), Anyone, "the same, JSON errors"),
    route("GET", "/socket.io/", SocketIo, With(Role::Spear), Anyone, "socket.io handshake and long-polling (a token authenticates)"),
    route("POST", "/socket.io/", SocketIo, With(Role::Spear), Anyone, "socket.io long-polling writes"),
    route("GET", "/login", AdminSurface, Every, Anyone, "the dashboard's login page"),
    route("POST", "/login", AdminSurface, Every, Anyone, "login form: an admin key for a session cookie (5/s per address)"),
    route("POST", "/logout", AdminSurface, Every, Anyone, "ends the session"),
    route("GET", "/api/v1/cluster", AdminSurface, Every, AdminRead, "cluster view: members, their internal addresses, spears"),
    route("GET", "/api/v1/idgen", AdminSurface, Every, AdminRead, "how this node issues ids"),
    route("GET", "/api/v1/ids", AdminSurface, Every, Admin, "ids for business systems (idgen.api_ids_per_sec per key)"),
    route("GET", "/api/v1/relay", AdminSurface, Every, AdminRead, "a spear's relay counters"),
    route("GET", "/api/v1/spear", AdminSurface, Every, AdminRead, "a spear's connections and counters"),
    route("POST", "/api/v1/spear/drain", AdminSurface, Every, Admin, "start, stop or follow a spear's drain (`gru drain`)"),
    route("GET", "/api/v1/meta", AdminSurface, Every, AdminRead, "the replicated metadata store (`gru meta get`)"),
    route("PUT", "/api/v1/meta/{key}", AdminSurface, Every, Admin, "set a metadata key (`gru meta put`)"),
    route("POST", "/api/v1/cluster/cores", AdminSurface, Every, Admin, "add a core node to Raft (`gru cluster add-core`)"),
    route("DELETE", "/api/v1/cluster/nodes/{id}", AdminSurface, Every, Admin, "remove a node (`gru cluster remove`)"),
    route("GET", "/api/v1/admin/users/{id}/connections", AdminSurface, Every, AdminRead, "a user's connections on every spear"),
    route("POST", "/api/v1/admin/users/{id}/disconnect", AdminSurface, Every, Admin, "disconnect a user everywhere"),
    route("GET", "/metrics", AdminSurface, WithMetrics, AdminRead, "Prometheus exposition"),
    route("GET", "/", AdminSurface, With(Role::Stat), AdminRead, "the dashboard"),
    route("GET", "/dashboard", AdminSurface, With(Role::Stat), AdminRead, "the dashboard"),
    route("GET", "/playground", AdminSurface, With(Role::Stat), AdminRead, "the playground"),
    route("GET", "/assets/{file}", AdminSurface, With(Role::Stat), AdminRead, "the pages' scripts and styles"),
    route("GET", "/api/v1/monitor/snapshot", AdminSurface, With(Role::Stat), AdminRead, "the dashboard's data"),
    route("GET", "/api/v1/monitor/stream", AdminSurface, With(Role::Stat), AdminRead, "the dashboard's live feed (SSE)"),
    route("POST", "/api/v1/dev/token", AdminSurface, DevStat, Admin, "the playground's tokens (only with `gru dev`'s secrets)"),
    route("GET", "/getGroupStat", AdminSurface, With(Role::Stat), AdminRead, "Gru's presence of a group"),
    route("GET", "/api/v1/groups/{id}/online", AdminSurface, With(Role::Stat), AdminRead, "who is online in a group"),
    route("GET", "/api/v1/nodes", AdminSurface, With(Role::Stat), AdminRead, "spears with their online counts"),
    route("GET", "/api/v1/nodes/{id}/groups", AdminSurface, With(Role::Stat), AdminRead, "a spear's groups"),
    route("GET", "/api/v1/users/{id}", AdminSurface, With(Role::Stat), AdminRead, "a user's presence"),
    route("POST", "/api/v1/publish", ServerApi, With(Role::Spear), Publish, "publish a message"),
    route("POST", "/api/v1/publish/batch", ServerApi, With(Role::Spear), Publish, "publish messages in order"),
    route("GET", "/api/v1/users/{id}/connections", ServerApi, With(Role::Spear), Connections, "a user's connections"),
    route("POST", "/api/v1/users/{id}/disconnect", ServerApi, With(Role::Spear), Connections, "disconnect a user"),
];

/// What decides which routes a node mounts, besides its roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeTraits {
    /// `[metrics] enabled`.
    pub metrics: bool,
    /// It runs with `gru dev`'s public secrets.
    pub dev_secrets: bool,
}

/// Whether a node with `roles` and `traits` serves `route` (on its surface's listener, when
/// it has one).
pub fn serves(route: &Route, roles: &[Role], traits: NodeTraits) -> bool {
    match route.mounted {
        Mounted::Every => route.surface != Surface::ServerApi || roles.contains(&Role::Spear),
        Mounted::With(role) => roles.contains(&role),
        Mounted::WithMetrics => traits.metrics,
        Mounted::DevStat => traits.dev_secrets && roles.contains(&Role::Stat),
    }
}

/// The table as `docs/security.md` shows it.
pub fn markdown() -> String {
    let mut out = String::from(
        "| Method | Path | Surface (listener) | Served by | Who may call | What |\n\
         |---|---|---|---|---|---|\n",
    );
    for r in ROUTES {
        let on = match r.mounted {
            Mounted::Every => "every node".to_string(),
            Mounted::With(role) => format!("{role} nodes"),
            Mounted::WithMetrics => "every node, with `[metrics] enabled`".to_string(),
            Mounted::DevStat => "`gru dev` only".to_string(),
        };
        out.push_str(&format!(
            "| {} | `{}` | {} (`{}`) | {on} | {} | {} |\n",
            r.method,
            r.path,
            r.surface.name(),
            r.surface.listen_field(),
            r.access.name(),
            r.what
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_security_md_shows_this_table() {
        let doc = include_str!("../../../docs/security.md");
        let table = markdown();
        assert!(
            doc.contains(&table),
            "docs/security.md must contain the route table exactly as surfaces::markdown() \
             renders it:\n{table}"
        );
    }

    #[test]
    fn each_method_and_path_is_on_one_surface() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} {} twice",
                    a.method,
                    a.path
                );
            }
        }
    }

    #[test]
    fn the_public_listeners_hold_no_route_that_needs_a_key() {
        for r in ROUTES {
            if matches!(r.surface, Surface::Public | Surface::SocketIo) {
                assert_eq!(r.access, Access::Anyone, "{} {}", r.method, r.path);
            }
        }
    }
}
