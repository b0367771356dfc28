//! Clients that request ids without pause and record every successful request.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinHandle;

use gru::net::grpc::ClusterClient;
use gru::services::idgen::{IdClient, IdClientCounts};

use gru_testkit::history::IdOp;
use gru_testkit::TestCluster;

/// How a client asks for ids.
enum Via {
    Rpc(Arc<ClusterClient>),
    Stream(IdClient),
}

impl Via {
    async fn next(&self, count: u32) -> Option<Vec<u64>> {
        match self {
            Via::Rpc(c) => c.next_ids(count).await.ok().map(|blocks| {
                blocks
                    .iter()
                    .flat_map(|(first, count)| *first..*first + u64::from(*count))
                    .collect()
            }),
            Via::Stream(c) => c
                .next(count)
                .await
                .ok()
                .map(|blocks| blocks.iter().flat_map(|b| b.ids()).collect()),
        }
    }
}

/// Running clients.
pub struct Workload {
    stop: Arc<AtomicBool>,
    served: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<Vec<IdOp>>>,
    streams: Vec<IdClient>,
}

impl Workload {
    /// `clients` concurrent clients, each with its own connection and leader cache, asking for
    /// 1 to 3 ids at a time; half of them through [`IdClient`]'s stream.
    pub fn start(cluster: &TestCluster, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        let mut streams = Vec::new();
        let tasks = (0..clients)
            .map(|i| {
                let (client, stop, served) = (cluster.client(), stop.clone(), served.clone());
                // Odd clients go through the spears' client (a stream to the leader, falling
                // back to the redirect-following RPC); even ones call that RPC directly.
                let via = if i % 2 == 1 {
                    let ids = IdClient::spawn(client, 4096);
                    streams.push(ids.clone());
                    Via::Stream(ids)
                } else {
                    Via::Rpc(client)
                };
                tokio::spawn(async move {
                    let mut ops = Vec::new();
                    let mut n = 0u32;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let count = 1 + (n + i as u32) % 3;
                        let sent = Instant::now();
                        if let Some(ids) = via.next(count).await {
                            let replied = Instant::now();
                            ops.push(IdOp { sent, replied, ids });
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    ops
                })
            })
            .collect();
        Self {
            stop,
            served,
            tasks,
            streams,
        }
    }

    /// Requests the [`IdClient`]s sent over their stream and as single RPCs, summed.
    pub fn stream_counts(&self) -> IdClientCounts {
        let mut sum = IdClientCounts::default();
        for counts in self.streams.iter().map(IdClient::counts) {
            sum.streamed += counts.streamed;
            sum.unary += counts.unary;
        }
        sum
    }

    /// Successful requests so far.
    pub fn served(&self) -> usize {
        self.served.load(Ordering::Relaxed)
    }

    /// Stops the clients and returns every successful request.
    pub async fn finish(self) -> Vec<IdOp> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for task in self.tasks {
            all.extend(task.await.expect("client task"));
        }
        all
    }
}
