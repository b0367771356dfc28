//! `surfaces`: the nodes of the shipped `cluster.toml` (their role combinations: three core
//! nodes, two spears, a ticket and stat node), each surface on a listener of its own. Every
//! route of gru's one table (`gru::api::http::surfaces::ROUTES`) is asked on every listener
//! of every node: where the table puts it, it answers (401 without a key when it needs one,
//! and with the key something other than the listener's "no such route"); everywhere else it
//! is the listener's 404.

use std::collections::BTreeMap;

use gru::api::http::surfaces::{serves, Access, Mounted, NodeTraits, Surface, ROUTES};
use gru::config::{ClusterConfig, Role};
use gru_testkit::{ClusterOptions, NodeSpec, TestCluster, ADMIN_KEY, API_KEY};
use reqwest::{Method, StatusCode};

/// What the listeners' own 404 says (their fallback), as opposed to a handler's 404.
const NO_ROUTE: &str = "this listener serves the";

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Core => "core",
        Role::Spear => "spear",
        Role::Ticket => "ticket",
        Role::Stat => "stat",
    }
}

/// `path` with its parameters filled in: ids no node or user has, a key, a real asset.
fn concrete(path: &str) -> String {
    path.replace("{id}", "999")
        .replace("{key}", "surfaces-test")
        .replace("{file}", "monitor.css")
}

/// One answer: status and, for a 404, whether it is the listener's own.
struct Answer {
    status: StatusCode,
    no_route: bool,
}

async fn ask(
    http: &reqwest::Client,
    method: &str,
    url: &str,
    bearer: Option<&str>,
) -> Result<Answer, String> {
    let method = Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
    let mut request = http
        .request(method, url)
        .header("accept", "application/json");
    if let Some(key) = bearer {
        request = request.bearer_auth(key);
    }
    let resp = request.send().await.map_err(|e| format!("{url}: {e}"))?;
    let status = resp.status();
    // Never read a body that may not end (the monitor's SSE stream): only 404s are read.
    let no_route = status == StatusCode::NOT_FOUND
        && resp
            .text()
            .await
            .map_err(|e| e.to_string())?
            .contains(NO_ROUTE);
    Ok(Answer { status, no_route })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn surfaces() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/cluster.toml");
    let config =
        ClusterConfig::load(std::path::Path::new(example)).expect("the shipped cluster.toml loads");
    let specs: Vec<NodeSpec> = config
        .nodes
        .iter()
        .map(|n| {
            let roles: Vec<&'static str> = n.roles.iter().map(|r| role_name(*r)).collect();
            NodeSpec::with_roles(n.id, &roles)
        })
        .collect();
    let roles: BTreeMap<u64, Vec<Role>> = config
        .nodes
        .iter()
        .map(|n| (n.id, n.roles.clone()))
        .collect();
    let combos: std::collections::BTreeSet<&Vec<Role>> = roles.values().collect();
    assert!(
        combos.len() >= 3,
        "the example has several role combinations"
    );
    let options = ClusterOptions {
        separate_surfaces: true,
        ..ClusterOptions::default()
    };
    let cluster = TestCluster::builder()
        .specs(&specs)
        .options(options)
        .launch()
        .await;
    let written = ClusterConfig::load(cluster.config_path()).expect("the test's config loads");
    let traits = NodeTraits {
        metrics: written.metrics.enabled,
        dev_secrets: written.uses_dev_secrets(),
    };
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("client");

    let mut failures = Vec::new();
    let mut checked = 0usize;
    for (&id, node_roles) in &roles {
        let mut listeners = vec![
            (Surface::Public, cluster.http_addr(id).to_string()),
            (Surface::Admin, cluster.admin_addr(id).to_string()),
        ];
        if node_roles.contains(&Role::Spear) {
            listeners.push((Surface::SocketIo, cluster.sio_addr(id)));
            listeners.push((Surface::ServerApi, cluster.server_api_addr(id).to_string()));
        }
        for (surface, addr) in &listeners {
            for route in ROUTES {
                let url = format!("http://{addr}{}", concrete(route.path));
                let what = format!(
                    "node {id} ({node_roles:?}), {} listener: {} {}",
                    surface.name(),
                    route.method,
                    route.path
                );
                let here = route.surface == *surface && serves(route, node_roles, traits);
                let bare = match ask(&http, route.method, &url, None).await {
                    Ok(a) => a,
                    Err(e) => {
                        failures.push(format!("{what}: {e}"));
                        continue;
                    }
                };
                checked += 1;
                if !here {
                    if !bare.no_route {
                        failures.push(format!(
                            "{what}: answered {} where the listener's 404 was due",
                            bare.status
                        ));
                    }
                    continue;
                }
                if route.access.needs_key() {
                    if bare.status != StatusCode::UNAUTHORIZED {
                        failures.push(format!("{what}: {} without a key, not 401", bare.status));
                    }
                    let key = match route.access {
                        Access::Publish | Access::Connections => API_KEY,
                        _ => ADMIN_KEY,
                    };
                    match ask(&http, route.method, &url, Some(key)).await {
                        Ok(a) if a.no_route || a.status == StatusCode::UNAUTHORIZED => {
                            failures.push(format!("{what}: {} with the key", a.status))
                        }
                        Ok(_) => {}
                        Err(e) => failures.push(format!("{what}: {e}")),
                    }
                } else if bare.no_route {
                    failures.push(format!("{what}: the listener's 404 on its own surface"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} probes wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Every route was asked where it lives on at least one node (but `gru dev`'s own, which
    // `dev_mode` asks).
    for route in ROUTES.iter().filter(|r| r.mounted != Mounted::DevStat) {
        assert!(
            roles.values().any(|r| serves(route, r, traits)),
            "no node of the example serves {} {}",
            route.method,
            route.path
        );
    }
}
