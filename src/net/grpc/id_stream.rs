//! The client end of `IdGen.NextStream`: one long-lived HTTP/2 stream to the node that issues
//! ids, carrying one request at a time.

use futures_util::stream;
use tokio::sync::mpsc;
use tonic::transport::Channel;
use tonic::Streaming;

use super::pb::id_gen_client::IdGenClient;
use super::pb::{IdsReply, NextIdsRequest};
use super::ClientError;

/// An open id stream. Any error (and a caller that stops waiting for an answer) leaves it out
/// of step with the server: drop it and fall back to `ClusterClient::next_ids`.
pub struct IdStream {
    requests: mpsc::Sender<NextIdsRequest>,
    replies: Streaming<IdsReply>,
}

impl IdStream {
    /// Opens a stream on `channel`; returns once the server accepted it.
    pub(super) async fn open(channel: Channel) -> Result<Self, ClientError> {
        let (requests, rx) = mpsc::channel::<NextIdsRequest>(1);
        let outbound = stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|req| (req, rx)) },
        );
        let replies = IdGenClient::new(channel)
            .next_stream(outbound)
            .await
            .map_err(ClientError::from)?
            .into_inner();
        Ok(Self { requests, replies })
    }

    /// `count` ids as `(first, count)` blocks, or why the stream cannot give them.
    pub async fn next(&mut self, count: u32) -> Result<Vec<(u64, u32)>, ClientError> {
        self.requests
            .send(NextIdsRequest {
                count,
                bounded: false,
            })
            .await
            .map_err(|_| ClientError::BadReply("the id stream is closed".into()))?;
        match self.replies.message().await {
            Ok(Some(reply)) => Ok(id_blocks(reply)),
            Ok(None) => Err(ClientError::BadReply(
                "the server ended the id stream".into(),
            )),
            Err(status) => Err(status.into()),
        }
    }
}

/// The blocks of an id answer, as `(first, count)`.
pub(super) fn id_blocks(reply: IdsReply) -> Vec<(u64, u32)> {
    reply
        .blocks
        .into_iter()
        .map(|b| (b.first, b.count))
        .collect()
}
