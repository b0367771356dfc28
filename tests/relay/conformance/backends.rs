//! One harness per relay backend, and the test that runs the suite against it: `local`, its
//! spears in this process on one in-memory bus; `redis` against a real `redis-server`;
//! `redis_cluster` against a real 3-master Redis Cluster (sharded pub/sub); `rocketmq` against a
//! real name server and broker (and a `redis-server` for its routes). Each spear gets its own
//! links, as a node does.

use std::sync::Arc;
use std::time::Duration;

use gru::config::{NodeId, RedisSection};
use gru::net::redis::RedisLink;
use gru::services::relay::{LocalBus, LocalRelay, RedisParts, RedisRelay};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::spear::ToChannel;
use super::{run_suite, Caps, Harness, TestSpear};
use gru_testkit::redis::{RedisCluster, RedisServer};
use gru_testkit::wait_for;

/// `redis.settle_ms`'s default: the suite checks the recovery a deployment gets.
const SETTLE: Duration = Duration::from_millis(2000);

/// `relay.kind = "local"` with several spears in this process, over an in-memory bus that the
/// outage cuts and restores.
#[derive(Default)]
struct Local {
    bus: LocalBus,
}

impl Harness for Local {
    fn name(&self) -> &'static str {
        "local"
    }
    fn caps(&self) -> Caps {
        // The bus hands a message to every spear subscribed to its channel, the publisher too.
        Caps { hears_echoes: true }
    }
    fn kind(&self) -> &'static str {
        "local"
    }
    async fn spear(&mut self, id: NodeId) -> TestSpear {
        let cancel = CancellationToken::new();
        let (sink, inbound) = mpsc::unbounded_channel();
        let (relay, tasks) =
            LocalRelay::on_bus(&self.bus, id, ToChannel(sink.clone()), cancel.clone());
        TestSpear::new(id, relay, (sink, inbound), cancel, tasks)
    }
    fn kill(&mut self) {
        self.bus.cut();
    }
    fn restart(&mut self) {
        self.bus.restore();
    }
}

/// Where the Redis relay's spears connect.
enum Target {
    Server(RedisServer),
    Cluster(RedisCluster),
}

/// `relay.kind = "redis"`, standalone or Cluster.
struct Redis {
    target: Target,
}

impl Redis {
    fn section(&self) -> RedisSection {
        let (url, cluster) = match &self.target {
            Target::Server(s) => (s.url(), false),
            Target::Cluster(c) => (c.seed_url(), true),
        };
        RedisSection {
            url,
            cluster,
            settle_ms: SETTLE.as_millis() as u64,
            ..RedisSection::default()
        }
    }

    /// Spear `id` with a link of its own, as a node has.
    fn spear_and_link(&self, id: NodeId) -> (TestSpear, Arc<RedisLink>) {
        let cancel = CancellationToken::new();
        let (pushes_tx, pushes) = mpsc::unbounded_channel();
        let link = RedisLink::open(&self.section(), Some(pushes_tx)).expect("redis link");
        let monitor = tokio::spawn(link.clone().run_monitor(cancel.clone()));
        let (sink, inbound) = mpsc::unbounded_channel();
        let parts = RedisParts {
            link: link.clone(),
            pushes,
            me: id,
            cluster_name: "conformance".into(),
            settle: SETTLE,
            inbound: ToChannel(sink.clone()),
        };
        let (relay, mut tasks) = RedisRelay::start(parts, cancel.clone());
        tasks.push(monitor);
        let spear = TestSpear::new(id, relay, (sink, inbound), cancel, tasks);
        (spear, link)
    }
}

