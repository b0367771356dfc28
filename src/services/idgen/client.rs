//! The idgen client used by spears and the HTTP edge: one request in flight at a time carries
//! every waiting caller (as PD's client batches timestamp requests), over a long-lived stream
//! to the leader (as PD's TSO stream) once one is open; the leader is found and followed by
//! [`ClusterClient`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{IdBlock, IdError};
use crate::net::grpc::{ClientError, ClusterClient, IdStream};

struct Waiter {
    count: u32,
    reply: oneshot::Sender<Result<Vec<IdBlock>, IdError>>,
}

/// A coalescing idgen client; cheap to clone.
#[derive(Clone)]
pub struct IdClient {
    tx: mpsc::UnboundedSender<Waiter>,
    cluster: Arc<ClusterClient>,
    counts: Arc<Counts>,
}

/// How the client's requests went out.
#[derive(Default)]
struct Counts {
    streamed: AtomicU64,
    unary: AtomicU64,
}

/// Requests sent over the stream and as single RPCs (the first, and after a stream failed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IdClientCounts {
    /// Answered over the stream.
    pub streamed: u64,
    /// Sent as a single RPC.
    pub unary: u64,
}

impl IdClient {
    /// The client and its dispatcher, for the caller to run (a node runs it as a worker). One
    /// RPC asks for at most `max_batch` ids. The dispatcher ends when every clone of the client
    /// is dropped.
    pub fn new(
        cluster: Arc<ClusterClient>,
        max_batch: u32,
    ) -> (Self, impl std::future::Future<Output = ()> + Send + 'static) {
        let (tx, rx) = mpsc::unbounded_channel();
        let counts = Arc::new(Counts::default());
        let dispatcher = dispatch(cluster.clone(), rx, max_batch, counts.clone());
        (
            Self {
                tx,
                cluster,
                counts,
            },
            dispatcher,
        )
    }

    /// [`Self::new`] with the dispatcher spawned on the current runtime (tools and benchmarks).
    pub fn spawn(cluster: Arc<ClusterClient>, max_batch: u32) -> Self {
        let (client, dispatcher) = Self::new(cluster, max_batch);
        tokio::spawn(dispatcher);
        client
    }

    /// How many requests went over the stream and as single RPCs so far.
    pub fn counts(&self) -> IdClientCounts {
        IdClientCounts {
            streamed: self.counts.streamed.load(Ordering::Relaxed),
            unary: self.counts.unary.load(Ordering::Relaxed),
        }
    }

    /// `count` ids (one or more blocks, in increasing order).
    pub async fn next(&self, count: u32) -> Result<Vec<IdBlock>, IdError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Waiter { count, reply })
            .map_err(|_| IdError::Unavailable("idgen client stopped".into()))?;
        rx.await
            .map_err(|_| IdError::Unavailable("idgen client stopped".into()))?
    }
}

impl IdClient {
    /// `count` ids from the leader, refused there rather than run its strict issuer more than
    /// half its window ahead of its clock (`IdService::issue_for_api`): one RPC of its own,
    /// never batched with the spears' requests.
    pub async fn next_bounded(&self, count: u32) -> Result<Vec<IdBlock>, IdError> {
        match self.cluster.next_ids_bounded(count).await {
            Ok(blocks) => Ok(blocks
                .into_iter()
                .map(|(first, count)| IdBlock { first, count })
                .collect()),
            Err(ClientError::Rejected {
                code: tonic::Code::ResourceExhausted,
                message,
            }) => Err(IdError::Ahead(message)),
            Err(e) => Err(IdError::Unavailable(e.to_string())),
        }
    }
}

/// How long the client waits before trying to open an id stream again after a failed open.
const STREAM_RETRY: Duration = Duration::from_secs(1);

