//! The operator's commands (`gru status`, `gru drain`, `gru meta`, `gru cluster`): HTTP
//! requests to a node's admin surface (`listen.admin`) with an admin key. None of them speaks
//! the internal gRPC port, which takes only members with a cluster certificate.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use gru::config::{ClusterConfig, ListenAddrs, NodeId, Role};
use gru::raft::{ClusterView, Member, RaftRole};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Where an admin command knocks, and with which key. Global: `gru meta get K --addr A` and
/// `gru meta --addr A get K` alike. Their ids are their own: a global arg shares its id with
/// every subcommand below it, where `meta put`'s positional `key` would take its value.
#[derive(clap::Args)]
pub(crate) struct DoorArgs {
    /// The admin surface (`listen.admin`) of a node, `host:port` or `http://host:port`
    /// (default: with `--config` its first core node's that has one, else `gru dev`'s).
    #[arg(id = "door_addr", long = "addr", value_name = "ADDR", global = true)]
    addr: Option<String>,
    /// The admin key (`[[auth.admin_keys]]`; default: with `--config` its first key, else
    /// `gru dev`'s).
    #[arg(
        id = "door_key",
        long = "key",
        value_name = "KEY",
        global = true,
        env = "GRU_ADMIN_KEY",
        hide_env_values = true
    )]
    key: Option<String>,
    /// A cluster config to take the address and the key from (default: `GRU_CONFIG`).
    #[arg(
        id = "door_config",
        long = "config",
        value_name = "FILE",
        global = true
    )]
    config: Option<PathBuf>,
}

impl DoorArgs {
    /// With `config` (given before the subcommand, or `GRU_CONFIG`) when none was given here.
    pub(crate) fn or_config(mut self, config: Option<PathBuf>) -> Self {
        self.config = self.config.or(config);
        self
    }
}

/// A node's admin surface and the key to present there.
pub(crate) struct AdminDoor {
    /// `http://host:port`.
    base: String,
    key: String,
    http: reqwest::Client,
    config: Option<ClusterConfig>,
}

/// The URL of an admin surface given as `host:port` or `http://host:port` (a trailing `/`
/// allowed): `http://host:port`.
fn base_url(addr: &str) -> Result<String> {
    let host_port = match addr.split_once("://") {
        None => addr,
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
            bail!("{addr}: the admin commands speak plain HTTP only, not https")
        }
        Some(_) => bail!("{addr}: give host:port or http://host:port"),
    };
    let host_port = host_port.strip_suffix('/').unwrap_or(host_port);
    if host_port.is_empty() || host_port.contains('/') {
        bail!("{addr}: give host:port or http://host:port, without a path");
    }
    Ok(format!("http://{host_port}"))
}

impl AdminDoor {
    /// From what was given: an address and a key, or a config to take them from, else `gru
    /// dev`'s. `timeout` bounds each request.
    pub(crate) fn resolve(args: DoorArgs, timeout: Duration) -> Result<Self> {
        let config = args
            .config
            .as_deref()
            .map(ClusterConfig::load)
            .transpose()?;
        let addr = match (args.addr, &config) {
            (Some(addr), _) => addr,
            (None, Some(config)) => config
                .core_nodes()
                .find_map(|n| n.advertised_admin())
                .context("no core node of the config has listen.admin: give --addr")?,
            (None, None) => ListenAddrs::dev_default().http.to_string(),
        };
        let key = match (args.key, &config) {
            (Some(key), _) => key,
            (None, Some(config)) => config
                .auth
                .admin_keys
                .first()
                .map(|k| k.secret.clone())
                .context("the config has no [[auth.admin_keys]]: give --key or GRU_ADMIN_KEY")?,
            (None, None) => gru::config::DEV_ADMIN_KEY.to_string(),
        };
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            base: base_url(&addr)?,
            key,
            http,
            config,
        })
    }

    /// The same key at another node's admin surface.
    fn at(&self, addr: &str) -> Result<Self> {
        Ok(Self {
            base: base_url(addr)?,
            key: self.key.clone(),
            http: self.http.clone(),
            config: None,
        })
    }

    /// The config the door was taken from, or an error saying it is needed for `what`.
    fn config(&self, what: &str) -> Result<&ClusterConfig> {
        self.config
            .as_ref()
            .with_context(|| format!("{what} needs --config (the cluster's config file)"))
    }

    /// `method path` with `body`; the JSON answer, or an error that says what went wrong.
    async fn call(&self, method: Method, path: &str, body: Option<Body>) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.key);
        match body {
            Some(Body::Json(v)) => request = request.json(&v),
            Some(Body::Text(t)) => request = request.body(t),
            None => {}
        }
        let resp = request
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let code = resp.status();
        let text = resp.text().await.context("reading the reply")?;
        if code == StatusCode::UNAUTHORIZED || code == StatusCode::FORBIDDEN {
            bail!(
                "{method} {url} refused the admin key ({code}): give --key, GRU_ADMIN_KEY or \
                 --config; {}",
                message(&text)
            );
        }
        if !code.is_success() {
            bail!("{method} {url} answered {code}: {}", message(&text));
        }
        serde_json::from_str(&text).with_context(|| format!("{url} did not answer JSON: {text}"))
    }
}