impl Harness for Redis {
    fn name(&self) -> &'static str {
        match self.target {
            Target::Server(_) => "redis",
            Target::Cluster(_) => "redis cluster",
        }
    }
    fn caps(&self) -> Caps {
        Caps { hears_echoes: true }
    }
    fn kind(&self) -> &'static str {
        "redis"
    }
    async fn spear(&mut self, id: NodeId) -> TestSpear {
        let (spear, link) = self.spear_and_link(id);
        // A Cluster link connects in the background, like a node's: wait until it answers,
        // so that the spear can subscribe at once.
        wait_for(
            &format!("spear {id}'s Redis link"),
            Duration::from_secs(10),
            || async {
                link.query::<String>(&redis::cmd("PING"))
                    .await
                    .ok()
                    .map(drop)
            },
        )
        .await;
        spear
    }
    fn kill(&mut self) {
        match &mut self.target {
            Target::Server(s) => s.kill(),
            Target::Cluster(c) => c.kill_all(),
        }
    }
    fn restart(&mut self) {
        match &mut self.target {
            Target::Server(s) => s.restart(),
            Target::Cluster(c) => c.restart_all(),
        }
    }
}

/// The relay's own logs (outages, repairs) in the test output, shown when a check fails.
fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("gru=info")
        .with_test_writer()
        .try_init();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_conformance_local() {
    logs();
    run_suite(&mut Local::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_conformance_redis() {
    logs();
    let mut h = Redis {
        target: Target::Server(RedisServer::start().unwrap_or_else(|e| panic!("{e}"))),
    };
    run_suite(&mut h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_conformance_redis_cluster() {
    logs();
    let mut h = Redis {
        target: Target::Cluster(RedisCluster::start(3)),
    };
    run_suite(&mut h).await;
}

/// `relay.kind = "rocketmq"`: a real name server and broker, and a `redis-server` for the
/// routes. The outage kills the broker (kill -9) and restarts it on its store.
#[cfg(feature = "rocketmq")]
struct RocketMq {
    redis: RedisServer,
    mq: gru_testkit::rocketmq::RocketMq,
}

#[cfg(feature = "rocketmq")]
impl Harness for RocketMq {
    fn name(&self) -> &'static str {
        "rocketmq"
    }
    fn caps(&self) -> Caps {
        Caps {
            hears_echoes: false,
        }
    }
    fn kind(&self) -> &'static str {
        "rocketmq"
    }
    async fn spear(&mut self, id: NodeId) -> TestSpear {
        use gru::config::RocketMqSection;
        use gru::services::relay::{MqLink, RocketMqParts, RocketMqRelay};

        let cancel = CancellationToken::new();
        let section = RedisSection {
            url: self.redis.url(),
            settle_ms: SETTLE.as_millis() as u64,
            ..RedisSection::default()
        };
        let link = RedisLink::open(&section, None).expect("redis link");
        let monitor = tokio::spawn(link.clone().run_monitor(cancel.clone()));
        let mq_section = RocketMqSection {
            name_server: self.mq.name_server(),
            ..RocketMqSection::default()
        };
        let group = RocketMqRelay::producer_group("conformance", id);
        let mq = MqLink::start(&mq_section, &group)
            .await
            .unwrap_or_else(|e| panic!("spear {id}'s RocketMQ client: {e}"));
        let (sink, inbound) = mpsc::unbounded_channel();
        let parts = RocketMqParts {
            link,
            mq,
            me: id,
            cluster_name: "conformance".into(),
            queues: mq_section.queues,
            settle: SETTLE,
            inbound: ToChannel(sink.clone()),
            registry: None,
        };
        let (relay, mut tasks) = RocketMqRelay::start(parts, cancel.clone());
        tasks.push(monitor);
        let spear = TestSpear::new(id, relay, (sink, inbound), cancel, tasks);
        // The relay creates its topic and starts its consumer in the background first.
        spear.ready_within(Duration::from_secs(30)).await;
        spear
    }
    fn kill(&mut self) {
        self.mq.kill_broker();
    }
    fn restart(&mut self) {
        // A real broker restart takes seconds; a spear that does not publish notices the
        // outage through its probe (every 250 ms), so the broker stays down at least a second.
        std::thread::sleep(Duration::from_secs(1));
        self.mq.restart_broker();
    }
}

#[cfg(feature = "rocketmq")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_conformance_rocketmq() {
    logs();
    let mut h = RocketMq {
        redis: RedisServer::start().unwrap_or_else(|e| panic!("{e}")),
        mq: gru_testkit::rocketmq::RocketMq::start().unwrap_or_else(|e| panic!("{e}")),
    };
    run_suite(&mut h).await;
}
