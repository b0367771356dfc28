//! The one owner of a node's background work. Every loop a node runs is a named [`Worker`]
//! spawned through the [`Runner`] into one [`Stage`]; stopping goes through the stages in their
//! declared order, each with its own deadline, after which what is still running is aborted.
//! A runner dropped without [`Runner::shutdown`] (a start that failed half-way, a panic)
//! cancels and aborts everything it owns, so no task outlives its node.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The stages of a node, in the order they stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// The public listeners (HTTP, socket.io): stop accepting, drain, cut.
    Clients,
    /// The spear's registration and presence: removed while the node can still reach Raft
    /// and Redis, so a graceful stop leaves nothing to expire.
    Registration,
    /// Everything else that loops: Raft bootstrap, lease sweeper, id issuers, relay, gossip
    /// followers, monitors.
    Background,
    /// The internal gRPC server: last, so the stages above can still reach the cluster.
    Internal,
}

impl Stage {
    /// Every stage, in stopping order.
    pub(crate) const ORDER: [Stage; 4] = [
        Stage::Clients,
        Stage::Registration,
        Stage::Background,
        Stage::Internal,
    ];

    fn index(self) -> usize {
        match self {
            Stage::Clients => 0,
            Stage::Registration => 1,
            Stage::Background => 2,
            Stage::Internal => 3,
        }
    }

    /// The name used in logs.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Stage::Clients => "client listeners",
            Stage::Registration => "spear registration",
            Stage::Background => "background workers",
            Stage::Internal => "internal gRPC",
        }
    }
}

/// One named background task.
struct Worker {
    name: &'static str,
    handle: JoinHandle<()>,
}

struct StageWorkers {
    cancel: CancellationToken,
    deadline: Duration,
    workers: Vec<Worker>,
}

/// Owns a node's workers, stage by stage.
pub(crate) struct Runner {
    stages: [StageWorkers; 4],
}

/// What one stage's stop found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StageReport {
    /// The stage.
    pub(crate) stage: Stage,
    /// Workers that stopped by themselves within the deadline.
    pub(crate) stopped: usize,
    /// Workers still running at the deadline, aborted.
    pub(crate) aborted: Vec<&'static str>,
}

impl Runner {
    /// A runner whose stages each get `deadline` to stop, `Clients` `client_deadline` (its
    /// listeners drain first).
    pub(crate) fn new(deadline: Duration, client_deadline: Duration) -> Self {
        let stage = |deadline| StageWorkers {
            cancel: CancellationToken::new(),
            deadline,
            workers: Vec::new(),
        };
        Self {
            stages: [
                stage(client_deadline),
                stage(deadline),
                stage(deadline),
                stage(deadline),
            ],
        }
    }

    /// The token `stage`'s workers stop on.
    pub(crate) fn token(&self, stage: Stage) -> CancellationToken {
        self.stages[stage.index()].cancel.clone()
    }

    /// Spawns worker `name` in `stage`; `work` gets the stage's token and must return soon
    /// after it is cancelled.
    pub(crate) fn spawn<F, Fut>(&mut self, stage: Stage, name: &'static str, work: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handle = tokio::spawn(work(self.token(stage)));
        self.adopt(stage, name, handle);
    }

    /// Takes ownership of a task a component spawned itself on `stage`'s token.
    pub(crate) fn adopt(&mut self, stage: Stage, name: &'static str, handle: JoinHandle<()>) {
        self.stages[stage.index()]
            .workers
            .push(Worker { name, handle });
    }

    /// The names of the workers running now, in stage order.
    #[cfg(test)]
    pub(crate) fn running(&self) -> Vec<&'static str> {
        self.stages
            .iter()
            .flat_map(|s| s.workers.iter())
            .filter(|w| !w.handle.is_finished())
            .map(|w| w.name)
            .collect()
    }

    /// Stops every stage in [`Stage::ORDER`]: cancel its token, wait for its workers until
    /// its deadline, abort the rest.
    pub(crate) async fn shutdown(mut self) -> Vec<StageReport> {
        let mut reports = Vec::with_capacity(Stage::ORDER.len());
        for stage in Stage::ORDER {
            let workers = &mut self.stages[stage.index()];
            tracing::info!(stage = stage.name(), "shutdown: stopping");
            workers.cancel.cancel();
            let until = Instant::now() + workers.deadline;
            let mut report = StageReport {
                stage,
                stopped: 0,
                aborted: Vec::new(),
            };
            for worker in std::mem::take(&mut workers.workers) {
                let Worker { name, mut handle } = worker;
                match tokio::time::timeout_at(until, &mut handle).await {
                    Ok(Ok(())) => report.stopped += 1,
                    Ok(Err(e)) => {
                        tracing::error!(stage = stage.name(), worker = name, error = %e, "worker failed");
                        report.stopped += 1;
                    }
                    Err(_) => {
                        tracing::warn!(
                            stage = stage.name(),
                            worker = name,
                            deadline = ?workers.deadline,
                            "shutdown: worker did not stop in time; aborted"
                        );
                        handle.abort();
                        // An aborted task ends at its next await; wait for it so that what it
                        // holds (sockets, files) is released before the next stage.
                        let _ = handle.await;
                        report.aborted.push(name);
                    }
                }
            }
            reports.push(report);
        }
        reports
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        for stage in &mut self.stages {
            stage.cancel.cancel();
            for worker in stage.workers.drain(..) {
                worker.handle.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn stages_stop_in_order_and_stragglers_are_aborted() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut runner = Runner::new(Duration::from_secs(1), Duration::from_secs(3));
        for stage in [Stage::Internal, Stage::Background, Stage::Clients] {
            let order = order.clone();
            runner.spawn(stage, stage.name(), move |cancel| async move {
                cancel.cancelled().await;
                order.lock().expect("order").push(stage);
            });
        }
        // Ignores its token: must be aborted at the stage's deadline, not hang the stop.
        runner.spawn(Stage::Registration, "stubborn", |_| std::future::pending());
        let started = Instant::now();
        let reports = runner.shutdown().await;
        assert_eq!(
            *order.lock().expect("order"),
            vec![Stage::Clients, Stage::Background, Stage::Internal]
        );
        assert_eq!(reports[1].aborted, vec!["stubborn"]);
        assert_eq!(reports.iter().map(|r| r.stopped).sum::<usize>(), 3);
        // Only the stubborn stage waited out its deadline.
        assert_eq!(started.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test]
    async fn a_dropped_runner_stops_its_workers() {
        let alive = Arc::new(AtomicUsize::new(0));
        let mut runner = Runner::new(Duration::from_secs(1), Duration::from_secs(1));
        for stage in Stage::ORDER {
            let alive = alive.clone();
            runner.spawn(stage, "loop", move |_| async move {
                struct Count(Arc<AtomicUsize>);
                impl Drop for Count {
                    fn drop(&mut self) {
                        self.0.fetch_sub(1, Ordering::SeqCst);
                    }
                }
                alive.fetch_add(1, Ordering::SeqCst);
                let _count = Count(alive);
                std::future::pending::<()>().await;
            });
        }
        tokio::task::yield_now().await;
        assert_eq!(runner.running().len(), 4);
        assert_eq!(alive.load(Ordering::SeqCst), 4);
        drop(runner);
        // Aborted tasks drop their state at the runtime's next poll.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(alive.load(Ordering::SeqCst), 0);
    }
}