/// A request body.
enum Body {
    Json(Value),
    Text(String),
}

/// The message of an API error answer, else the answer itself.
fn message(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| text.to_string())
}

/// `gru status`.
pub(crate) async fn status(door: &AdminDoor, json: bool, linearizable: bool) -> Result<()> {
    let consistency = if linearizable {
        "linearizable"
    } else {
        "local"
    };
    let answer = door
        .call(
            Method::GET,
            &format!("/api/v1/cluster?consistency={consistency}"),
            None,
        )
        .await?;
    let view = cluster_view(answer)?;
    // Each spear's own counts, asked of it at once (a spear that does not answer shows why).
    let spears = futures_util::future::join_all(view.spears.iter().map(|s| async move {
        let Some(admin) = &s.admin else {
            return (
                s.id,
                Err("it serves no admin surface (listen.admin)".to_string()),
            );
        };
        let answer = match door.at(admin) {
            Ok(spear) => spear.call(Method::GET, "/api/v1/spear", None).await,
            Err(e) => Err(e),
        };
        (s.id, answer.map_err(|e| e.to_string()))
    }))
    .await;
    if json {
        let spears: Vec<Value> = spears
            .into_iter()
            .map(|(id, answer)| match answer {
                Ok(a) => a,
                Err(e) => json!({"node_id": id, "error": e}),
            })
            .collect();
        let out = json!({"cluster": view, "spears": spears});
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_view(&view, &spears);
    }
    if view.leader_id.is_none() {
        bail!(
            "the cluster has no leader (as node {} sees it)",
            view.served_by
        );
    }
    Ok(())
}

/// What `gru cluster` does.
#[derive(clap::Subcommand)]
pub(crate) enum ClusterAction {
    /// Add a core node of the config: learner, catch up, voter. Returns once it votes.
    AddCore {
        /// The node id (must be in the config, with the core role).
        #[arg(long)]
        node: NodeId,
    },
    /// Remove a node from the Raft membership and the member table.
    Remove {
        /// The node id.
        #[arg(long)]
        node: NodeId,
    },
}

/// `gru cluster`.
pub(crate) async fn cluster(door: &AdminDoor, action: ClusterAction) -> Result<()> {
    match action {
        ClusterAction::AddCore { node } => {
            let config = door.config("add-core")?;
            let n = config.node(node)?;
            if !n.is_core() {
                bail!("node {node} does not have the core role in the config");
            }
            eprintln!("adding node {node}: learner, catching up, then voter …");
            let member = serde_json::to_value(Member::from_config(n))?;
            door.call(
                Method::POST,
                "/api/v1/cluster/cores",
                Some(Body::Json(member)),
            )
            .await?;
            println!("node {node} is a voter");
        }
        ClusterAction::Remove { node } => {
            door.call(
                Method::DELETE,
                &format!("/api/v1/cluster/nodes/{node}"),
                None,
            )
            .await?;
            println!("node {node} removed");
        }
    }
    Ok(())
}

