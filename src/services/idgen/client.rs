//! The idgen client used by spears and the HTTP edge: one RPC in flight at a time carries
//! every waiting caller (as PD's client batches timestamp requests); the leader is found and
//! followed by [`ClusterClient`].

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{IdBlock, IdError};
use crate::net::grpc::ClusterClient;

struct Waiter {
    count: u32,
    reply: oneshot::Sender<Result<Vec<IdBlock>, IdError>>,
}

/// A coalescing idgen client; cheap to clone.
#[derive(Clone)]
pub struct IdClient {
    tx: mpsc::UnboundedSender<Waiter>,
}

impl IdClient {
    /// Starts the dispatcher on the current runtime. One RPC asks for at most `max_batch` ids.
    /// The dispatcher stops when every clone of the client is dropped.
    pub fn spawn(cluster: Arc<ClusterClient>, max_batch: u32) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(dispatch(cluster, rx, max_batch));
        Self { tx }
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

async fn dispatch(
    cluster: Arc<ClusterClient>,
    mut rx: mpsc::UnboundedReceiver<Waiter>,
    max_batch: u32,
) {
    let mut carry: Option<Waiter> = None;
    loop {
        let first = match carry.take() {
            Some(w) => w,
            None => match rx.recv().await {
                Some(w) => w,
                None => return,
            },
        };
        let mut batch = vec![first];
        let mut total = batch[0].count;
        while let Ok(w) = rx.try_recv() {
            if total.saturating_add(w.count) > max_batch {
                carry = Some(w);
                break;
            }
            total += w.count;
            batch.push(w);
        }
        match cluster.next_ids(total).await {
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
