//! Clients that request ids without pause and record every successful request.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinHandle;

use crate::common::history::IdOp;
use crate::common::TestCluster;

/// Running clients.
pub struct Workload {
    stop: Arc<AtomicBool>,
    served: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<Vec<IdOp>>>,
}

impl Workload {
    /// `clients` concurrent clients, each with its own connection and leader cache, asking for
    /// 1 to 3 ids at a time.
    pub fn start(cluster: &TestCluster, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        let tasks = (0..clients)
            .map(|i| {
                let (client, stop, served) = (cluster.client(), stop.clone(), served.clone());
                tokio::spawn(async move {
                    let mut ops = Vec::new();
                    let mut n = 0u32;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let count = 1 + (n + i as u32) % 3;
                        let sent = Instant::now();
                        if let Ok(blocks) = client.next_ids(count).await {
                            let replied = Instant::now();
                            let ids = blocks
                                .iter()
                                .flat_map(|(first, count)| *first..*first + u64::from(*count))
                                .collect();
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
        }
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