/// What `gru meta` does.
#[derive(clap::Subcommand)]
pub(crate) enum MetaAction {
    /// Set a key.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Print one key, or every entry.
    Get {
        /// The key; all entries when omitted.
        key: Option<String>,
        /// Read through the leader after confirming leadership.
        #[arg(long)]
        linearizable: bool,
    },
}

/// `gru meta`.
pub(crate) async fn meta(door: &AdminDoor, action: MetaAction) -> Result<()> {
    match action {
        MetaAction::Put { key, value } => {
            let path = format!(
                "/api/v1/meta/{}",
                percent_encoding_path(&key).context("the key")?
            );
            door.call(Method::PUT, &path, Some(Body::Text(value)))
                .await?;
            println!("ok");
        }
        MetaAction::Get { key, linearizable } => {
            let mut query = form_urlencoded::Serializer::new(String::new());
            if let Some(key) = &key {
                query.append_pair("key", key);
            }
            if linearizable {
                query.append_pair("consistency", "linearizable");
            }
            let answer = door
                .call(
                    Method::GET,
                    &format!("/api/v1/meta?{}", query.finish()),
                    None,
                )
                .await?;
            let entries = answer["entries"].as_object().cloned().unwrap_or_default();
            if entries.is_empty() && key.is_some() {
                bail!("no such key");
            }
            for (k, v) in entries {
                println!("{k}\t{}", v.as_str().unwrap_or_default());
            }
        }
    }
    Ok(())
}

/// A key as one path segment.
fn percent_encoding_path(key: &str) -> Result<String> {
    if key.is_empty() {
        bail!("must not be empty");
    }
    // form_urlencoded writes a space as `+`, which a path keeps as `+`: spell it `%20`.
    Ok(form_urlencoded::byte_serialize(key.as_bytes())
        .collect::<String>()
        .replace('+', "%20"))
}

/// `gru drain`'s arguments.
#[derive(clap::Args)]
pub(crate) struct DrainArgs {
    #[command(flatten)]
    door: DoorArgs,
    /// The spear's node id (a node of the config with the spear role).
    #[arg(long)]
    node: NodeId,
    /// Connections told to leave per wave.
    #[arg(long, default_value_t = 100)]
    wave: u32,
    /// Time between waves, in ms (at most 60000).
    #[arg(long, default_value_t = 1000)]
    every_ms: u64,
    /// Take users again instead (clients already moved stay where they are).
    #[arg(long, conflicts_with_all = ["no_wait"])]
    stop: bool,
    /// Start the drain and return at once instead of showing progress until it is empty.
    #[arg(long)]
    no_wait: bool,
    /// Stop waiting after this many seconds (exit status 1); the drain itself goes on.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
}

impl DrainArgs {
    /// With `config` when none was given here (`DoorArgs::or_config`).
    pub(crate) fn or_config(mut self, config: Option<PathBuf>) -> Self {
        self.door = self.door.or_config(config);
        self
    }
}

/// How often `gru drain` reports progress.
const DRAIN_POLL: Duration = Duration::from_millis(500);

/// The admin surface of spear `id`: as the config names it, else as the spear registered it
/// (what the door's node sees).
async fn spear_admin(door: &AdminDoor, id: NodeId) -> Result<String> {
    let no_admin = || format!("spear {id} serves no admin surface (listen.admin)");
    if let Some(config) = &door.config {
        let node = config.node(id)?;
        if !node.has_role(Role::Spear) {
            bail!("node {id} does not have the spear role in the config");
        }
        return node.advertised_admin().with_context(no_admin);
    }
    let view = cluster_view(door.call(Method::GET, "/api/v1/cluster", None).await?)?;
    let spear = view.spears.iter().find(|s| s.id == id).with_context(|| {
        format!(
            "node {id} is not a registered spear (as node {} sees it)",
            view.served_by
        )
    })?;
    spear.admin.clone().with_context(no_admin)
}

/// `GET /api/v1/cluster`'s answer.
fn cluster_view(answer: Value) -> Result<ClusterView> {
    serde_json::from_value(answer).context("the reply is not a cluster view")
}

