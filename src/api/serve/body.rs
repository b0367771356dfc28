//! A request body with a deadline: the whole body must arrive within `http.body_timeout_ms`
//! of the request, or reading it fails with [`BodyTimeout`]. Without it, a client sending a
//! byte every few seconds holds a request (and whatever its handler set aside for it) for as
//! long as it likes: the header read timeout ends only with the headers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Bytes, Frame, SizeHint};
use tokio::time::Sleep;

/// Reading a body took longer than its deadline.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the request body did not arrive within {} ms", .0.as_millis())]
pub struct BodyTimeout(pub Duration);

/// Whether `error`, or an error it wraps, is a [`BodyTimeout`].
pub fn is_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.is::<BodyTimeout>() {
            return true;
        }
        next = e.source();
    }
    false
}

/// `B` that fails with [`BodyTimeout`] once `limit` has passed since it was made.
pub(super) struct TimedBody<B> {
    body: B,
    deadline: Pin<Box<Sleep>>,
    limit: Duration,
}

impl<B> TimedBody<B> {
    /// `body`, to be read whole within `limit` from now.
    pub(super) fn new(body: B, limit: Duration) -> Self {
        Self {
            body,
            deadline: Box::pin(tokio::time::sleep(limit)),
            limit,
        }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match this.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout(this.limit))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body that never yields a frame.
    struct Stalled;

    impl Body for Stalled {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Pending
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_fails_at_its_deadline_and_a_whole_one_passes() {
        let limit = Duration::from_secs(10);
        let stalled = axum::body::Body::new(TimedBody::new(Stalled, limit));
        let err = axum::body::to_bytes(stalled, usize::MAX)
            .await
            .expect_err("the deadline passed");
        assert!(is_timeout(&err), "{err}");
        let whole = axum::body::Body::new(TimedBody::new(axum::body::Body::from("{}"), limit));
        let got = axum::body::to_bytes(whole, usize::MAX).await.expect("read");
        assert_eq!(got, Bytes::from_static(b"{}"));
    }
}