async fn dispatch(
    cluster: Arc<ClusterClient>,
    mut rx: mpsc::UnboundedReceiver<Waiter>,
    max_batch: u32,
    counts: Arc<Counts>,
) {
    let mut link = Link {
        cluster,
        stream: None,
        open_after: Instant::now(),
        counts,
    };
    let mut carry: Option<Waiter> = None;
    loop {
        let first = match carry.take() {
            Some(w) => w,
            None => match rx.recv().await {
                Some(w) => w,
                None => return,
            },
        };
        // A caller that gave up (`idgen.wait_ms`) while the leader was away needs no ids.
        if first.reply.is_closed() {
            continue;
        }
        let mut batch = vec![first];
        let mut total = batch[0].count;
        while let Ok(w) = rx.try_recv() {
            if w.reply.is_closed() {
                continue;
            }
            if total.saturating_add(w.count) > max_batch {
                carry = Some(w);
                break;
            }
            total += w.count;
            batch.push(w);
        }
        match link.next_ids(total).await {
            Ok(blocks) => hand_out(
                batch,
                blocks
                    .into_iter()
                    .map(|(first, count)| IdBlock { first, count })
                    .collect(),
            ),
            Err(e) => {
                let err = IdError::Unavailable(e.to_string());
                for w in batch {
                    let _ = w.reply.send(Err(err.clone()));
                }
            }
        }
        // After the callers have their ids: (re)open the stream when it is due.
        link.open_stream_if_due().await;
    }
}

/// The way to the issuer: a stream to the leader when one is open, the redirect-following
/// unary RPC otherwise (and whenever the stream fails: ids lost with a broken stream are
/// never handed out, and strict ids need not be dense).
struct Link {
    cluster: Arc<ClusterClient>,
    stream: Option<IdStream>,
    open_after: Instant,
    counts: Arc<Counts>,
}

impl Link {
    async fn next_ids(&mut self, count: u32) -> Result<Vec<(u64, u32)>, ClientError> {
        if let Some(stream) = self.stream.as_mut() {
            match tokio::time::timeout(self.cluster.rpc_timeout(), stream.next(count)).await {
                Ok(Ok(blocks)) => {
                    self.counts.streamed.fetch_add(1, Ordering::Relaxed);
                    return Ok(blocks);
                }
                Ok(Err(e)) => tracing::debug!(error = %e, "id stream ended; falling back"),
                Err(_) => tracing::debug!("id stream answered too late; falling back"),
            }
            self.stream = None;
        }
        self.counts.unary.fetch_add(1, Ordering::Relaxed);
        self.cluster.next_ids(count).await
    }

    async fn open_stream_if_due(&mut self) {
        if self.stream.is_some() || Instant::now() < self.open_after {
            return;
        }
        match tokio::time::timeout(self.cluster.rpc_timeout(), self.cluster.open_id_stream()).await
        {
            Ok(Ok(stream)) => self.stream = Some(stream),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "id stream not opened");
                self.open_after = Instant::now() + STREAM_RETRY;
            }
            Err(_) => {
                tracing::debug!("id stream not opened in time");
                self.open_after = Instant::now() + STREAM_RETRY;
            }
        }
    }
}

/// Splits `blocks` among `waiters` in order.
fn hand_out(waiters: Vec<Waiter>, blocks: Vec<IdBlock>) {
    let mut blocks = blocks.into_iter();
    let mut current: Option<IdBlock> = blocks.next();
    for w in waiters {
        let mut need = w.count;
        let mut mine = Vec::new();
        while need > 0 {
            let Some(block) = current.as_mut() else { break };
            let take = need.min(block.count);
            mine.push(IdBlock {
                first: block.first,
                count: take,
            });
            block.first += u64::from(take);
            block.count -= take;
            need -= take;
            if block.count == 0 {
                current = blocks.next();
            }
        }
        let result = if need == 0 {
            Ok(mine)
        } else {
            Err(IdError::Unavailable(
                "the server returned fewer ids than asked".into(),
            ))
        };
        let _ = w.reply.send(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_split_in_order_across_waiters() {
        let (mut rxs, mut waiters) = (Vec::new(), Vec::new());
        for count in [3u32, 1, 4] {
            let (reply, rx) = oneshot::channel();
            waiters.push(Waiter { count, reply });
            rxs.push(rx);
        }
        hand_out(
            waiters,
            vec![
                IdBlock {
                    first: 100,
                    count: 5,
                },
                IdBlock {
                    first: 200,
                    count: 3,
                },
            ],
        );
        let got: Vec<Vec<u64>> = rxs
            .into_iter()
            .map(|mut rx| {
                rx.try_recv()
                    .expect("answered")
                    .expect("ok")
                    .iter()
                    .flat_map(IdBlock::ids)
                    .collect()
            })
            .collect();
        assert_eq!(
            got,
            vec![vec![100, 101, 102], vec![103], vec![104, 200, 201, 202]]
        );
    }
}