/// `gru drain`: the spear's own admin surface is asked (the config names it, else the spear
/// registry).
pub(crate) async fn drain(args: DrainArgs) -> Result<()> {
    let id = args.node;
    let door = AdminDoor::resolve(args.door, Duration::from_secs(10))?;
    let addr = spear_admin(&door, id).await?;
    let spear = door.at(&addr)?;
    let (spear, addr) = (&spear, addr.as_str());
    let ask = move |action: &str| {
        let body = json!({"action": action, "wave": args.wave, "every_ms": args.every_ms});
        async move {
            spear
                .call(Method::POST, "/api/v1/spear/drain", Some(Body::Json(body)))
                .await
                .with_context(|| format!("spear {id} at {addr}"))
        }
    };
    let count = |a: &Value, k: &str| a[k].as_u64().unwrap_or(0);
    if args.stop {
        let reply = ask("stop").await?;
        println!(
            "spear {id} takes users again ({} connections)",
            count(&reply, "connections")
        );
        return Ok(());
    }
    let first = ask("start").await?;
    println!(
        "draining spear {id}: ticket places no users on it; {} connections, {} per wave every {} ms",
        count(&first, "connections"),
        args.wave,
        args.every_ms
    );
    if args.no_wait {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout_secs);
    let mut last = None;
    loop {
        let reply = ask("status").await?;
        if reply["draining"] != true {
            bail!("the drain of spear {id} was stopped");
        }
        let left = count(&reply, "connections");
        if last != Some(left) {
            println!(
                "spear {id}: {left} connections left, {} told to leave",
                count(&reply, "moved")
            );
            last = Some(left);
        }
        if left == 0 {
            println!(
                "spear {id} is drained; it takes no users until it restarts or `gru drain --stop`"
            );
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "spear {id} still has {left} connections after {} s (the drain goes on)",
                args.timeout_secs
            );
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
}

/// A spear's own answer to `GET /api/v1/spear`, or why there is none.
type SpearAnswer = (NodeId, Result<serde_json::Value, String>);

/// A spear's state as `/api/v1/spear` answered it: draining, else its standing.
fn spear_state(answer: &serde_json::Value) -> String {
    if answer["draining"] == true {
        return "draining".into();
    }
    answer["standing"]["state"]
        .as_str()
        .unwrap_or("serving")
        .to_string()
}

fn print_view(view: &ClusterView, spears: &[SpearAnswer]) {
    let leader = view
        .leader_id
        .map_or("none".to_string(), |id| id.to_string());
    // The serving node says what is wrong (`problem`); the banner puts it first, loud.
    if let Some(problem) = &view.problem {
        println!("!! {problem}");
    }
    println!(
        "served by node {}; leader {leader}; term {}",
        view.served_by, view.term
    );
    // Lag: entries the leader has that a member has not applied yet.
    let leader_last = view
        .nodes
        .iter()
        .find(|n| Some(n.id) == view.leader_id)
        .and_then(|n| n.status.as_ref())
        .map(|s| s.last_log_index);
    println!(
        "  {:<5} {:<22} {:<8} {:<10} {:>5} {:>9} {:>9} {:>5}  {:<22} HTTP",
        "ID", "ROLES", "RAFT", "STATE", "TERM", "LAST_LOG", "APPLIED", "LAG", "GRPC"
    );
    for n in &view.nodes {
        let roles = n
            .roles
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let raft = match n.raft {
            RaftRole::Voter => "voter",
            RaftRole::Learner => "learner",
            RaftRole::None => "-",
        };
        let dash = || "-".to_string();
        let (state, term, last, applied, lag) = match &n.status {
            Some(s) => (
                s.server_state.clone(),
                s.term.to_string(),
                s.last_log_index.to_string(),
                s.applied_index.to_string(),
                leader_last.map_or_else(dash, |l| l.saturating_sub(s.applied_index).to_string()),
            ),
            None if n.unreachable.is_some() => ("DOWN".into(), dash(), dash(), dash(), dash()),
            None => (dash(), dash(), dash(), dash(), dash()),
        };
        let mark = if Some(n.id) == view.leader_id {
            "*"
        } else {
            " "
        };
        println!(
            "{mark} {:<5} {:<22} {:<8} {:<10} {:>5} {:>9} {:>9} {:>5}  {:<22} {}",
            n.id, roles, raft, state, term, last, applied, lag, n.grpc, n.http
        );
    }
    if view.spears.is_empty() {
        println!("spears: none registered");
        return;
    }
    println!("spears:");
    println!(
        "  {:<5} {:<22} {:>11} {:>7} {:>7} {:<9} {:>9}",
        "ID", "SIO", "CONNECTIONS", "USERS", "GROUPS", "STATE", "LEASE_MS"
    );
    let now = gru::clock::unix_ms();
    let mut reasons = Vec::new();
    for s in &view.spears {
        let left = match s.expires_at_ms.saturating_sub(now) {
            0 => "expired".to_string(),
            ms => ms.to_string(),
        };
        let answer = spears.iter().find(|(id, _)| *id == s.id).map(|(_, a)| a);
        let count =
            |a: &serde_json::Value, k: &str| a[k].as_u64().map_or("?".into(), |n| n.to_string());
        let (conns, users, groups, state) = match answer {
            Some(Ok(a)) => (
                count(a, "connections"),
                count(a, "users"),
                count(a, "groups"),
                spear_state(a),
            ),
            Some(Err(e)) => (
                "-".into(),
                "-".into(),
                "-".into(),
                format!("unreachable: {e}"),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        if let Some(Ok(a)) = answer {
            if let (Some(st @ ("degraded" | "fenced")), Some(why)) = (
                a["standing"]["state"].as_str(),
                a["standing"]["reason"].as_str(),
            ) {
                reasons.push(format!("  spear {} is {st}: {why}", s.id));
            }
        }
        println!(
            "  {:<5} {:<22} {:>11} {:>7} {:>7} {:<9} {:>9}",
            s.id,
            s.sio.as_deref().unwrap_or("-"),
            conns,
            users,
            groups,
            state,
            left
        );
    }
    for reason in reasons {
        println!("{reason}");
    }
}

#[cfg(test)]
mod tests {
    use super::{base_url, MetaAction};
    use crate::cli::{Cli, Command};
    use clap::Parser;

    /// The door's options before or after `meta put`, whose positional is also called `key`.
    #[test]
    fn door_options_stand_before_or_after_the_action() {
        for args in [
            &[
                "meta", "put", "colour", "blue", "--addr", "h:1", "--key", "k",
            ][..],
            &[
                "meta", "--addr", "h:1", "--key", "k", "put", "colour", "blue",
            ][..],
            &[
                "meta", "--addr", "h:1", "put", "--key", "k", "colour", "blue",
            ][..],
        ] {
            let cli = Cli::try_parse_from(std::iter::once("gru").chain(args.iter().copied()))
                .unwrap_or_else(|e| panic!("{args:?}: {e}"));
            let Command::Meta {
                door,
                action: MetaAction::Put { key, value },
            } = cli.command
            else {
                panic!("{args:?}: not meta put");
            };
            assert_eq!(
                (door.addr.as_deref(), door.key.as_deref(), &*key, &*value),
                (Some("h:1"), Some("k"), "colour", "blue"),
                "{args:?}"
            );
        }
    }

    #[test]
    fn an_admin_address_is_host_port_or_an_http_url() {
        for given in [
            "127.0.0.1:8080",
            "127.0.0.1:8080/",
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/",
            "HTTP://127.0.0.1:8080",
        ] {
            assert_eq!(
                base_url(given).expect(given),
                "http://127.0.0.1:8080",
                "{given}"
            );
        }
        let refused = |given: &str| base_url(given).unwrap_err().to_string();
        assert!(refused("https://127.0.0.1:8080").contains("plain HTTP"));
        assert!(refused("ftp://127.0.0.1:8080").contains("host:port"));
        assert!(refused("http://127.0.0.1:8080/api").contains("without a path"));
        assert!(refused("http://").contains("host:port"));
    }
}
