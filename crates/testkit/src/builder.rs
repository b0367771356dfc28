//! [`ClusterBuilder`]: a test cluster described node by node, so that a test says which nodes
//! have which roles and what differs from the harness's defaults, and nothing else.
//!
//! ```no_run
//! # async fn example() {
//! use gru_testkit::TestCluster;
//!
//! // Three cores, ticket on each and stat on node 1, and two spear-only nodes: started, with a
//! // leader and both spears registered.
//! let cluster = TestCluster::builder()
//!     .nodes(&[1, 2, 3], &["core", "ticket"])
//!     .node(1, &["core", "ticket", "stat"])
//!     .spears(&[4, 5])
//!     .env("GRU_SPEAR__MAX_MSGS_PER_SEC", "1000")
//!     .launch()
//!     .await;
//! # }
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use crate::{ClusterOptions, GruBin, NodeSpec, TestCluster};

/// How long a launched cluster may take to elect a leader, and its spears to register.
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// A cluster to write out and start: see the [module](self) documentation.
#[must_use = "a builder does nothing until `build` or `launch`"]
pub struct ClusterBuilder {
    gru: Option<GruBin>,
    nodes: BTreeMap<u64, NodeSpec>,
    options: ClusterOptions,
}

impl TestCluster {
    /// A cluster to describe node by node, running [`crate::gru`] unless
    /// [`ClusterBuilder::gru`] says otherwise.
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder {
            gru: None,
            nodes: BTreeMap::new(),
            options: ClusterOptions::default(),
        }
    }

    /// Waits (30 s each) until the core nodes agree on a leader and every spear of the config
    /// is registered, as the first core sees it: the leader and its term.
    pub async fn wait_ready(&self) -> (u64, u64) {
        let cores = self.core_ids();
        let (leader, term) = self.wait_leader(&cores, READY_DEADLINE).await;
        let spears = self.spear_ids().len();
        if spears > 0 {
            self.wait_spears(cores[0], spears).await;
        }
        (leader, term)
    }
}

impl ClusterBuilder {
    /// The nodes run `gru` instead of [`crate::gru`].
    pub fn gru(mut self, gru: GruBin) -> Self {
        self.gru = Some(gru);
        self
    }

    /// Node `id` with `roles`, an initial voter if it is a core; a node given again is
    /// replaced.
    pub fn node(mut self, id: u64, roles: &[&'static str]) -> Self {
        self.nodes.insert(id, NodeSpec::with_roles(id, roles));
        self
    }

    /// Nodes `ids`, each with `roles`.
    pub fn nodes(self, ids: &[u64], roles: &[&'static str]) -> Self {
        ids.iter().fold(self, |b, id| b.node(*id, roles))
    }

    /// Core-only nodes `ids`.
    pub fn cores(self, ids: &[u64]) -> Self {
        self.nodes(ids, &["core"])
    }

    /// Spear-only nodes `ids`.
    pub fn spears(self, ids: &[u64]) -> Self {
        self.nodes(ids, &["spear"])
    }

    /// Every node of `specs` (a config read from elsewhere, e.g. the example `cluster.toml`).
    pub fn specs(self, specs: &[NodeSpec]) -> Self {
        specs.iter().fold(self, |mut b, spec| {
            b.nodes.insert(spec.id, spec.clone());
            b
        })
    }

    /// The cluster's options (replacing what [`Self::env`] and [`Self::extra_toml`] set
    /// before).
    pub fn options(mut self, options: ClusterOptions) -> Self {
        self.options = options;
        self
    }

    /// `key=value` in every node's environment.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.options.env.push((key.to_string(), value.to_string()));
        self
    }

    /// TOML added to the generated config's cluster-wide sections (`[idgen]`, …).
    pub fn extra_toml(mut self, toml: &str) -> Self {
        self.options.extra_toml.push_str(toml);
        self
    }

    /// The cluster, its config written, nothing started. With proxies it must be built inside
    /// a tokio runtime.
    pub fn build(self) -> TestCluster {
        assert!(!self.nodes.is_empty(), "a test cluster needs a node");
        let specs: Vec<NodeSpec> = self.nodes.into_values().collect();
        let gru = self.gru.unwrap_or_else(crate::gru);
        TestCluster::with(gru, &specs, self.options)
    }

    /// The cluster, every node started, its leader elected and every spear registered
    /// ([`TestCluster::wait_ready`]).
    pub async fn launch(self) -> TestCluster {
        let mut cluster = self.build();
        cluster.start_all();
        cluster.wait_ready().await;
        cluster
    }
}
