//! `GET /api/v1/monitor/stream`: Server-Sent Events, one `snapshot` event per gathering. Every
//! viewer follows the aggregator's one watch channel, so a hundred open dashboards cost the
//! cluster what one does. A stream ends when the HTTP port stops (its `closing` token), so a
//! graceful stop does not wait out the drain time on open dashboards.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::aggregator::{Aggregator, Stamped};

/// The SSE answer for one viewer: the latest snapshot at once (when there is one), then each
/// new one, until `closing`.
pub(super) fn snapshots(
    aggregator: &Arc<Aggregator>,
    closing: CancellationToken,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut rx = aggregator.subscribe();
    // The first event is the snapshot already there, so a new viewer sees numbers at once.
    rx.mark_changed();
    let stream = futures_util::stream::unfold((rx, closing), |(mut rx, closing)| async move {
        loop {
            tokio::select! {
                () = closing.cancelled() => return None,
                changed = rx.changed() => changed.ok()?,
            }
            if let Some(event) = event(&rx) {
                return Some((Ok(event), (rx, closing)));
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

fn event(rx: &watch::Receiver<Option<Stamped>>) -> Option<Event> {
    let stamped = rx.borrow().clone()?;
    match Event::default()
        .event("snapshot")
        .json_data(&*stamped.snapshot)
    {
        Ok(event) => Some(event),
        Err(e) => {
            tracing::warn!(error = %e, "monitor snapshot not serialized");
            None
        }
    }
}
