//! Waiting with deadlines, never bare sleeps: a probe is polled until it yields a value.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often a probe is polled.
const POLL: Duration = Duration::from_millis(50);

/// A probe that yielded nothing before its deadline.
#[derive(Debug, thiserror::Error)]
#[error("timed out after {deadline:?} waiting for {what}")]
pub struct TimedOut {
    /// What was waited for.
    pub what: String,
    /// How long.
    pub deadline: Duration,
}

/// Polls `probe` every 50 ms until it yields a value, or fails naming `what` at the deadline.
pub async fn poll<T, F, Fut>(what: &str, deadline: Duration, probe: F) -> Result<T, TimedOut>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return Ok(value);
        }
        if start.elapsed() >= deadline {
            return Err(TimedOut {
                what: what.to_string(),
                deadline,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// [`poll`] for tests: panics naming `what` at the deadline.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, probe: F) -> T
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll(what, deadline, probe)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}
